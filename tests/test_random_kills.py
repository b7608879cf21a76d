"""Kills at random points: a small digits audit is killed (SIGKILL, the whole process group) 20 times at random
moments, the first second included, and each kill is followed by the same command. Every output the audit
keeps (decisions, probabilities, the images table, the report's tables and summary) must then equal that of
one uninterrupted run.

The kill moments are drawn from the time an uninterrupted run takes, so they fall in every stage: the imports,
before the manifest, training, the deeper measures and the report. They are drawn with more weight on the
early stages (density falling as 1/sqrt(t)), where a run's files change most often; the report, which a
resumed run rebuilds whole, still gets about a third of the kills. When a run ends before its kill, the
chain is complete; it is compared, and the next kills start a new chain in a fresh folder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.store import load

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# small sizes: the run's time is mostly the imports and the report, so kills still land in every stage;
# 2 epochs, so a variant killed mid-training resumes from a checkpoint
ARGS = ["run", "--dataset", "digits", "--variants", "minimal", "--epochs", "2", "--val-size", "150",
        "--train-size", "300", "--rsa-images", "0", "--device", "cpu"]
N_KILLS = 20
#: summary entries that record when, where and how long, not what
VOLATILE_SUMMARY = ("audit", "files")
VOLATILE_KEYS = ("seconds",)


def _env() -> dict:
    # one thread, so the uninterrupted run and every resumed one sum their floats in the same order
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "audit", *ARGS, "--out", str(out)], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _outputs(out: Path) -> dict:
    """Everything the audit keeps that must not depend on kills, as comparable values."""
    result = load(out)
    kept = {"images": result.images.reset_index(drop=True)}
    for name in result.models["name"]:
        kept[f"decisions/{name}"] = result.decision_array(name)
    for path in sorted((out / "probs").glob("*.npy")):
        kept[f"probs/{path.stem}"] = np.load(path)
    for path in sorted((out / "report").glob("*.csv")):
        kept[f"report/{path.name}"] = pd.read_csv(path)
    summary = json.loads((out / "report" / "summary.json").read_text())
    kept["summary"] = _without_timings({k: v for k, v in summary.items() if k not in VOLATILE_SUMMARY})
    return kept


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _assert_same(got: dict, want: dict, where: str) -> None:
    assert sorted(got) == sorted(want), f"{where}: other outputs {sorted(set(got) ^ set(want))}"
    for key, value in want.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(got[key], value, obj=f"{where}: {key}")
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[key], value, err_msg=f"{where}: {key}")
        else:
            assert got[key] == value, f"{where}: {key} differs"


def test_twenty_random_kills_each_resumed_by_the_same_command(tmp_path):
    started = time.monotonic()
    reference = _start(tmp_path / "reference")
    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err[-3000:]
    whole = time.monotonic() - started
    want = _outputs(tmp_path / "reference")

    rng = random.Random(32)
    chain, kills, log = 0, 0, []
    out = tmp_path / f"chain{chain}"
    for _attempt in range(3 * N_KILLS):
        if kills == N_KILLS:
            break
        moment = rng.uniform(0.05, 1.0) if kills == 0 else 0.05 + (whole - 0.05) * rng.random() ** 2
        proc = _start(out)
        try:
            proc.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
            log.append(f"{out.name}: killed at {moment:.2f} s")
            continue
        # the run finished before its kill: the chain is complete
        assert proc.returncode == 0, f"{log}\n{proc.stderr.read()[-3000:]}"
        _assert_same(_outputs(out), want, f"{out.name} after {log}")
        log.append(f"{out.name}: complete")
        chain += 1
        out = tmp_path / f"chain{chain}"
    assert kills == N_KILLS, log
    # the last chain: the same command once more, uninterrupted
    proc = _start(out)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"{log}\n{err[-3000:]}"
    _assert_same(_outputs(out), want, f"{out.name} after {log}")
    assert not list(tmp_path.rglob("*.tmp")), "a kill left a temporary file that a rerun kept"
