"""The report's representational similarity and confusion parts on a synthetic audit, and the Deeper
measures and Classes pages (AppTest) that show them; the penultimate capture on a real network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from audit.deep.features import penultimate_features, representation_images
from audit.metrics.confusion import ensemble_confusion
from audit.metrics.representation import Representation, linear_cka
from audit.report import build_report
from audit.store import AuditDir, load
from audit.synthetic import make_synthetic_audit

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES, N_MODELS, N_CAPTURED = 300, 5, 120


def shared_features(n_models: int, ids: np.ndarray, seed: int = 0) -> dict[int, np.ndarray]:
    """Features of the captured images: a shared signal, plus more noise for later models."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(len(ids), 12))
    return {m: signal @ rng.normal(size=(12, 12)) + m * 0.7 * rng.normal(size=(len(ids), 12))
            for m in range(n_models)}


@pytest.fixture(scope="module")
def audit_with_representations(tmp_path_factory) -> tuple[Path, dict]:
    path = make_synthetic_audit(tmp_path_factory.mktemp("deeper") / "audit", n_images=N_IMAGES,
                                n_models=N_MODELS, n_epochs=3)
    names = load(path).model_names
    ids = representation_images(N_IMAGES, N_CAPTURED, seed=0)
    feats = shared_features(len(names), ids)
    AuditDir(path).write_extras({f"representation/{name}.npz": Representation.from_features(feats[i], ids).to_arrays()
                                 for i, name in enumerate(names)})
    build_report(load(path))
    return path, {name: feats[i] for i, name in enumerate(names)}


