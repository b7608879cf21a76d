"""Benchmark of the training-dynamics scores and the stability of the split at scale, against plain numpy.

On synthetic decisions of 50,000 images x 30 models x 90 epochs (91 recorded, epoch 0 included):
(a) the score suite (`training_scores` and `spearman_matrix` with n_correct) against a plain-numpy/pandas
    peer that reduces the whole cubes at once;
(b) the stability analysis (`split_stability`: 200 subsets per size, κ on 30, 200 bootstrap draws)
    against a peer that draws the same subsets and sums each one's columns, and computes κ with
    `error_consistency_matrix` on each draw's inconclusive images.
Reports wall and CPU time, the extra memory of our phases and the peer's scores (tracemalloc peak,
measured in a second pass), the process's peak memory with the inputs after our phases, and the
largest difference between ours and the peer. The stability peer computes the resampled shares and
κ only: our analysis adds the bootstrap of each image, the fit and the extrapolation.

Run: .venv/bin/python benchmarks/bench_scores.py   (results: stdout and benchmarks/out/bench_scores.json)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit.metrics import stability as stab  # noqa: E402
from audit.metrics import training_scores as ts  # noqa: E402
from audit.metrics.consistency import error_consistency_matrix, mean_error_consistency  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
GOALS = {"seconds": 60.0, "peak_mb": 4096.0}


def synthetic_cubes(n_images: int, n_models: int, n_epochs: int, *, n_classes: int = 10, seed: int = 0) -> dict:
    """Decisions with DDD structure that learn over the epochs: logit z = skill + progress - difficulty + noise.

    margin = z, true_prob = sigmoid(z), correct = z > 0, and the other classes share 1 - p evenly.
    Shapes (n_images, n_models, n_epochs + 1); epoch 0 is before training.
    """
    rng = np.random.default_rng(seed)
    easy, hard = n_images * 45 // 100, n_images * 15 // 100
    difficulty = np.concatenate([rng.normal(-3, 0.5, easy), rng.normal(3, 0.5, hard),
                                 rng.uniform(-1.5, 1.5, n_images - easy - hard)]).astype(np.float32)
    skill = rng.normal(0, 0.3, n_models).astype(np.float32)
    progress = (4 * (1 - np.exp(-np.arange(n_epochs + 1) / 15.0)) - 2).astype(np.float32)
    shape = (n_images, n_models, n_epochs + 1)
    cubes = {"margin": np.empty(shape, np.float32), "true_prob": np.empty(shape, np.float32),
             "prob_sq_sum": np.empty(shape, np.float32), "correct": np.empty(shape, bool)}
    for lo in range(0, n_images, 2000):
        hi = min(lo + 2000, n_images)
        z = (skill[None, :, None] + progress[None, None, :] - difficulty[lo:hi, None, None]
             + rng.normal(0, 0.8, (hi - lo, n_models, n_epochs + 1)).astype(np.float32))
        p = 1 / (1 + np.exp(-z))
        cubes["margin"][lo:hi] = z
        cubes["true_prob"][lo:hi] = p
        cubes["prob_sq_sum"][lo:hi] = p ** 2 + (1 - p) ** 2 / (n_classes - 1)
        cubes["correct"][lo:hi] = z > 0
    return cubes


def timed(fn):
    """(result, wall s, CPU s) of fn()."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def extra_memory_mb(fn) -> float:
    """The most memory fn() holds above what was allocated before it (tracemalloc; numpy reports to it).

    Run apart from the timing: tracing every allocation slows Python code down.
    """
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def ours_scores(cubes: dict, epochs: np.ndarray) -> pd.DataFrame:
    frame = ts.training_scores(cubes, epochs)
    n_correct = cubes["correct"][..., -1].sum(axis=1)
    rho = ts.spearman_matrix(pd.concat([pd.DataFrame({"n_correct": n_correct.astype(float)}), frame], axis=1))
    return frame.assign(_rho_sum=float(np.nansum(rho.to_numpy())))


