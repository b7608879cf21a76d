"""ddd-audit: audit an image dataset for dichotomous data difficulty.

`audit.load(path)` reads an audit directory back as an `AuditResult`; `audit.run`, `audit.import_decisions`,
`audit.load_report`, `audit.draw_figure` and `audit.export_subset` are the notebook API (`audit.api`).
Importing this package needs neither torch, Streamlit, Ray nor a GPU: the API is imported on first use.
"""

from audit.store import AuditError, AuditResult, load

__all__ = ["AuditConfig", "AuditError", "AuditResult", "Report", "draw_figure", "export_subset", "figure_names",
           "import_decisions", "load", "load_report", "plan", "run", "save_figures", "__version__"]
__version__ = "0.1.0"

_API = {"draw_figure", "export_subset", "figure_names", "import_decisions", "load_report", "plan", "run",
        "save_figures"}


def __getattr__(name: str):
    """The API's functions and `AuditConfig`, imported when first used (PEP 562)."""
    if name in _API:
        from audit import api

        return getattr(api, name)
    if name == "Report":
        from audit.report import Report

        return Report
    if name == "AuditConfig":
        from audit.running.engine import AuditConfig

        return AuditConfig
    raise AttributeError(f"module 'audit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
