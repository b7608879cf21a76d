"""The report as one PDF: the headline and summary as text pages, then every paper figure, one per page.

Built from the written report (`current_report`) with matplotlib's PdfPages, so
it needs nothing beyond matplotlib; it writes nothing but the one file.
"""

from __future__ import annotations

from pathlib import Path

from audit.plots import paper
from audit.plots.style import new_figure
from audit.report.figures import current_report
from audit.report.text import format_summary, headline
from audit.store import REPORT_DIR, AuditDir, AuditResult, atomic_path

PDF_FILE = "report.pdf"
#: A4 portrait, in inches
PAGE_SIZE = (8.27, 11.69)
#: summary lines per text page (monospace, 7.5 pt, below the title)
LINES_PER_PAGE = 72
#: characters per summary line before it wraps
LINE_WIDTH = 110


def _wrapped(text: str) -> list[str]:
    """The summary's lines, each longer one broken at spaces and indented under itself."""
    import textwrap

    out = []
    for line in text.splitlines():
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        out.extend(textwrap.wrap(line, LINE_WIDTH, subsequent_indent=indent, drop_whitespace=True) or [""])
    return out


def _text_page(lines: list[str], *, title: str | None = None, headline_text: str | None = None):
    """One A4 page: an optional title and headline, then summary lines in monospace."""
    import textwrap

    fig, ax = new_figure(PAGE_SIZE[0], PAGE_SIZE[1])
    ax.set_axis_off()
    y = 0.97
    if title:
        fig.text(0.06, y, title, fontsize=13, fontweight="bold", va="top")
        y -= 0.035
    if headline_text:
        wrapped = textwrap.wrap(headline_text, 95)
        fig.text(0.06, y, "\n".join(wrapped), fontsize=9.5, fontweight="bold", va="top", linespacing=1.4)
        y -= 0.018 * len(wrapped) + 0.02
    fig.text(0.06, y, "\n".join(lines), fontsize=7.5, family="monospace", va="top")
    return fig


def write_pdf_report(result: AuditResult, path: str | Path | None = None, *, style: str = "paper") -> Path:
    """Write the audit's report as one PDF (default <audit>/report/report.pdf) and return its path.

    Pages: the headline and the summary text, then each figure of
    `paper.paper_figures` with its source and how to read it under it.
    """
    from matplotlib.backends.backend_pdf import PdfPages

    inputs = current_report(result)
    dataset = result.manifest.get("dataset", {}).get("name") or result.path.name
    lines = _wrapped(format_summary(inputs.summary))
    line = headline(inputs.summary)
    out = Path(path) if path is not None else AuditDir(result.path).file(REPORT_DIR, PDF_FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, ".pdf") as tmp, PdfPages(tmp, metadata={"Title": f"ddd-audit report: {dataset}"}) as pdf:
        for start in range(0, len(lines), LINES_PER_PAGE):
            first = start == 0
            pdf.savefig(_text_page(lines[start:start + LINES_PER_PAGE],
                                   title=f"Dichotomous data difficulty: {dataset}" if first else None,
                                   headline_text=line if first else None))
        for name, draw in paper.paper_figures(inputs).items():
            fig = draw(style=style)
            source, note = paper.FIGURES[name]
            fig.text(0.0, 0.0, f"{name.replace('_', ' ')} ({source}). {note}", fontsize=6, va="top",
                     wrap=True)
            pdf.savefig(fig, bbox_inches="tight")
    return out