def peer_scores(cubes: dict, epochs: np.ndarray) -> pd.DataFrame:
    """Plain numpy on the whole cubes (float64 where it matters), pandas for Spearman."""
    c, p = cubes["correct"][..., 1:], cubes["true_prob"][..., 1:]
    at = ts.el2n_epoch(epochs)
    frame = pd.DataFrame({
        "cartography_confidence": p.mean(axis=2, dtype=np.float64).mean(axis=1),
        "cartography_variability": p.std(axis=2, dtype=np.float64).mean(axis=1),
        "cartography_correctness": c.mean(axis=2).mean(axis=1),
        "el2n": np.sqrt(np.clip(cubes["prob_sq_sum"][..., at].astype(np.float64)
                                - 2 * cubes["true_prob"][..., at] + 1, 0, None)).mean(axis=1),
        "aum": cubes["margin"][..., 1:].mean(axis=2, dtype=np.float64).mean(axis=1),
        "forgetting_events_mean": (c[..., :-1] & ~c[..., 1:]).sum(axis=2).mean(axis=1),
        "first_learned_epoch": np.append(epochs[1:].astype(float), epochs[-1] + 1.0)[
            np.where(c.any(axis=2), c.argmax(axis=2), c.shape[2])].mean(axis=1),
    })
    n_correct = cubes["correct"][..., -1].sum(axis=1)
    rho = pd.concat([pd.DataFrame({"n_correct": n_correct.astype(float)}), frame], axis=1).corr(method="spearman")
    return frame.assign(_rho_sum=float(np.nansum(rho.to_numpy())))


