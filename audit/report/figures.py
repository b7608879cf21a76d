"""The paper figures of an audit: their inputs read from its written report, and the figures saved in formats.

`current_report` reads the written report that `audit.plots.paper` draws from (a `Report`: its tables,
maps, summary, conditions, TP-agreement histograms and pixels); `write_figures` saves every figure the
audit allows. Reading goes through `audit.store` only.
"""

from __future__ import annotations

from pathlib import Path

from audit.plots import paper
from audit.plots.style import check_style, parse_formats, save_figure
from audit.report.build import report_state
from audit.report.loaded import Report
from audit.store import AuditResult


def current_report(audit: AuditResult | Report) -> Report:
    """The audit's written report, for its figures (a `Report` is what `audit.plots.paper` draws from).

    Raises ValueError when the report is missing or older than the finished
    models (`ddd-audit report` writes it).
    """
    result = audit.result if isinstance(audit, Report) else audit
    if report_state(result, result.summary()) != "current":
        raise ValueError(f"the report of {result.path} is missing or older than its models; "
                         f"run `ddd-audit report {result.path}` first")
    return audit if isinstance(audit, Report) else Report.load(result)


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
    for name, draw in paper.paper_figures(current_report(result)).items():
        if keep is not None and name not in keep:
            continue
        if progress is not None:
            progress(name)
        written += save_figure(draw(style=style), Path(out) / name, chosen)
    return written
