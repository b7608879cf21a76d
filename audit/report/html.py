"""The report as one self-contained HTML file: headline, summary, every paper figure and the tables, with notes.

Figures are embedded as SVG data and nothing is fetched, so the file opens
offline and can be mailed. It is built from the written report (`current_report`),
and writes nothing but the one file.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from audit.plots import paper
from audit.report.figures import current_report
from audit.report.loaded import Report
from audit.report.text import format_summary, headline
from audit.store import REPORT_DIR, REPORT_FIGURES, AuditDir, AuditResult, atomic_path

HTML_FILE = "report.html"
#: κ matrices with more models than this are left out of the tables (the figure shows them)
TABLE_MAX_MODELS = 40
#: The tables shown, in order: (key in `read_report_tables`, title, how to read it).
TABLES = (
    ("histogram", "Images by models correct",
     "observed: images that exactly n_correct models classify correctly; binomial and beta_binomial: the counts "
     "expected under the two nulls."),
    ("per_class", "Accuracy per class", "one column per model; mean over models last."),
    ("swaps", "Decisions that change per epoch", "images whose decision changes from epoch_from to epoch_to."),
    ("tp_by_epoch", "TP-agreement per epoch",
     "bimodality = kurtosis − skewness² − 1 of TP-agreement (lower: more bimodal), beside independent models."),
    ("ec_all", "Error consistency κ on all images", "κ between each pair of models (Geirhos et al. 2020)."),
    ("ec_inconclusive", "Error consistency κ on the inconclusive images", "as above, on the inconclusive images only."),
)
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2rem auto;
       max-width: 60rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
.headline { font-size: 1.15rem; font-weight: 600; background: #f3f6fa; border-left: 4px solid #0072B2;
            padding: 0.6rem 0.9rem; margin: 1rem 0; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.92rem; color: #333; }
pre { background: #f7f7f7; padding: 0.8rem; white-space: pre-wrap; font-size: 0.82rem; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
.note { color: #555; font-size: 0.9rem; }
"""


#: on screen, figures are shown this much larger than their printed size (at 96 px per inch)
SCREEN_SCALE = 1.5


def _svg_data(fig) -> str:
    """A Figure as an SVG data URI (text kept as text, so it stays sharp and small)."""
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "savefig.bbox": "tight"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table_html(frame: pd.DataFrame) -> str:
    frame = frame.copy()
    for col in frame.select_dtypes("float").columns:
        frame[col] = frame[col].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    return frame.to_html(index=frame.index.name is not None, border=0, escape=True)


def render_html(inputs: Report, *, title: str, style: str = "paper",
                other_figures: dict[str, bytes] | None = None) -> str:
    """The whole report page from the figures' inputs (no files read or written).

    `other_figures` maps the file names of the report's other PNG figures (the
    deeper measures') to their bytes; they are shown after the paper figures.
    """
    summary = inputs.summary
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='note'>ddd-audit report, written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
             "Self-contained: it needs no network.</p>"]
    line = headline(summary)
    if line:
        parts.append(f"<p class='headline' id='headline'>{html.escape(line)}</p>")
    parts.append("<h2>Summary</h2>")
    parts.append(f"<pre>{html.escape(format_summary(summary))}</pre>")
    parts.append("<h2>Figures</h2>")
    for name, draw in paper.paper_figures(inputs).items():
        source, note = paper.FIGURES[name]
        fig = draw(style=style)
        width = round(fig.get_size_inches()[0] * 96 * SCREEN_SCALE)
        parts.append(f"<figure id='fig-{name}'><img alt='{html.escape(name)}' width='{width}' src='{_svg_data(fig)}'>"
                     f"<figcaption><b>{html.escape(name.replace('_', ' '))}</b> ({html.escape(source)}). "
                     f"{html.escape(note)}</figcaption></figure>")
    if other_figures:
        parts.append("<h2>More figures of the report</h2>")
        for file_name, png in other_figures.items():
            stem = Path(file_name).stem
            uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            parts.append(f"<figure id='fig-{html.escape(stem)}'><img alt='{html.escape(stem)}' src='{uri}'>"
                         f"<figcaption>{html.escape(file_name)} (see the README's Deeper measures)</figcaption>"
                         "</figure>")
    parts.append("<h2>Tables</h2>")
    for key, table_title, note in TABLES:
        frame = inputs.tables.get(key)
        if frame is None:
            continue
        if key.startswith("ec_") and len(frame) > TABLE_MAX_MODELS:
            parts.append(f"<p class='note'>{html.escape(table_title)}: {len(frame)} models, left out here "
                         f"(see the figure and report/{key}.csv).</p>")
            continue
        parts.append(f"<details id='table-{key}'><summary>{html.escape(table_title)}</summary>"
                     f"<p class='note'>{html.escape(note)}</p>{_table_html(frame)}</details>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_html_report(result: AuditResult, path: str | Path | None = None, *, style: str = "paper") -> Path:
    """Write the audit's report as one HTML file (default <audit>/report/report.html) and return its path."""
    inputs = current_report(result)
    dataset = result.manifest.get("dataset", {}).get("name") or result.path.name
    written = (inputs.summary.get("files") or {}).get("figures") or []
    others = {name: result.report_path(name).read_bytes() for name in written
              if name not in REPORT_FIGURES.values() and name.endswith(".png") and result.report_path(name).exists()}
    page = render_html(inputs, title=f"Dichotomous data difficulty: {dataset}", style=style, other_figures=others)
    out = Path(path) if path is not None else AuditDir(result.path).file(REPORT_DIR, HTML_FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, ".html") as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return out
