"""benchmarks/gpu_check.py, the prepared GPU check: its tiny CPU run passes every section (or says why it
skipped one) without Streamlit, faiss or cleanlab, and RESULTS.md's "GPU" section survives a rewrite."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402
import run_all  # noqa: E402

#: the only sections that may skip here, and the module whose absence is their reason
MAY_SKIP = {"ray": "ray", "pretrained": "timm"}
NOT_NEEDED = ("streamlit", "faiss", "cleanlab")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The whole check at tiny sizes on the CPU, with Streamlit, faiss and cleanlab made unimportable."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    blocked = tmp / "blocked"
    for name in NOT_NEEDED:
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked: the GPU check must not "
                                                    "need it')\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(blocked), os.environ.get("PYTHONPATH")]))}
    out = tmp / "out"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--tiny", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


@pytest.mark.slow
def test_every_section_runs_or_says_why(tiny_run):
    result, _ = tiny_run
    assert result["device"] == "cpu" and result["tiny"] is True
    assert result["imported_optional"] == []
    sections = result["sections"]
    assert list(sections) == list(gpu_check.SECTIONS)
    for name, entry in sections.items():
        assert entry["status"] in ("ok", "skipped"), f"{name}: {entry.get('error')}\n{entry.get('traceback')}"
        if entry["status"] == "skipped":
            module = MAY_SKIP.get(name)
            assert module and importlib.util.find_spec(module) is None, f"{name} skipped: {entry['reason']}"
            assert module.lower() in entry["reason"].lower()
        assert entry["seconds"] >= 0


@pytest.mark.slow
def test_training_is_timed_per_epoch_and_projected(tiny_run):
    result, _ = tiny_run
    train = result["sections"]["train"]
    epochs = train["spec"]["epochs"]
    assert epochs == gpu_check.TINY.train_epochs and train["spec"]["group"] == "base"
    assert len(train["train_epoch_s"]) == epochs and len(train["record_s"]) == epochs + 1
    assert len(train["val_accuracy"]) == epochs + 1
    assert train["train_images_per_s"] > 0 and train["record_images_per_s"] > 0
    assert train["images_per_epoch"] == result["data"]["n_train"]
    calib = result["sections"]["calibration"]
    assert set(calib["rate_relative_to_base"]) == {"base", "half_batch", "architecture"}
    assert calib["kinds"]["architecture"]["spec"]["arch"] == "densenet_small"
    assert calib["kinds"]["half_batch"]["spec"]["split_batch"] is True
    summary = result["summary"]
    from audit.models.variants import preset_variants

    # the CPU has no non-deterministic kernels, so the grid it projects leaves that condition out
    assert summary["grid_variants"] == sum(s.deterministic for s in preset_variants("paper"))
    assert 0 < summary["paper_variant_s"] < summary["grid_s"]
    assert summary["grid_rates_from"] == "calibration section"


@pytest.mark.slow
def test_deterministic_condition_repeats_bit_for_bit(tiny_run):
    det = tiny_run[0]["sections"]["determinism"]
    assert det["deterministic_repeats_bit_for_bit"] is True
    assert det["deterministic_repeat"] == {"weights_equal": True, "decisions_equal": True, "true_prob_equal": True,
                                           "final_decisions_differing": 0.0, "max_abs_true_prob_diff": 0.0}
    # on the CPU the non-deterministic condition has nothing to change: it trains exactly as the deterministic one
    assert det["device_has_nondeterministic_kernels"] is False
    assert det["nondeterministic_differs"] is None and "no non-deterministic kernels" in det["nondeterministic_note"]
    assert det["nondeterministic_vs_deterministic"]["weights_equal"] is True


@pytest.mark.slow
def test_out_of_memory_halves_the_batch_and_keeps_the_decisions(tiny_run):
    oom = tiny_run[0]["sections"]["oom"]
    assert oom["halved"] is True and oom["decisions_equal"] is True and oom["decisions_equal_fraction"] == 1.0
    assert "injected" in oom["how"]
    limit = oom["absurd_batch"] // 4
    assert oom["final_batch"] <= limit < oom["absurd_batch"]
    seen = oom["batches_seen_by_model"]
    # the absurd batch first, then halves until one fits, then the rest at that size
    assert seen[0] == oom["absurd_batch"] and all(b == a // 2 for a, b in zip(seen, seen[1:], strict=False) if a > limit)
    assert max(seen[seen.index(oom["final_batch"]):]) == oom["final_batch"]


@pytest.mark.slow
def test_pretrained_sharing_ray_and_compile(tiny_run):
    sections = tiny_run[0]["sections"]
    pre = sections["pretrained"]
    if pre["status"] == "ok":
        assert list(pre["per_model"]) == list(gpu_check.PRETRAINED)
        for m in pre["per_model"].values():
            assert m["images_per_s"] > 0 and m["pure_forward_images_per_s"] > 0 and m["dataloader_images_per_s"] > 0
            assert m["input_size"][1:] == [gpu_check.TINY.pretrained_size] * 2
            assert m["decisions_equal_dataloader"] >= 0.9  # the same pixels through two pipelines
        assert pre["cache_stats"]["decoded"] == 3 and pre["speedup_over_dataloader"] > 0
    share = sections["sharing"]
    # one process, then several sharing the device: 1, 2 and 4 at the full sizes, 1 and 2 at the tiny ones
    assert gpu_check.FULL.share_processes == (1, 2, 4) and gpu_check.TINY.share_processes == (1, 2)
    assert list(share["runs_by_processes"]) == ["1", "2"]
    for r in share["runs_by_processes"].values():
        assert r["models_stored"] == 4 and r["wall_s"] > 0 and 0 < r["busy_s"] <= r["wall_s"] and r["busy_speedup_over_one_process"] > 0
        assert set(r["job_s"]) == set(share["variants"])
    assert share["faster"].startswith(("one process", "2 processes", "4 processes"))
    ray = sections["ray"]
    if ray["status"] == "ok":
        assert ray["models_stored"] == 4 and ray["gpus_per_job"] == 0.25 and "no GPU" in ray["note"]
    comp = sections["compile"]
    assert comp["train_images_per_s"] > 0 and comp["steady_train_speedup"] > 0
    assert comp["spec"] == sections["train"]["spec"]


@pytest.mark.slow
def test_markdown_table_names_every_check(tiny_run):
    _, md = tiny_run
    assert "| check | result |" in md and "error:" not in md and "not run" not in md
    for words in ("`paper` variant", "recording every epoch", "projected: one full `paper` variant",
                  "projected: the `paper` grid", "torch.compile", "processes on the one device",
                  "--gpus-per-job 0.25", "repeats bit for bit", "non-deterministic condition", "out-of-memory",
                  "the whole check"):
        assert words in md, words


def _write_check(folder, device: str, *, tiny: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpu_check.json").write_text(json.dumps({"device": device, "tiny": tiny}))
    (folder / "gpu_check.md").write_text("measured here\n\n| check | result |\n| --- | --- |\n| x | 1 |\n")


def test_results_gpu_section_includes_only_a_cuda_run(tmp_path):
    none = run_all.gpu_section(tmp_path / "missing")
    assert none[0] == "## GPU" and "Not yet measured on a GPU" in "\n".join(none)
    assert "python3 benchmarks/gpu_check.py --device cuda --out benchmarks/gpu_check" in "\n".join(none)
    _write_check(tmp_path / "cpu", "cpu")
    assert run_all.gpu_section(tmp_path / "cpu") == none
    _write_check(tmp_path / "tiny", "cuda:0", tiny=True)
    assert run_all.gpu_section(tmp_path / "tiny") == none
    _write_check(tmp_path / "gpu", "cuda:0")
    assert run_all.gpu_section(tmp_path / "gpu") == ["## GPU", "", "measured here\n\n| check | result |\n"
                                                     "| --- | --- |\n| x | 1 |"]
    # a rewrite of RESULTS.md keeps the section, after the headlines and before the benchmarks' own figures
    text = run_all.render({"bench_x": {"benchmark": "x"}}, {"cpu": "test"})
    assert text.index("## Headlines") < text.index("## GPU") < text.index("## x")


def test_markdown_says_why_a_section_did_not_run():
    result = {"device": "cuda:0", "device_name": "a GPU", "versions": {"torch": "2"}, "date": "today",
              "seconds_total": 12.0, "sections": {
                  "ray": {"status": "skipped", "reason": "Ray is not importable here"},
                  "compile": {"status": "error", "error": "RuntimeError: no compiler\nmore"}}}
    result["summary"] = gpu_check.summarize(result)
    md = gpu_check.render_markdown(result)
    assert "| Ray, 4 variants at --gpus-per-job 0.25 | skipped: Ray is not importable here |" in md
    assert "| torch.compile (--compile) | error: RuntimeError: no compiler |" in md
    assert "| `paper` variant | not run |" in md and result["summary"] == {}