def open_page(audit: Path, page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=120)
    at.session_state["audit_path"] = str(audit)
    at.run()
    at.switch_page(f"{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_report_writes_rsa_and_cka_from_the_stored_gram_matrices(audit_with_representations):
    path, feats = audit_with_representations
    result = load(path)
    summary = result.summary()
    rep = summary["representation"]
    names = result.model_names
    assert rep["n_images"] == N_CAPTURED and rep["base"] == names[0]
    cka = pd.read_csv(result.report_path("cka_all.csv"), index_col=0)
    assert list(cka.index) == names
    # float32 storage of the Gram matrix against CKA of the features themselves
    assert cka.loc[names[0], names[1]] == pytest.approx(linear_cka(feats[names[0]], feats[names[1]]), abs=1e-5)
    rsa = pd.read_csv(result.report_path("rsa_all.csv"), index_col=0).to_numpy()
    assert np.allclose(np.diag(rsa), 1) and np.allclose(rsa, rsa.T)
    assert rsa[0, 1] > rsa[0, -1]  # the noisiest model is the least like the base
    vs = pd.read_csv(result.report_path("representation_vs_base.csv"))
    assert set(vs["images"]) == {"all", "inconclusive"} and names[0] not in set(vs["model"])
    assert result.report_path("representation.png").stat().st_size > 10_000


def test_report_writes_the_ensemble_confusion_matrix(audit_with_representations):
    path, _ = audit_with_representations
    result = load(path)
    summary = result.summary()
    cats = pd.read_parquet(Path(path) / "images.parquet")["category"].to_numpy()
    table = pd.read_csv(result.report_path("confusion_impossible.csv"), index_col=0)
    want = ensemble_confusion(result.predicted(), result.labels, result.n_classes, mask=cats == "impossible")
    assert np.array_equal(table.to_numpy(), want)
    assert table.to_numpy().sum() == (cats == "impossible").sum() * N_MODELS
    full = pd.read_csv(result.report_path("confusion_all.csv"), index_col=0)
    assert full.to_numpy().sum() == N_IMAGES * N_MODELS
    top = summary["confusion"]["impossible_top"][0]
    assert top["decisions"] == int((want - np.diag(np.diag(want))).max())
    assert result.report_path("confusion.png").exists()


def test_deeper_page_shows_every_measure_it_has(audit_with_representations):
    path, _ = audit_with_representations
    at = open_page(path, "deeper")
    headers = [h.value for h in at.header]
    assert headers == ["Representational similarity", "Training-dynamics scores", "Stability of the split",
                       "Prediction depth", "Learnability", "Label issues"]
    specs = [el.proto.spec for el in at.get("vega_lite_chart")]
    assert any(f"RSA between {N_MODELS} models, all images" in s for s in specs)
    assert any("against the base model" in s for s in specs)
    at.radio(key="deeper_rsa_measure").set_value("CKA").run()
    at.radio(key="deeper_rsa_subset").set_value("inconclusive").run()
    assert not at.exception
    assert any(f"CKA between {N_MODELS} models, inconclusive images" in el.proto.spec for el in at.get("vega_lite_chart"))
    # a synthetic audit has no depth, learnability or probabilities: each section says so
    infos = " ".join(i.value for i in at.info)
    assert "No prediction depth" in infos and "No learnability" in infos and "No label issues" in infos


def test_deeper_page_without_representations(tmp_path):
    path = make_synthetic_audit(tmp_path / "plain", n_images=120, n_models=3, n_epochs=2)
    build_report(load(path))
    at = open_page(path, "deeper")
    assert "No representations were captured" in " ".join(i.value for i in at.info)


def test_classes_page_shows_the_confusion_matrix(audit_with_representations):
    path, _ = audit_with_representations
    at = open_page(path, "classes")
    specs = [el.proto.spec for el in at.get("vega_lite_chart")]
    assert any("taken for" in s for s in specs)


def test_penultimate_features_are_the_input_of_the_classifier():
    import torch

    from audit.models.architectures import create_architecture
    from audit.running.train import Normalizer, TensorData

    torch.manual_seed(0)
    torch.set_num_threads(1)
    images = np.random.default_rng(0).integers(0, 255, size=(6, 8, 8, 1), dtype=np.uint8)
    data = TensorData.from_numpy(images, np.zeros(6, dtype=np.int64), torch.device("cpu"))
    norm = Normalizer.fit(data)
    model = create_architecture("resnet_small", in_channels=1, n_classes=3).eval()
    feats = penultimate_features(model, data.images, norm, batch_size=4)
    with torch.inference_mode():
        x = norm(data.images, True)
        logits = model(x)
    assert feats.shape == (6, model.fc.in_features)
    assert np.allclose(feats @ model.fc.weight.detach().numpy().T + model.fc.bias.detach().numpy(),
                       logits.numpy(), atol=1e-5)


def test_representation_images_are_seeded_and_bounded():
    a = representation_images(10_000, 2000, seed=3)
    assert len(a) == 2000 and len(np.unique(a)) == 2000 and np.all(np.diff(a) > 0)
    assert np.array_equal(a, representation_images(10_000, 2000, seed=3))
    assert not np.array_equal(a, representation_images(10_000, 2000, seed=4))
    assert np.array_equal(representation_images(50, 2000), np.arange(50))
    with pytest.raises(ValueError, match="at least 3"):
        representation_images(50, 2)


def test_printed_summary_gives_mean_rsa_cka_and_the_top_confusions(audit_with_representations):
    from audit.report import format_summary

    path, _ = audit_with_representations
    summary = load(path).summary()
    text = format_summary(summary)
    rsa_all = summary["representation"]["mean"]["rsa"]["all"]
    assert "Representations and confusions" in text and f"all {rsa_all:.3f}" in text
    top = summary["confusion"]["impossible_top"][0]
    assert f"{top['true']} as {top['predicted']} {100 * top['share']:.1f}%" in text


def test_a_real_audit_stores_each_variants_gram_matrix(digits_audit):
    """The digits audit (trained in conftest) keeps every variant's penultimate Gram matrix, no features."""
    result = load(digits_audit)
    n_val = result.n_images
    ids = representation_images(n_val, 2000, seed=0)
    for name in result.model_names:
        arrays = result.representation(name)
        assert arrays is not None and set(arrays) == {"image_ids", "gram_upper", "sums", "n_features"}
        assert np.array_equal(arrays["image_ids"], ids)
        assert arrays["gram_upper"].shape == (len(ids) * (len(ids) + 1) // 2,)
        record = result.models.set_index("name").loc[name, "representation"]
        facts = record if isinstance(record, dict) else json.loads(record)
        assert facts["n_images"] == len(ids) and facts["n_features"] == int(arrays["n_features"])
    rep = result.summary()["representation"]
    assert rep["models"] == result.model_names and rep["n_images"] == len(ids)


@pytest.mark.parametrize("value", ["1", "2", "-5"])
def test_rsa_images_below_three_is_refused(value, capsys):
    from tests.conftest import invoke_cli

    code, out = invoke_cli(["run", "--dataset", "digits", "--rsa-images", value, "--dry-run"], capsys)
    assert code != 0
    assert "--rsa-images" in out or "rsa-images" in out


def test_classes_page_lists_confusions_of_many_classes(tmp_path):
    path = make_synthetic_audit(tmp_path / "many", n_images=400, n_models=3, n_epochs=2, n_classes=80)
    build_report(load(path))
    at = open_page(path, "classes")
    assert not any("taken for" in el.proto.spec for el in at.get("vega_lite_chart"))
    top = [d.value for d in at.dataframe if "decisions" in d.value.columns][-1]
    assert len(top) == 20 and (top["true"] != top["predicted"]).all()
    assert top["decisions"].is_monotonic_decreasing


@pytest.mark.slow
def test_a_linear_probed_pretrained_model_stores_its_features_gram_matrix(tmp_path):
    from audit.running.engine import AuditConfig, plan_audit, run_audit

    plan = plan_audit(AuditConfig(dataset="digits", variants="none", device="cpu", rsa_images=100,
                                  models=["efficientnet_lite0@32"]))
    run_audit(plan, tmp_path / "audit")
    result = load(tmp_path / "audit")
    name = "efficientnet_lite0-32px"
    arrays = result.representation(name)
    assert np.array_equal(arrays["image_ids"], representation_images(result.n_images, 100, seed=0))
    facts = json.loads(result.models.set_index("name").loc[name, "representation"])
    assert facts["n_images"] == 100 and facts["n_features"] == int(arrays["n_features"]) == 1280
    rep = Representation.from_arrays(arrays)
    assert np.all(np.diag(rep.gram) > 0) and np.allclose(rep.gram, rep.gram.T)
    assert np.all(rep.sums >= 0)  # the features come after a ReLU-like activation and global pooling
