"""The paper figures of an audit: their inputs read from its written report, and the figures saved in formats.

`figure_inputs` gathers what `audit.plots.paper` draws from (tables, maps,
summary, conditions, TP-agreement histograms, pixels); `write_figures` saves
every figure the audit allows. Reading goes through `audit.store` only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audit.plots import paper
from audit.plots.style import check_style, parse_formats, save_figure
from audit.report.build import report_state
from audit.report.loaded import Report
from audit.report.parts import model_fields
from audit.store import DEEP_TABLES, AuditError, AuditResult


class _Pixels:
    """The audit's images by index, read one at a time (from images.npy or the dataset's files)."""

    def __init__(self, result: AuditResult):
        self.result = result

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.result.image(int(index)))


def _pixels(result: AuditResult) -> _Pixels | None:
    """A reader of the audit's pixels, or None when it has none (an imported audit without its image folder)."""
    if not result.n_images:
        return None
    try:
        result.image(0)
    except (AuditError, OSError, KeyError):
        return None
    return _Pixels(result)


def figure_inputs(audit: AuditResult | Report) -> paper.FigureInputs:
    """What the paper figures are drawn from, read from the audit's written report.

    Raises ValueError when the report is missing or older than the finished
    models (`ddd-audit report` writes it).
    """
    result = audit.result if isinstance(audit, Report) else audit
    if report_state(result, result.summary()) != "current":
        raise ValueError(f"the report of {result.path} is missing or older than its models; "
                         f"run `ddd-audit report {result.path}` first")
    report = audit if isinstance(audit, Report) else Report.load(result)
    names = report.model_names
    groups = dict(zip(names, model_fields(result, names, "group"), strict=True))
    maps = report.maps
    histograms = (maps["tp_observed"], maps["tp_null"]) if "tp_observed" in maps else None
    images = report.images
    categories = images["category"].astype(str).to_numpy() if "category" in images.columns else None
    score_columns = [c for c in ("accessibility", "learned_epoch") if c in images.columns]
    return paper.FigureInputs(report.tables, maps, report.summary, groups,
                              label_issues=report.table(DEEP_TABLES["label_issues_histogram"]),
                              tp_histograms=histograms,
                              scores=images[score_columns] if len(score_columns) == 2 else None,
                              pixels=_pixels(result), categories=categories, labels=np.asarray(result.labels),
                              class_names=list(result.class_names))


def check_figure_names(names) -> list[str]:
    """The figure names asked for, each one of `paper.FIGURES`; an unknown name fails listing the known ones."""
    items = names.split(",") if isinstance(names, str) else list(names)
    chosen = [n.strip() for n in items if n.strip()]
    unknown = [n for n in chosen if n not in paper.FIGURES]
    if unknown or not chosen:
        raise ValueError(f"figure names must be among {', '.join(paper.FIGURES)}; got {names!r}")
    return chosen


def write_figures(result: AuditResult, out: str | Path, *, formats="pdf,svg,png", style: str = "paper",
                  only=None, progress=None) -> list[Path]:
    """Save every paper figure of the audit into `out` as <name>.<format>; returns the files written.

    `only` (names of `paper.FIGURES`) keeps those figures; `progress(name)` is
    called before each figure is drawn, when given.
    """
    chosen = parse_formats(formats)
    check_style(style)
    keep = check_figure_names(only) if only is not None else None
    written: list[Path] = []
    for name, draw in paper.paper_figures(figure_inputs(result)).items():
        if keep is not None and name not in keep:
            continue
        if progress is not None:
            progress(name)
        written += save_figure(draw(style=style), Path(out) / name, chosen)
    return written
