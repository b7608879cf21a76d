"""Decisions that already exist, made into an audit: model zoos' predictions, score arrays, and
model-vs-human's raw data with human observers.

A reader returns a `DecisionSource`: a long table of decisions (`ImportedDecisions`) for sources that fit
in memory, or per-model arrays (`PredictionFiles`) for a zoo's prediction files. `write_imported_audit`
turns either into an audit directory that `report`, the app and `study create` read as they read a
run's. Every error names the file, the column or rows at fault, and what to do.

An audited unit is an image under one condition (model-vs-human shows the same image at several
noise or contrast levels). The split is over the models (or, with `split_by="all"`, over every maker):
the units every one of them decided at every recorded epoch. Humans (and any maker who saw part of
the units) are stored beside the models, under humans/, with the units they decided; a missing
decision is missing, not wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from audit.curation.importers.common import (
    DECISION_TABLE_COLUMNS,
    MAKER_KINDS,
    MVH_COLUMNS,
    REQUIRED_COLUMNS,
    SCORE_SUFFIXES,
    DecisionSource,
    ImportDataError,
    read_class_list,
)
from audit.curation.importers.predictions import (
    PredictionFiles,
    looks_like_predictions,
    read_prediction_files,
)
from audit.curation.importers.readers import read_long_table, read_model_vs_human, read_score_arrays
from audit.curation.importers.table import ImportedDecisions
from audit.curation.importers.writer import SPLIT_BY, write_imported_audit

__all__ = ["DECISION_TABLE_COLUMNS", "MAKER_KINDS", "REQUIRED_COLUMNS", "SOURCE_FORMATS", "SPLIT_BY",
           "DecisionSource", "ImportDataError", "ImportedDecisions", "PredictionFiles", "read_class_list",
           "read_decisions_source", "read_long_table", "read_model_vs_human", "read_prediction_files",
           "read_score_arrays", "write_imported_audit"]

SOURCE_FORMATS = ("auto", "table", "scores", "predictions", "model-vs-human")


def read_decisions_source(source: str | Path, *, source_format: str = "auto", labels: str | Path | None = None,
                          classes: list[str] | None = None,
                          progress: Callable[[int, int], None] | None = None) -> DecisionSource:
    """Read any of the sources; "auto" tells them apart: a file is a table (or model-vs-human data when it
    has their columns); a folder of arrays is score arrays (which need `labels`); a folder of .parquet
    files, or of .csv files with the columns image and predicted, is a zoo's prediction files; any other
    folder of .csv files is model-vs-human raw data."""
    source = Path(source)
    if source_format not in SOURCE_FORMATS:
        raise ImportDataError(f"--format must be one of {', '.join(SOURCE_FORMATS)}, got {source_format!r}")
    if not source.exists():
        raise ImportDataError(f"{source} does not exist")
    if source_format == "auto":
        if source.is_file():  # model-vs-human's columns (a study export), or a table of decisions
            header = set(pd.read_csv(source, nrows=0).columns) if source.suffix.lower() == ".csv" else set()
            source_format = "model-vs-human" if set(MVH_COLUMNS) <= header else "table"
        elif any(p.suffix.lower() in SCORE_SUFFIXES for p in source.iterdir()):
            source_format = "scores"
        elif looks_like_predictions(source):
            source_format = "predictions"
        else:
            source_format = "model-vs-human"
    if source_format == "scores":
        if labels is None:
            raise ImportDataError(f"{source} holds score arrays; give --labels FILE with each image's class")
        return read_score_arrays(source, labels, classes=classes)
    if source_format == "predictions":
        return read_prediction_files(source, labels=labels, classes=classes, progress=progress)
    if labels is not None:
        raise ImportDataError("--labels is for score arrays and prediction files; tables and model-vs-human "
                              "data carry their labels")
    if source_format == "table":
        return read_long_table(source, classes=classes)
    return read_model_vs_human(source)
