"""The tutorial notebook (docs/tutorials/notebook.ipynb) runs from top to bottom in a fresh kernel, and what it
prints is what the audit it wrote holds: so the notebook path through `import audit` cannot rot."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT

NOTEBOOK = ROOT / "docs" / "tutorials" / "notebook.ipynb"

pytestmark = pytest.mark.slow


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_the_tutorial_notebook_runs_and_prints_what_it_wrote(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    # importing Streamlit (as the app tests in this process do) sets MPLBACKEND=Agg for every child process;
    # a user's kernel has Jupyter's inline backend
    monkeypatch.delenv("MPLBACKEND", raising=False)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]

    audit_dir = tmp_path / "runs" / "notebook-digits"
    summary = json.loads((audit_dir / "report" / "summary.json").read_text())
    counts = summary["split"]["counts"]
    printed = next(_text(c) for c in code if "split counts:" in _text(c))
    assert printed.strip() == f"split counts: {counts!r}"
    assert sum(counts.values()) == summary["audit"]["n_images"] == 599  # a third of digits' 1,797 images
    summary_cell = next(_text(c) for c in code if _text(c).startswith("Audit: "))
    assert summary_cell.startswith(f"Audit: 599 images, 10 classes, {len(summary['models'])} models (complete)")

    # the two figures drawn into axes, and the per-class figure on its own, came out as images
    figures = [c for c in code if "draw_figure" in c.source]
    assert len(figures) == 2
    for cell in figures:
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.source
    assert sorted(p.name for p in (audit_dir / "figures").iterdir()) == ["histogram.png", "per_class_accuracy.png"]

    # the export holds the audit's inconclusive images, as the notebook says and as torchvision reads them
    card = json.loads((tmp_path / "exports" / "digits-inconclusive" / "card.json").read_text())
    assert card["n_images"] == counts["inconclusive"]
    export_cell = next(_text(c) for c in code if "images exported" in _text(c))
    assert export_cell.startswith(f"{counts['inconclusive']} images exported;")
    pngs = list((tmp_path / "exports" / "digits-inconclusive").rglob("*.png"))
    assert len(pngs) == counts["inconclusive"]
    read_back = next(_text(c) for c in code if "ImageFolder(" in c.source)
    assert re.match(rf"{counts['inconclusive']} images in \d+ classes", read_back)