def peer_stability(correct: np.ndarray, *, tolerance: int, n_draws: int, n_kappa_draws: int, seed: int) -> pd.DataFrame:
    """The same seeded subsets as `split_stability`, each summed column by column, κ by the direct matrix.

    BLAS on one thread, as in `split_stability`, so that both run alike.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _peer_stability(correct, tolerance=tolerance, n_draws=n_draws, n_kappa_draws=n_kappa_draws, seed=seed)


def _peer_stability(correct: np.ndarray, *, tolerance: int, n_draws: int, n_kappa_draws: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_models = correct.shape[1]
    rows = []
    for m in stab.curve_sizes(n_models, tolerance=tolerance):
        w = stab._subsets(n_models, int(m), n_draws, rng)
        trivial, kappas = [], []
        for d in range(w.shape[1]):
            models = np.flatnonzero(w[:, d])
            k = correct[:, models].sum(axis=1)
            triv, imp = k >= m - tolerance, k <= tolerance
            trivial.append(triv.mean())
            inc = ~(triv | imp)
            if d < n_kappa_draws and inc.any():
                kappas.append(mean_error_consistency(error_consistency_matrix(correct[inc][:, models])))
        rows.append({"n_models": int(m), "trivial_mean": float(np.mean(trivial)),
                     "kappa_mean": float(np.mean(kappas)) if kappas else np.nan})
    return pd.DataFrame(rows)


def default_audit_addition(path: Path) -> dict | None:
    """CPU seconds the new measures add to the default audit (`make audit`), when runs/default exists.

    The report's part (the scores and the stability, figures left out) on the stored audit, and the
    trainer's extra work per recorded evaluation (margin and Σ p², on 10,000 images x 10 classes)
    times the number of evaluations the audit's variants make.
    """
    import torch

    from audit.report import ReportContent
    from audit.report.training_scores import stability_report, training_scores_report
    from audit.store import load

    if not (path / "manifest.json").exists():
        return None
    result = load(path)
    summary = result.summary() or {}
    if "tolerance_used" not in summary:
        return None
    categories = pd.read_parquet(path / "images.parquet")["category"].to_numpy()
    correct = result.correct()
    out = ReportContent(summary={})
    _, _, report_cpu = timed(lambda: (
        training_scores_report(result, categories, correct.sum(axis=1), out, figures_too=False),
        stability_report(correct, summary["tolerance_used"], out, figures_too=False)))
    torch.set_num_threads(1)
    logits, labels = torch.randn(10_000, 10), torch.randint(0, 10, (10_000,))

    def record_extra():
        for lo in range(0, 10_000, 1000):
            z, y = logits[lo:lo + 1000], labels[lo:lo + 1000]
            others = z.scatter(1, y[:, None], float("-inf"))
            (z.gather(1, y[:, None])[:, 0] - others.max(dim=1).values).numpy()
            torch.softmax(z, dim=1).square().sum(dim=1).numpy()

    _, _, extra_cpu = timed(lambda: [record_extra() for _ in range(20)])
    evaluations = sum(len(result.epochs(m)) for m in result.model_names if len(result.epochs(m)) > 1)
    return {"audit": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name,
            "report_part_cpu_s": report_cpu, "recording_cpu_s_per_evaluation": extra_cpu / 20,
            "evaluations": evaluations, "recording_cpu_s": extra_cpu / 20 * evaluations,
            "total_cpu_s": report_cpu + extra_cpu / 20 * evaluations}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--models", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=90)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--kappa-draws", type=int, default=30)
    ap.add_argument("--out", type=Path, default=OUT / "bench_scores.json")
    ap.add_argument("--default-audit", type=Path, default=ROOT / "runs" / "default",
                    help="the default audit, to measure what the new measures add to it (skipped when absent)")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    cubes = synthetic_cubes(args.images, args.models, args.epochs)
    epochs = np.arange(args.epochs + 1)
    make_s = time.perf_counter() - t
    inputs_mb = sum(a.nbytes for a in cubes.values()) / 2**20
    final = np.ascontiguousarray(cubes["correct"][..., -1])

    def run_stability():
        with threadpool_limits(limits=1, user_api="blas"):  # as the report runs it
            return stab.split_stability(final, tolerance=1, n_draws=args.draws, n_kappa_draws=args.kappa_draws,
                                        random_state=0)

    scores, s_wall, s_cpu = timed(lambda: ours_scores(cubes, epochs))
    res, st_wall, st_cpu = timed(run_stability)
    peak_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peer, ps_wall, ps_cpu = timed(lambda: peer_scores(cubes, epochs))
    peer_st, pst_wall, pst_cpu = timed(lambda: peer_stability(
        final, tolerance=1, n_draws=args.draws, n_kappa_draws=args.kappa_draws, seed=0))
    s_mb, ps_mb = extra_memory_mb(lambda: ours_scores(cubes, epochs)), extra_memory_mb(lambda: peer_scores(cubes, epochs))
    st_mb = extra_memory_mb(run_stability)

    curve = res.curve[res.curve["observed"]].reset_index(drop=True)
    columns = [c for c in scores.columns if c != "_rho_sum"]  # the ρ sum moves where near-ties rank otherwise
    diff_scores = float(max(np.nanmax(np.abs(scores[c].to_numpy() - peer[c].to_numpy())) for c in columns))
    diff_rho = abs(float(scores["_rho_sum"].iloc[0]) - float(peer["_rho_sum"].iloc[0]))
    diff_shares = float(np.max(np.abs(curve["trivial_mean"].to_numpy() - peer_st["trivial_mean"].to_numpy())))
    diff_kappa = float(np.nanmax(np.abs(curve["kappa_mean"].to_numpy() - peer_st["kappa_mean"].to_numpy())))
    ours_s = s_wall + st_wall
    results = {
        "benchmark": "training-dynamics scores and the stability of the split",
        "data": {"n_images": args.images, "n_models": args.models, "n_epochs": args.epochs,
                 "recorded_epochs": args.epochs + 1, "inputs_mb": round(inputs_mb), "make_s": round(make_s, 1)},
        "scores": {"wall_s": s_wall, "cpu_s": s_cpu, "extra_mb": s_mb,
                   "peer_wall_s": ps_wall, "peer_cpu_s": ps_cpu, "peer_extra_mb": ps_mb,
                   "speedup": ps_wall / s_wall, "cpu_ratio": ps_cpu / s_cpu, "memory_ratio": ps_mb / max(s_mb, 1e-9), "max_abs_diff": diff_scores,
                   "spearman_sum_diff": diff_rho},
        "stability": {"wall_s": st_wall, "cpu_s": st_cpu, "extra_mb": st_mb, "sizes": len(curve),
                      "draws": args.draws, "kappa_draws": args.kappa_draws,
                      "peer_wall_s": pst_wall, "peer_cpu_s": pst_cpu,
                      "speedup": pst_wall / st_wall, "cpu_ratio": pst_cpu / st_cpu, "max_abs_diff_trivial": diff_shares,
                      "max_abs_diff_kappa": diff_kappa, "recommendation": res.summary["recommendation"]},
        "total": {"wall_s": ours_s, "cpu_s": s_cpu + st_cpu, "peak_rss_mb": peak_ours, "goal_s": GOALS["seconds"], "goal_mb": GOALS["peak_mb"]},
    }
    results["default_audit"] = default_audit_addition(args.default_audit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
