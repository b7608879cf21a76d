"""The report: every measure of a stored audit, as registered parts that are computed once and then drawn.

- `parts`: `ReportContent` (the report in memory), `ReportInputs`, `@register_part` and `compute_report`.
- The built-in parts, one module each, in report order: `models`, `split`, `consistency`, `classes`,
  `dynamics`, `deeper`, `representations`, `training_scores`, `humans`, `scored`.
- `text`: the report's words (`format_summary`, `headline`, `count_noun`).
- `build`: `build_report` writes report/ and the per-image scores; `report_state` and `read_report_tables`
  read them back.
- `loaded`: `Report`, one audit's report loaded once, for every reader (app, figures, HTML, PDF, study).
- `figures`, `html`, `pdf`: the written report as paper figures, one HTML page or one PDF.
"""

from audit.report import (  # noqa: F401  (the built-in parts register themselves on import)
    classes,
    consistency,
    deeper,
    dynamics,
    humans,
    models,
    representations,
    scored,
    split,
    training_scores,
)
from audit.report.build import (
    OPTIONAL_COLUMNS,
    REPORT_COLUMNS,
    REQUIRED_FILES,
    build_report,
    read_report_tables,
    report_state,
)
from audit.report.loaded import Report
from audit.report.parts import (
    ReportContent,
    ReportInputs,
    ReportPart,
    compute_report,
    register_part,
    report_parts,
    unregister_part,
)
from audit.report.text import count_noun, format_summary, headline

#: The parts the tool brings; parts registered later (a lab's own, in a notebook or a plugin) come after them.
BUILT_IN_PARTS = tuple(p.name for p in report_parts())


def added_parts() -> list[ReportPart]:
    """The registered parts that the tool does not bring (see `register_part`), in report order."""
    return [p for p in report_parts() if p.name not in BUILT_IN_PARTS]

__all__ = [
    "BUILT_IN_PARTS",
    "OPTIONAL_COLUMNS",
    "REPORT_COLUMNS",
    "REQUIRED_FILES",
    "Report",
    "ReportContent",
    "ReportInputs",
    "ReportPart",
    "added_parts",
    "build_report",
    "compute_report",
    "count_noun",
    "format_summary",
    "headline",
    "read_report_tables",
    "register_part",
    "report_parts",
    "report_state",
    "unregister_part",
]
