"""One pretrained model over the same 10,000 JPEGs read from each image source: an ImageFolder tree, a saved
`datasets` dataset (hf:), Parquet files (parquet:) and WebDataset shards (wds:).

Each run (load the dataset, verify and decode every image into the decode cache, run efficientnet_lite0 at
--size px, write the decisions) goes in a fresh process, so that its peak resident memory is its own; the
sources take turns (--rounds 2: folder, hf, parquet, wds, twice), and each source's best wall time and highest
peak are compared with the ImageFolder's. The decisions must be the same from every source (joined by the
source's key).
Usage: .venv/bin/python benchmarks/bench_sources.py [--n 10000] [--size 64] [--data DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_CLASSES = 10
SHARDS = 10


def write_sources(root: Path, n: int) -> dict:
    """`n` JPEGs (bench_pretrained's generator) in 10 ImageNet classes, written the four ways."""
    import datasets
    import webdataset as wds

    sys.path.insert(0, str(HERE))
    from bench_pretrained import make_jpegs

    from audit.data.imagenet import imagenet_synsets

    classes = list(imagenet_synsets()[:N_CLASSES])  # WordNet ids: the models' ImageNet outputs map onto them
    done = root / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    files = make_jpegs(root / "jpegs", n)
    labels = [i % N_CLASSES for i in range(n)]
    keys = [f"{i:05d}" for i in range(n)]
    for f, lab, key in zip(files, labels, keys, strict=True):
        folder = root / "folder" / "val" / classes[lab]
        folder.mkdir(parents=True, exist_ok=True)
        os.link(f, folder / f"{key}.jpg")

    def rows():
        for f, lab in zip(files, labels, strict=True):
            yield {"image": {"bytes": Path(f).read_bytes(), "path": None}, "label": lab}

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
    ds = datasets.Dataset.from_generator(rows, features=features, cache_dir=str(root / "hf-cache"))
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(root / "hf"))
    (root / "parquet").mkdir(exist_ok=True)
    for s in range(SHARDS):
        ds.shard(SHARDS, s, contiguous=True).to_parquet(str(root / "parquet" / f"validation-{s:05d}.parquet"))
    (root / "wds").mkdir(exist_ok=True)
    per = -(-n // SHARDS)
    for s in range(SHARDS):
        with wds.TarWriter(str(root / "wds" / f"val-{s:06d}.tar")) as sink:
            for i in range(s * per, min(n, (s + 1) * per)):
                sink.write({"__key__": keys[i], "jpg": Path(files[i]).read_bytes(), "cls": labels[i]})
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    specs = {
        "imagefolder": [f"imagefolder:{root / 'folder'}", {}],
        "hf": [f"hf:{root / 'hf'}", {}],
        "parquet": [f"parquet:{root / 'parquet' / 'validation-*.parquet'}", {}],
        "wds": [f"wds:{root / 'wds'}/val-{{000000..{SHARDS - 1:06d}}}.tar", {"classes": str(root / "classes.txt")}],
    }
    done.write_text(json.dumps(specs))
    return specs


def child(spec: str, options: dict, size: int, out: str) -> dict:
    """One run in this process: load, decode, predict, store; wall seconds and peak memory."""
    from audit.running.engine import AuditConfig, plan_audit, run_audit
    from audit.store import load

    t0 = time.perf_counter()
    plan = plan_audit(AuditConfig(dataset=spec, variants="none", models=[f"efficientnet_lite0@{size}"],
                                  depth="none", rsa_images=0, probs=False, learnability=False, device="cpu",
                                  dataset_options=options))
    t1 = time.perf_counter()
    outcome = run_audit(plan, out)
    t2 = time.perf_counter()
    assert not outcome.failed, outcome.failed
    result = load(out)
    keys = [Path(s).stem for s in result.images["source"].astype(str)]
    if spec.startswith(("hf:", "parquet:")):
        keys = [f"{int(k):05d}" for k in keys]
    predicted = result.predicted()[:, 0]
    order = np.argsort(keys)
    digest = hashlib.sha256(np.asarray(predicted)[order].tobytes() + "\n".join(sorted(keys)).encode()).hexdigest()
    return {"seconds": t2 - t0, "load_s": t1 - t0, "run_s": t2 - t1,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "accuracy": float(result.decision_array(result.model_names[0])[0].mean()),
            "n_images": int(result.n_images), "decisions_sha256": digest[:16]}


def run_child(name: str, spec: str, options: dict, size: int, work: Path) -> dict:
    out = work / f"run-{name}-{time.perf_counter_ns()}"
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps([spec, options, size, str(out)])],
                          capture_output=True, text=True, cwd=HERE.parent)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each source, interleaved; the best counts")
    parser.add_argument("--data", type=Path, default=None, help="keep the generated sources here (reused)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec, options, size, out = json.loads(args.child)
        print(json.dumps(child(spec, options, size, out)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "data"
        data.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        specs = write_sources(data, args.n)
        write_s = time.perf_counter() - t0
        runs: dict[str, list[dict]] = {k: [] for k in specs}
        for name in ["imagefolder", "hf", "parquet", "wds"] * args.rounds:
            spec, options = specs[name]
            runs[name].append(run_child(name, spec, options, args.size, Path(tmp)))
            print(name, json.dumps(runs[name][-1]), flush=True)
    best = {name: min(r["seconds"] for r in rs) for name, rs in runs.items()}  # the least disturbed run
    peak = {name: max(r["peak_mb"] for r in rs) for name, rs in runs.items()}  # the highest peak
    folder_s, folder_mb = best["imagefolder"], peak["imagefolder"]
    same = len({r["decisions_sha256"] for rs in runs.values() for r in rs}) == 1
    results = {
        "benchmark": "image sources: one pretrained model over the same JPEGs from each source",
        "n_images": args.n, "model": f"efficientnet_lite0@{args.size}", "cores": os.cpu_count(),
        "python": platform.python_version(), "write_sources_s": round(write_s, 1), "same_decisions": same,
        "runs": runs,
        "ratios": {name: {"time": round(best[name] / folder_s, 3), "peak_memory": round(peak[name] / folder_mb, 3)}
                   for name in runs if name != "imagefolder"},
        "best_s": {k: round(v, 1) for k, v in best.items()}, "peak_mb": {k: round(v) for k, v in peak.items()},
        "imagefolder_summary": f"{folder_s:.1f} s, {folder_mb:.0f} MB",
    }
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "sources.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results["ratios"], indent=2), "same decisions:", same)


if __name__ == "__main__":
    main()
