"""The Python API for notebooks: run or import an audit, read its report, draw its figures, export a subset.

Thin typed functions over the engine, the importers, the report, the figures and the curation code,
called as the `ddd-audit` commands call them, but printing nothing. Importing this module imports none
of them (each function imports what it needs), and nothing here needs Streamlit.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # for the annotations only; none of these is imported at run time here
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

    from audit.report import Report
    from audit.running.engine import AuditConfig, AuditPlan, RunListener
    from audit.store import AuditResult

__all__ = ["draw_figure", "export_subset", "figure_names", "import_decisions", "load_report", "plan",
           "run", "save_figures"]

#: An audit as the functions below take it: an `AuditResult` (from `audit.load`) or its directory.
AuditLike = Union["AuditResult", str, os.PathLike]
#: A run's configuration: an `AuditConfig`, or a mapping of its fields (`{"dataset": "digits", ...}`).
ConfigLike = Union["AuditConfig", Mapping[str, Any], None]


# --------------------------------------------------------------------------- running
def _config(config: ConfigLike, options: Mapping[str, Any]) -> AuditConfig:
    """An `AuditConfig` from `config` with `options` replacing its fields; unknown field names fail."""
    from audit.running.engine import AuditConfig

    if config is None:
        config = AuditConfig()
    elif isinstance(config, Mapping):
        options = {**config, **options}
        config = AuditConfig()
    elif not isinstance(config, AuditConfig):
        raise TypeError(f"config must be an AuditConfig, a mapping of its fields or None, got {type(config).__name__}")
    known = [f.name for f in dataclasses.fields(AuditConfig)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"AuditConfig has no field {', '.join(map(repr, unknown))}; its fields are {', '.join(known)}")
    return dataclasses.replace(config, **options)


def plan(config: ConfigLike = None, **options: Any) -> AuditPlan:
    """Load the dataset and list the jobs of an audit, without running any (`ddd-audit run --dry-run`).

    Parameters
    ----------
    config : AuditConfig, mapping of its fields, or None
        The audit to plan; None is the default audit (Fashion-MNIST, the `quick` preset).
    **options
        Fields of `AuditConfig` that replace those of `config`, e.g. ``dataset="digits"``.

    Returns
    -------
    plan : AuditPlan
        ``plan.jobs`` (one per trained variant, pretrained model or other job), ``plan.dataset``,
        ``plan.notes``; ``job.estimate_seconds(plan.context)`` estimates a job's cost.
    """
    from audit.running.engine import plan_audit

    return plan_audit(_config(config, options))


def run(config: ConfigLike = None, out: str | os.PathLike = "runs/default", *, force: bool = False,
        workers: int = 1, listener: RunListener | None = None, tolerance: int = 1, **options: Any) -> AuditResult:
    """Run an audit into the directory `out`, build its report, and return it (`ddd-audit run`).

    The same audit in the same `out` resumes: finished jobs are kept, and a variant that was training
    goes on after its last finished epoch. Nothing is printed.

    Parameters
    ----------
    config : AuditConfig, mapping of its fields, or None
        What to audit; None is the default audit (Fashion-MNIST, the `quick` preset).
    out : str or path, default "runs/default"
        The audit directory. A folder of other files is refused, `force` or not.
    force : bool, default False
        Recompute every job, and replace a different audit in `out` (its studies/ are kept).
    workers : int, default 1
        Jobs run at once in separate processes on this machine (each with cores / workers threads).
    listener : RunListener, optional
        Hears the run's progress (`audit.running.engine.RunListener`); by default nothing is reported.
    tolerance : int, default 1
        t of the report's split: trivial when n_correct >= M - t, impossible when n_correct <= t.
    **options
        Fields of `AuditConfig` that replace those of `config`, e.g. ``epochs=1``.

    Returns
    -------
    result : AuditResult
        The finished audit, read back with `audit.load`; its report is written under `out/report/`.

    Raises
    ------
    AuditError
        When a job failed (the others finish and are kept; call `run` again to resume), or the audit
        cannot be written to `out`.
    """
    from audit.report import build_report
    from audit.running.engine import plan_audit, run_audit
    from audit.running.executors import LocalExecutor
    from audit.store import AuditError, load

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    planned = plan_audit(_config(config, options))
    outcome = run_audit(planned, out, force=force, executor=LocalExecutor(workers=workers), listener=listener)
    build_report(load(out), tolerance=tolerance)
    if outcome.failed:
        first = {name: (error or "").strip().splitlines()[0] if error else "" for name, error in outcome.failed.items()}
        raise AuditError(f"{len(first)} of {len(planned.jobs)} jobs failed ({'; '.join(f'{n}: {e}' for n, e in first.items())}); "
                         f"the full errors are in {Path(out) / 'failures'}; the finished jobs are kept, so fix the "
                         "cause and call run again to resume")
    return load(out)


def import_decisions(source: str | os.PathLike, out: str | os.PathLike, *, source_format: str = "auto",
                     labels: str | os.PathLike | None = None, classes: str | os.PathLike | None = None,
                     images: str | os.PathLike | None = None, split: str | None = None,
                     image_column: str | None = None, relabel: str | os.PathLike | None = None,
                     split_by: str = "models", force: bool = False, tolerance: int = 1) -> AuditResult:
    """Make an audit directory from decisions that exist already, build its report, and return it
    (`ddd-audit import`).

    Parameters
    ----------
    source : str or path
        A decisions table (.csv or .parquet; one row per decision with the columns maker, image, label,
        predicted), a folder of score arrays (<model>.npy or .pt of shape (n_images, n_classes)), a folder
        of per-model prediction files, or a model-vs-human raw-data folder.
    out : str or path
        The audit directory to write.
    source_format : {"auto", "table", "scores", "predictions", "model-vs-human"}, default "auto"
    labels : str or path, optional
        Score arrays and prediction files: the labels (.npy of class indices, or a CSV of image,label).
    classes : str or path, optional
        A file of class names, one per line, in index order.
    images : str or path, optional
        The folder of the image files, or a table or shard source (``hf:PATH``, ``parquet:GLOB``,
        ``wds:PATTERN``) whose keys are the decisions' image keys.
    split, image_column : str, optional
        For a table or shard source in `images`: the split and the image column.
    relabel : str or path, optional
        A CSV with the columns image and new_label: import with those labels corrected.
    split_by : {"models", "all"}, default "models"
        Who makes the split: the models, or every decision maker (humans too).
    force : bool, default False
        Replace the audit in `out` (never a folder of other files).
    tolerance : int, default 1
        t of the report's split.

    Returns
    -------
    result : AuditResult
        The imported audit, with its report written under `out/report/`.
    """
    from audit.curation.importers import read_class_list, read_decisions_source, write_imported_audit
    from audit.curation.relabel import read_relabel, record_relabel, relabel_imported
    from audit.report import build_report
    from audit.store import load

    table_prefixes = ("hf:", "parquet:", "wds:")
    image_source = str(images) if images is not None and str(images).startswith(table_prefixes) else None
    if (split or image_column) and image_source is None:
        raise ValueError("split and image_column are for images='hf:PATH', 'parquet:GLOB' or 'wds:PATTERN', "
                         f"got images={images!r}")
    reader = None
    if image_source:  # checked before anything is read or written
        from audit.data.table_sources import source_reader

        reader = source_reader(image_source, split=split, image_column=image_column)
    class_list = read_class_list(Path(classes)) if classes is not None else None
    decisions = read_decisions_source(Path(source), source_format=source_format,
                                      labels=Path(labels) if labels is not None else None, classes=class_list)
    relabelled = None
    if relabel is not None:
        decisions, relabelled = relabel_imported(decisions, read_relabel(Path(relabel)))
    write_imported_audit(decisions, Path(out), images_root=None if reader or images is None else Path(images),
                         force=force, split_by=split_by, images_reader=(image_source, reader) if reader else None)
    if relabelled:
        record_relabel(Path(out), relabelled)
    build_report(load(out), tolerance=tolerance)
    return load(out)


# --------------------------------------------------------------------------- the report
def _as_result(audit: AuditLike) -> AuditResult:
    from audit.store import AuditResult, load

    return audit if isinstance(audit, AuditResult) else load(audit)


def load_report(audit: AuditLike, *, tolerance: int | None = None, rebuild: bool = False) -> Report:
    """Read an audit's report; build it first when it is missing or older than the audit's models.

    Parameters
    ----------
    audit : AuditResult, str or path
        An audit (from `audit.load`) or its directory.
    tolerance : int, optional
        t of the split. When it differs from the written report's, the report is built again at this
        tolerance (and written, as `ddd-audit report --tolerance` writes it).
    rebuild : bool, default False
        Build the report again even when the written one is current.

    Returns
    -------
    report : audit.report.Report
        The written report (its summary, tables and maps, `split_counts`, `text()`).
    """
    from audit.report import Report, build_report, report_state

    result = _as_result(audit)
    summary = result.summary()
    current = report_state(result, summary) == "current"
    if rebuild or not current or (tolerance is not None and summary.get("tolerance") != tolerance):
        asked = tolerance if tolerance is not None else (summary or {}).get("tolerance", 1)
        build_report(result, tolerance=asked)
        result = _as_result(result.path)
        summary = result.summary()
    return Report.load(result)


# --------------------------------------------------------------------------- figures
def _drawers(result: AuditResult) -> dict:
    from audit.plots.paper import paper_figures
    from audit.report.figures import current_report

    return paper_figures(current_report(result))


def figure_names(audit: AuditLike) -> list[str]:
    """The paper figures this audit allows, in the paper's order (a subset of `audit.plots.paper.FIGURES`).

    An audit with one epoch has no decision maps, one with a single model no κ figures. Raises
    ValueError when the report is missing or older than the models (`load_report` builds it).
    """
    return list(_drawers(_as_result(audit)))


def draw_figure(name: str, audit: AuditLike, *, ax: Axes | None = None, style: str = "paper",
                width: str | float | None = None) -> Figure | SubFigure:
    """Draw one paper figure of an audit, on its own or into a matplotlib Axes.

    Parameters
    ----------
    name : str
        A figure of `audit.plots.paper.FIGURES`: "histogram", "kappa_by_condition", "error_consistency",
        "decision_maps", "swaps_per_epoch", "tp_agreement", "learning_order", "per_class_accuracy" or
        "example_pairs".
    audit : AuditResult, str or path
        An audit with a current report (`load_report` builds one).
    ax : Axes, optional
        Where to draw: an Axes of a grid (`plt.subplots`, `add_subplot`, `subplot_mosaic`). It is replaced
        by a SubFigure in its place (`ax.figure.add_subfigure(ax.get_subplotspec())`), and the whole
        figure, all its panels, colour bars and legends, is drawn into that SubFigure as vector artists:
        lines, bars and matrices that save as vector PDF and SVG. The SubFigure takes the room `ax` had,
        and `ax`'s figure is laid out with constrained layout (switched on when it has no layout engine).
        Without `ax`, the figure comes back as its own Figure at its journal size, to show or save.
    style : {"paper", "slides"}, default "paper"
        Journal sizes, or larger text for slides.
    width : "one", "two" or float, optional
        One or two journal columns, or inches; default: the figure's own, or the width of `ax`'s place.

    Returns
    -------
    figure : Figure or SubFigure
        The figure drawn: `ax`'s figure when `ax` is given (the new SubFigure is the last of its `subfigs`).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the figures), a figure this audit does not allow (the
        message lists those it does), or an `ax` that is not in a grid.
    """
    from audit.plots import style as plot_style
    from audit.plots.paper import FIGURES

    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; the paper figures are {', '.join(FIGURES)}")
    result = _as_result(audit)
    drawers = _drawers(result)
    if name not in drawers:
        raise ValueError(f"the audit {result.path} has no {name!r} figure (it needs what this audit did not "
                         f"record); it has {', '.join(drawers) or 'none'}")
    if ax is None:
        return drawers[name](**({"style": style} if width is None else {"style": style, "width": width}))
    spec = ax.get_subplotspec()
    if spec is None:
        raise ValueError("ax must be an Axes of a grid (plt.subplots, add_subplot or subplot_mosaic); "
                         "this one was placed with add_axes")
    parent = ax.figure
    sub = parent.add_subfigure(spec)
    inches = sub.bbox.width / sub.get_figure(root=True).dpi
    try:
        with plot_style.drawing_into(sub):
            drawers[name](style=style, width=inches if width is None else width)
    except BaseException:
        sub.remove()
        raise
    ax.remove()
    return parent


def save_figures(audit: AuditLike, out: str | os.PathLike, *, formats: str = "pdf,svg,png", style: str = "paper",
                 only: str | list[str] | None = None) -> list[Path]:
    """Save every paper figure the audit allows into `out` as <name>.<format> (`ddd-audit figures`).

    Parameters
    ----------
    audit : AuditResult, str or path
    out : str or path
        A folder, created if missing.
    formats : str, default "pdf,svg,png"
        Comma-separated: pdf and svg (vector), png (300 dpi).
    style : {"paper", "slides"}, default "paper"
        Journal sizes, or larger text for slides.
    only : str or list of str, optional
        Figure names to draw (comma-separated, or a list); default: all.

    Returns
    -------
    files : list of Path
        The files written.
    """
    from audit.report.figures import write_figures

    return write_figures(_as_result(audit), out, formats=formats, style=style, only=only)


# --------------------------------------------------------------------------- curation
def export_subset(audit: AuditLike, subset: str, out: str | os.PathLike, *, format: str = "csv",
                  tolerance: int = 1, bins: str | int = "n_correct", per_bin: int | None = None, seed: int = 0,
                  copy: bool = False, force: bool = False) -> dict:
    """Export a subset of an audit's images as a benchmark, with a dataset card (`ddd-audit export`).

    Parameters
    ----------
    audit : AuditResult, str or path
        An audit with its per-image scores (its report built).
    subset : str
        "trivial", "inconclusive", "impossible" (at `tolerance`), "balanced" (as many images from every
        difficulty bin), "label-issues" (the images cleanlab flags, with a relabel template), or a pandas
        query over the images table such as ``"n_correct >= 3 and label_quality < 0.2"``.
    out : str or path
        The folder to write; an existing folder that is not empty is refused unless `force`.
    format : {"csv", "parquet", "imagefolder", "list"}, default "csv"
        The image rows with every score, an ImageFolder tree (symbolic links; PNG files for array
        datasets such as digits), or a list of file paths.
    tolerance : int, default 1
        t of the split: trivial when n_correct >= M - t, impossible when n_correct <= t.
    bins : "n_correct" or int, default "n_correct"
        Balanced only: one bin per n_correct, or this many equal-width bins of n_correct / M.
    per_bin : int, optional
        Balanced only: images per bin (default and at most: the smallest bin's count).
    seed : int, default 0
        Balanced only: the seed of the draw.
    copy : bool, default False
        imagefolder only: copy the image files instead of linking them.
    force : bool, default False
        Replace an earlier export in `out` (a folder with card.json), nothing else.

    Returns
    -------
    card : dict
        The dataset card (also written as out/card.json and out/README.md): ``card["n_images"]``,
        ``card["rule"]``, ``card["counts"]["by_class"]`` and ``["by_category"]``, the source audit and its
        models.
    """
    from audit.curation.export import FORMATS, export_selection, select_images

    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if copy and format != "imagefolder":
        raise ValueError(f"copy needs format='imagefolder'; format={format!r} links or copies no file")
    result = _as_result(audit)
    selection = select_images(result, subset, tolerance=tolerance, bins=bins, per_bin=per_bin, seed=seed)
    command = (f"audit.export_subset({str(result.path)!r}, {subset!r}, {str(out)!r}, format={format!r}, "
               f"tolerance={tolerance}" + (f", bins={bins!r}, per_bin={per_bin}, seed={seed}" if subset == "balanced"
                                           else "") + ")")
    return export_selection(result, selection, out, fmt=format, copy=copy, force=force, command=command)
