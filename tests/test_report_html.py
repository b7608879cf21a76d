"""The headline, the `figures` command and the one-file HTML report, on a small synthetic audit."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import audit
from audit.metrics import agreement
from audit.plots import paper
from audit.plots.style import FORMATS
from audit.report import build_report
from audit.report.figures import current_report
from audit.report.text import headline
from audit.store import REPORT_FIGURES
from audit.synthetic import make_synthetic_audit
from tests.conftest import invoke_cli

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = {
    "split": {"observed": {"trivial": 0.5144, "inconclusive": 0.3536, "impossible": 0.132},
              "binomial": {"trivial": 0.0368, "inconclusive": 0.9632, "impossible": 6e-8}},
    "error_consistency": {"all": {"mean": 0.6225}, "inconclusive": {"mean": 0.2588}},
}


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    path = make_synthetic_audit(tmp_path_factory.mktemp("html") / "audit", n_images=240, n_models=5, n_epochs=4,
                                n_pretrained=1, random_state=5)
    build_report(audit.load(path), n_bootstrap=0)
    return path


def test_headline_in_one_sentence():
    assert headline(SUMMARY) == ("51% trivial and 13% impossible, where the binomial null predicts 4% and <1%; "
                                 "κ falls from 0.62 on all images to 0.26 on the inconclusive ones")
    rising = {**SUMMARY, "error_consistency": {"all": {"mean": 0.2}, "inconclusive": {"mean": 0.3}}}
    assert headline(rising).endswith("κ rises from 0.20 on all images to 0.30 on the inconclusive ones")
    assert headline({"split": SUMMARY["split"]}).endswith("predicts 4% and <1%")
    assert headline({"models": []}) is None


def test_tp_agreement_histograms_count_models_right_per_epoch():
    # 3 images, 2 models, 2 epochs
    c = np.array([[[0, 1], [0, 1]], [[1, 1], [0, 1]], [[0, 0], [0, 1]]], dtype=bool)
    observed, null = agreement.tp_agreement_histograms(c)
    np.testing.assert_array_equal(observed, [[2, 0], [1, 1], [0, 2]])
    # epoch 0: accuracies 1/3 and 0 -> P(0 right) = 2/3, P(1) = 1/3, P(2) = 0; times 3 images
    np.testing.assert_allclose(null[:, 0], [2, 1, 0])
    assert null.sum(axis=0) == pytest.approx([3, 3])
    with pytest.raises(ValueError, match="shape \\(n_images, n_models, n_epochs\\)"):
        agreement.tp_agreement_histograms(c[:, :, 0])


@pytest.mark.slow
def test_figures_command_writes_every_figure_in_each_format(reported, tmp_path, capsys):
    out = tmp_path / "figs"
    code, text = invoke_cli(["figures", str(reported), "--out", str(out), "--format", "pdf,svg,png"], capsys)
    assert code == 0, text
    expected = list(paper.paper_figures(current_report(audit.load(reported))))
    assert expected == list(paper.FIGURES)  # the synthetic audit has pixels, epochs and several models
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{f}" for n in expected for f in FORMATS)
    assert f"{len(expected)} figures (pdf, svg, png) written to {out}" in text
    assert (out / "histogram.pdf").read_bytes().startswith(b"%PDF")
    two = tmp_path / "two"
    code, text = invoke_cli(["figures", str(reported), "--out", str(two), "--format", "png", "--style", "slides",
                             "--only", "histogram,kappa_by_condition"], capsys)
    assert code == 0, text
    assert sorted(p.name for p in two.iterdir()) == ["histogram.png", "kappa_by_condition.png"]


def test_figures_command_refuses_bad_input(reported, tmp_path, capsys):
    code, text = invoke_cli(["figures", str(reported), "--out", str(tmp_path), "--format", "tiff"], capsys)
    assert code == 2 and "formats must be among pdf, svg, png; got 'tiff'" in text
    code, text = invoke_cli(["figures", str(reported), "--out", str(tmp_path), "--style", "poster"], capsys)
    assert code == 2 and "style must be one of paper, slides" in text
    code, text = invoke_cli(["figures", str(reported), "--out", str(tmp_path), "--only", "histogram,fig9"], capsys)
    assert code == 2 and "figure names must be among histogram, kappa_by_condition" in text
    bare = make_synthetic_audit(tmp_path / "bare", n_images=60, n_models=3, n_epochs=2)
    code, text = invoke_cli(["figures", str(bare), "--out", str(tmp_path / "f")], capsys)
    assert code == 2 and "run `ddd-audit report" in text and not (tmp_path / "f").exists()


class _Page(HTMLParser):
    """The images, links and scripts of a page, and its text."""

    def __init__(self):
        super().__init__()
        self.images, self.fetches, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag in ("script", "link", "iframe") or (tag != "img" and attrs.get("src")):
            self.fetches.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.slow
def test_report_html_is_one_self_contained_file(reported, capsys):
    code, text = invoke_cli(["report", str(reported), "--html"], capsys)
    assert code == 0, text
    page_path = reported / "report" / "report.html"
    assert f"HTML report: {page_path}" in text
    page = _Page()
    page.feed(page_path.read_text(encoding="utf-8"))
    names = list(paper.paper_figures(current_report(audit.load(reported))))
    others = [Path(n).stem for n in audit.load(reported).summary()["files"]["figures"]
              if n not in REPORT_FIGURES.values()]
    assert [img["alt"] for img in page.images] == names + others
    assert all(img["src"].startswith("data:image/svg+xml;base64,") for img in page.images[:len(names)])
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images[len(names):])
    assert page.fetches == []  # no script, stylesheet or frame to fetch
    body = " ".join(page.text)
    assert headline(audit.load(reported).summary()) in body
    for name in names:  # each figure has its how-to-read note
        assert paper.FIGURES[name][1][:40] in body
    assert "Accuracy per class" in body and "Error consistency κ on all images" in body
    code, text = invoke_cli(["report", str(reported)], capsys)
    assert code == 0 and "report/report.html is from an earlier build; --html rewrites it" in text


def test_overview_opens_with_the_headline(reported):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=120)
    at.session_state["audit_path"] = str(reported)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    summary = audit.load(reported).summary()
    first = at.markdown[0].value
    assert first == f"**{headline(summary)}**"
    labels = [m.label for m in at.metric]
    assert labels.index("Mean κ on all images") < labels.index("Images")  # the κ pair comes before the models
    shown = {m.label: m.value for m in at.metric}
    assert shown["Mean κ on inconclusive images"] == f"{summary['error_consistency']['inconclusive']['mean']:.2f}"


def test_an_imported_audit_without_pixels_gets_its_figures_and_a_note(tmp_path, capsys):
    from tests.test_importers import write_mvh_folder

    out = tmp_path / "imported"
    code, text = invoke_cli(["import", str(write_mvh_folder(tmp_path / "raw", seed=5)), "--out", str(out)], capsys)
    assert code == 0, text
    code, text = invoke_cli(["report", str(out), "--html"], capsys)
    assert code == 0, text
    inputs = current_report(audit.load(out))
    assert inputs.pixels is None
    drawn = paper.paper_figures(inputs)
    assert "decision_maps" not in drawn and "example_pairs" in drawn  # one recorded epoch; no pixels to show
    note = drawn["example_pairs"]()
    assert "this audit stores no pixels" in note.axes[0].texts[0].get_text()
    page = _Page()
    page.feed((out / "report" / "report.html").read_text(encoding="utf-8"))
    assert [img["alt"] for img in page.images][:len(drawn)] == list(drawn)


def test_report_pdf_has_the_summary_then_one_figure_a_page(reported, capsys):
    import math
    import re

    from audit.report import format_summary
    from audit.report.pdf import LINES_PER_PAGE, _wrapped

    code, text = invoke_cli(["report", str(reported), "--pdf"], capsys)
    assert code == 0, text
    path = reported / "report" / "report.pdf"
    assert f"PDF report: {path}" in text
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and b"ddd-audit report: synthetic" in data  # the document's title
    summary = audit.load(reported).summary()
    text_pages = math.ceil(len(_wrapped(format_summary(summary))) / LINES_PER_PAGE)
    figures = len(paper.paper_figures(current_report(audit.load(reported))))
    assert len(re.findall(rb"/Type\s*/Page[^s]", data)) == text_pages + figures
    assert all(len(line) <= 110 for line in _wrapped("x" * 250 + " " + "word " * 60))
