"""`ddd-audit import` at model-zoo scale: 1,000 models x 50,000 images, then the report.

A zoo's evaluation is generated as one file per model of predicted labels with the true-class
probability (`<model>.parquet`: image, predicted, true_prob) and one labels file, as a timm-sized zoo
on ImageNet's validation set would give. Then, each in a fresh process so that its peak memory is its
own:
1. the peer: reading every file with pandas and nothing else (the I/O floor);
2. `ddd-audit import` (read, check, write the audit directory);
3. `ddd-audit report` on the imported audit (split, nulls, error consistency with bootstrap CIs, ...);
4. the app's pages on it, first render each (AppTest, as benchmarks/bench_app.py).
Score arrays (full 1,000-class logits) are measured apart at a size that fits: 20 models x 5,000 images.
Targets: import + report under 60 s and under 4 GB on 2 cores; each page under 2 s.
Run: .venv/bin/python benchmarks/bench_import.py [--models 1000] [--images 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
N_CLASSES = 1000


def generate_zoo(folder: Path, n_models: int, n_images: int, seed: int = 0) -> Path:
    """Per-model prediction files whose correctness follows image difficulty and model skill (so the split
    has trivial, impossible and inconclusive images), and labels.csv."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = np.array([f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(n_images)], dtype=object)
    labels = rng.integers(0, N_CLASSES, n_images)
    pd.DataFrame({"image": images, "label": labels}).to_csv(folder.parent / "labels.csv", index=False)
    ease = rng.normal(0.0, 2.5, n_images)
    skill = rng.normal(1.0, 0.6, n_models)
    for m in range(n_models):
        p_right = 1.0 / (1.0 + np.exp(-(ease + skill[m])))
        right = rng.random(n_images) < p_right
        wrong = (labels + rng.integers(1, N_CLASSES, n_images)) % N_CLASSES
        true_prob = np.where(right, 0.5 + 0.5 * rng.random(n_images), 0.5 * rng.random(n_images))
        pd.DataFrame({"image": images, "predicted": np.where(right, labels, wrong).astype(np.int32),
                      "true_prob": true_prob.astype(np.float32)}).to_parquet(folder / f"model_{m:04d}.parquet")
    return folder


def generate_scores(folder: Path, n_models: int, n_images: int, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels = rng.integers(0, N_CLASSES, n_images)
    np.save(folder.parent / "score_labels.npy", labels)
    for m in range(n_models):
        logits = rng.normal(0, 1, (n_images, N_CLASSES)).astype(np.float32)
        logits[np.arange(n_images), labels] += rng.normal(2.0 + 0.1 * m, 1.5, n_images)
        np.save(folder / f"model_{m:02d}.npy", logits)
    return folder


def _timed(code: str) -> dict:
    """Run `code` in a fresh interpreter; its wall time and peak resident memory."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far
    return {"seconds": seconds, "peak_mb_so_far": peak_kb / 1024, "stdout": proc.stdout[-3000:]}


def _peak(code: str) -> dict:
    wrapped = code + "\nimport resource; print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    res = _timed(wrapped)
    peak = [line for line in res["stdout"].splitlines() if line.startswith("PEAK_KB")]
    res["peak_mb"] = int(peak[-1].split()[1]) / 1024 if peak else None
    res.pop("peak_mb_so_far")
    res["stdout"] = "\n".join(line for line in res["stdout"].splitlines() if not line.startswith("PEAK_KB"))
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--score-models", type=int, default=20)
    parser.add_argument("--score-images", type=int, default=5_000)
    parser.add_argument("--pages", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    results: dict = {"benchmark": "import at model-zoo scale", "models": args.models, "images": args.images,
                     "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        zoo = generate_zoo(tmp / "zoo", args.models, args.images)
        results["generate_s"] = time.perf_counter() - start
        audit_dir = tmp / "audit"
        results["read_files_only"] = _peak(
            "import pandas as pd, pathlib\n"
            f"for f in sorted(pathlib.Path({str(zoo)!r}).glob('*.parquet')): pd.read_parquet(f)")
        results["import"] = _peak(
            "from audit.curation.importers import read_decisions_source, write_imported_audit\n"
            f"d = read_decisions_source({str(zoo)!r}, labels={str(tmp / 'labels.csv')!r})\n"
            f"write_imported_audit(d, {str(audit_dir)!r})")
        results["report"] = _peak(
            "import audit\nfrom audit.report import build_report\n"
            f"s = build_report(audit.load({str(audit_dir)!r}))\n"
            "print('SPLIT', s['split']['observed'])")
        results["import_and_report_s"] = results["import"]["seconds"] + results["report"]["seconds"]
        results["import_and_report_peak_mb"] = max(results["import"]["peak_mb"], results["report"]["peak_mb"])
        results["import_over_reading_files"] = results["import"]["seconds"] / results["read_files_only"]["seconds"]
        if args.pages:
            sys.path.insert(0, str(HERE))
            from bench_app import PAGES, _in_child

            sys.argv = ["app.py", "--runs", str(tmp / "no-runs")]
            results["pages"] = {page: _in_child(audit_dir, page, 1) for page in PAGES}
            results["slowest_page_s"] = max(r["first_s"] for r in results["pages"].values())
        scores = generate_scores(tmp / "scores", args.score_models, args.score_images)
        results["scores"] = _peak(
            "from audit.curation.importers import read_decisions_source, write_imported_audit\n"
            f"d = read_decisions_source({str(scores)!r}, labels={str(tmp / 'score_labels.npy')!r})\n"
            f"write_imported_audit(d, {str(tmp / 'score_audit')!r})")
        results["scores"].update(models=args.score_models, images=args.score_images, classes=N_CLASSES)
    for part in ("read_files_only", "import", "report", "scores"):
        results[part].pop("stdout", None)
    results["pages"] = {page: {"first_s": r["first_s"], "warm_s": r["warm_s"]}
                        for page, r in results.get("pages", {}).items()}
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_import.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
