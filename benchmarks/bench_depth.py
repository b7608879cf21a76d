"""What prediction depth costs per 10,000 images, and which exact k-NN library to use, measured in one run.

Trains the quick preset's base variant on Fashion-MNIST (as the default audit
does), then times the probe embeddings and the exact k-NN probes (k = 30) on
10,000 validation images with scikit-learn's brute-force NearestNeighbors and
faiss's IndexFlatL2, with embeddings pooled to at most 2,048 values or left
full. Both libraries are exact, so their depths must agree; pooling changes
them a little, and the run says how much. Also times the learnability job.
Run: .venv/bin/python benchmarks/bench_depth.py [--threads 2] [--n-reference 2000]
(results: stdout and benchmarks/out/depth.json)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit.data import load_dataset  # noqa: E402
from audit.deep.learnability import learnability  # noqa: E402
from audit.deep.probes import (  # noqa: E402
    DEFAULT_MAX_DIM,
    ExactKNN,
    layer_embeddings,
    probe_layer_names,
    reference_subsample,
)
from audit.metrics.depth import knn_vote, prediction_depth, probe_accuracy  # noqa: E402
from audit.models.variants import preset_variants  # noqa: E402
from audit.running.train import Normalizer, TensorData, train_indices, train_variant  # noqa: E402


def embed(model, images, norm, max_dim):
    t0 = time.perf_counter()
    parts = None
    for _, emb in layer_embeddings(model, images, norm, max_dim=max_dim):
        parts = [[e] for e in emb] if parts is None else [p + [e] for p, e in zip(parts, emb, strict=True)]
    return [np.concatenate(p) for p in parts], time.perf_counter() - t0


def probe(ref_emb, ref_labels, query_emb, backend):
    """Fit and query one exact k-NN probe per layer; returns the probe classes and the seconds."""
    t0 = time.perf_counter()
    classes = []
    for r, q in zip(ref_emb, query_emb, strict=True):
        knn = ExactKNN(30, backend).fit(r, ref_labels)
        labels = np.concatenate([knn.neighbor_labels(q[s : s + 1000]) for s in range(0, len(q), 1000)])
        classes.append(knn_vote(labels, n_classes=10)[0])
    return np.stack(classes, axis=1), time.perf_counter() - t0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--n-reference", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "depth.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device("cpu")
    ds = load_dataset("fashion-mnist", download=False)
    train = TensorData.from_numpy(np.array(ds.train.images), ds.train.labels, dev)
    val = TensorData.from_numpy(np.array(ds.val.images), ds.val.labels, dev)
    spec = preset_variants("quick")[0]
    t0 = time.perf_counter()
    res = train_variant(spec, train, val, 10, device=dev)
    train_s = time.perf_counter() - t0
    model, norm = res.model, Normalizer.fit(train)
    ref = reference_subsample(train_indices(len(train), spec), args.n_reference, random_state=spec.init_seed)
    ref_images, ref_labels = train.images[torch.from_numpy(ref)], ds.train.labels[ref]
    final = res.predicted[-1]
    out: dict = {
        "benchmark": "prediction depth: cost per 10,000 images and the k-NN library",
        "dataset": "fashion-mnist", "n_images": len(val), "n_reference": len(ref), "k": 30,
        "threads": args.threads, "model": f"quick preset base ({spec.arch} {spec.arch_kwargs}), "
        f"{spec.epochs} epochs, accuracy {res.val_accuracy[-1]:.3f}",
        "layers": probe_layer_names(model), "train_variant_seconds": round(train_s, 2), "runs": [],
    }
    try:
        import faiss  # noqa: F401

        backends = ["sklearn", "faiss"]
    except ImportError:
        backends = ["sklearn"]
    depths = {}
    for max_dim in (DEFAULT_MAX_DIM, None):
        ref_emb, ref_s = embed(model, ref_images, norm, max_dim)
        q_emb, q_s = embed(model, val.images, norm, max_dim)
        for backend in backends:
            classes, knn_s = probe(ref_emb, ref_labels, q_emb, backend)
            depth = prediction_depth(classes.astype(np.int64), final)
            depths[(max_dim, backend)] = depth
            total = ref_s + q_s + knn_s
            run = {"max_dim": max_dim, "backend": backend, "dims": [int(e.shape[1]) for e in q_emb],
                   "embed_seconds": round(ref_s + q_s, 2), "knn_seconds": round(knn_s, 2),
                   "seconds_per_10k_images": round(total * 10000 / len(val), 2),
                   "probe_accuracy": [round(float(a), 4) for a in probe_accuracy(classes, ds.val.labels)],
                   "mean_depth": round(float(np.nanmean(depth)), 4),
                   "undefined_share": round(float(np.isnan(depth).mean()), 4)}
            out["runs"].append(run)
            print(f"max_dim {max_dim!s:>5}  {backend:<8} embed {run['embed_seconds']:6.2f} s  k-NN "
                  f"{run['knn_seconds']:6.2f} s  -> {run['seconds_per_10k_images']:6.2f} s / 10k images; "
                  f"mean depth {run['mean_depth']:.3f}", flush=True)
    same = lambda a, b: float(np.mean((a == b) | (np.isnan(a) & np.isnan(b))))  # noqa: E731
    if len(backends) == 2:
        out["faiss_vs_sklearn_same_depth"] = same(depths[(DEFAULT_MAX_DIM, "faiss")],
                                                  depths[(DEFAULT_MAX_DIM, "sklearn")])
    out["pooled_vs_full_same_depth"] = same(depths[(DEFAULT_MAX_DIM, backends[0])], depths[(None, backends[0])])
    pooled = {r["backend"]: r["knn_seconds"] for r in out["runs"] if r["max_dim"] == DEFAULT_MAX_DIM}
    out["chosen_backend"] = min(pooled, key=pooled.get)
    out["knn_speedup_faiss_over_sklearn"] = (round(pooled["sklearn"] / pooled["faiss"], 2)
                                             if "faiss" in pooled else None)
    t0 = time.perf_counter()
    lea = learnability(train.images, ds.train.labels, val.images, ds.val.labels, n_classes=10)
    out["learnability_seconds"] = round(time.perf_counter() - t0, 2)
    out["learnability"] = {c: round(r.learnability, 4) for c, r in lea.items()}
    print(f"chosen k-NN library: {out['chosen_backend']} (faiss / sklearn speedup "
          f"{out['knn_speedup_faiss_over_sklearn']}); same depths faiss vs sklearn: "
          f"{out.get('faiss_vs_sklearn_same_depth')}; pooled vs full maps: {out['pooled_vs_full_same_depth']:.3f}")
    print(f"base variant training: {train_s:.1f} s; learnability job: {out['learnability_seconds']:.1f} s "
          f"{out['learnability']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
