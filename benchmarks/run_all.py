"""Run every benchmark in benchmarks/ and rewrite benchmarks/RESULTS.md from their JSON outputs.

Each bench_*.py writes benchmarks/out/<name>.json; this script runs them one
after another in fresh processes, then renders the machine description and
every figure into RESULTS.md. Run: .venv/bin/python benchmarks/run_all.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
#: benchmarks/gpu_check.py's results from a CUDA device, committed (not rewritten by this script)
GPU_CHECK = HERE / "gpu_check"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "gpu": gpu, "python": platform.python_version(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}


def _get(results: dict, path: str):
    node = results
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


#: (label, goal, json path, format) for the headline table
HEADLINES = [
    ("error-consistency matrix, 50 models x 50,000 images: speedup over pairwise cohen_kappa_score", ">= 100x",
     "bench_metrics.error_consistency_matrix.speedup", "{:.0f}x"),
    ("  max abs difference from cohen_kappa_score", "<= 1e-9", "bench_metrics.error_consistency_matrix.max_abs_diff",
     "{:.1e}"),
    ("metric + report pipeline, 50,000 x 30 models x 90 epochs: time", "< 60 s",
     "bench_metrics.pipeline.load_and_report_s", "{:.1f} s"),
    ("  peak memory", "< 4 GB", "bench_metrics.pipeline.peak_rss_mb", "{:.0f} MB"),
    ("3 pretrained models, 2,000 JPEGs at 96 px: speedup of the decode-once cache over per-model DataLoaders",
     ">= 1.5x", "bench_pretrained.sizes.96.wall.pil.speedup", "{:.2f}x"),
    ("  overhead over the pure forward time, the one decode included", "<= 15%",
     "bench_pretrained.sizes.96.wall.pil.end_to_end_overhead", "{:.1%}"),
    ("  the same with --resizer torch: speedup", ">= 1.5x", "bench_pretrained.sizes.96.wall.torch.speedup",
     "{:.2f}x"),
    ("  the same with --resizer torch: overhead, the decode included", "<= 15%",
     "bench_pretrained.sizes.96.wall.torch.end_to_end_overhead", "{:.1%}"),
    ("  --resizer torch: decisions equal to timm's pipeline (worst model)", "-",
     "bench_pretrained.sizes.96.decisions_equal_baseline.torch", "min"),
    ("the same at 64 px (one run): speedup", ">= 1.5x", "bench_pretrained.sizes.64.wall.pil.speedup", "{:.2f}x"),
    ("  overhead, the decode included (see note)", "<= 15%", "bench_pretrained.sizes.64.wall.pil.end_to_end_overhead",
     "{:.1%}"),
    ("  overhead of feeding cached tensors alone", "-", "bench_pretrained.sizes.64.wall.pil.feed_overhead",
     "{:.1%}"),
    ("trainer with per-epoch recording vs the pure train step (time ratio)", "<= 1.15",
     "train.ratios.ours_over_limit_time", "{:.3f}"),
    ("trainer speedup over a torchvision DataLoader loop", ">= 1.5x", "train.ratios.speedup_over_dataloader",
     "{:.2f}x"),
    ("torch.compile, quick-preset network: steady speedup per epoch over eager", "-",
     "scale.compile.steady_speedup", "{:.2f}x"),
    ("  one-off compile cost (train and eval graphs)", "-", "scale.compile.compile_cost_s", "{:.0f} s"),
    ("  steps until compiling pays", "-", "scale.compile.break_even_steps", "{:,.0f}"),
    ("4 small variants on one device: two processes at once vs one after another", "keep the faster",
     "scale.several_on_one_device.processes.speedup_two_processes", "{:.2f}x"),
    ("  4 variants fused into one vmapped network (HFTA-style) vs 4 separate train steps", "keep the faster",
     "scale.several_on_one_device.fused.speedup_fused", "{:.2f}x"),
    ("default audit end to end (make audit): total", "< 300 s", "audit.seconds.total", "{:.0f} s"),
    ("  of which training the 15 variants (prediction depth included)", "-", "audit.seconds.training_variants",
     "{:.0f} s"),
    ("  of which the pretrained probe model", "-", "audit.seconds.pretrained_inference_and_probe", "{:.0f} s"),
    ("  of which metrics and report", "-", "audit.seconds.metrics_and_report", "{:.1f} s"),
    ("  the trained variants' mean accuracy (Fashion-MNIST test split)", ">= 85%", "audit.variant_accuracy.mean",
     "{:.1%}"),
    ("  the lowest variant's accuracy", ">= 80% but half_data, disjoint", "audit.variant_accuracy.min", "{:.1%}"),
    ("prediction depth per 10,000 images (k-NN library: faiss, 2,000 reference images)", "-",
     "depth.runs", None),
    ("import 1,000 models x 50,000 images (per-model prediction files), then the report: time", "< 60 s",
     "bench_import.import_and_report_s", "{:.1f} s"),
    ("  of which the import", "-", "bench_import.import.seconds", "{:.1f} s"),
    ("  the import over reading every file with pandas and nothing else (time ratio)", "-",
     "bench_import.import_over_reading_files", "{:.1f}x"),
    ("  peak memory (import or report)", "< 4 GB", "bench_import.import_and_report_peak_mb", "{:.0f} MB"),
    ("  report app at that size: slowest first render of a page", "< 2 s", "bench_import.slowest_page_s",
     "{:.2f} s"),
    ("score arrays (full logits), 20 models x 5,000 images x 1,000 classes: import", "-",
     "bench_import.scores.seconds", "{:.1f} s"),
    ("training-dynamics scores and split stability, 50,000 x 30 models x 90 epochs: time", "< 60 s",
     "bench_scores.total.wall_s", "{:.1f} s"),
    ("  peak memory (the 1.7 GB of decisions included)", "< 4 GB", "bench_scores.total.peak_rss_mb", "{:.0f} MB"),
    ("  score suite: speedup over plain numpy on the whole cubes", "-", "bench_scores.scores.speedup", "{:.1f}x"),
    ("  score suite: the peer's extra memory over ours", "-", "bench_scores.scores.memory_ratio", "{:.1f}x"),
    ("  stability: speedup over per-subset numpy sums and κ matrices (same subsets)", "-",
     "bench_scores.stability.speedup", "{:.2f}x"),
    ("default audit: CPU the new measures add (margins recorded, scores and stability in the report)", "-",
     "bench_scores.default_audit.total_cpu_s", "{:.2f} s"),
    ("10,000 JPEGs, one pretrained model: hf: (saved datasets) over ImageFolder, wall time", "<= 1.2x",
     "sources.ratios.hf.time", "{:.2f}x"),
    ("  peak memory", "-", "sources.ratios.hf.peak_memory", "{:.2f}x"),
    ("  parquet: over ImageFolder, wall time", "<= 1.2x", "sources.ratios.parquet.time", "{:.2f}x"),
    ("  peak memory", "-", "sources.ratios.parquet.peak_memory", "{:.2f}x"),
    ("  wds: (WebDataset shards) over ImageFolder, wall time", "<= 1.2x", "sources.ratios.wds.time", "{:.2f}x"),
    ("  peak memory", "-", "sources.ratios.wds.peak_memory", "{:.2f}x"),
    ("  the ImageFolder run itself (best of two; highest peak): wall time and peak memory", "-", "sources.imagefolder_summary",
     "{}"),
    ("study results page, 50 observers x 200 trials: first render after the token (AppTest)", "< 2 s",
     "bench_study_results.first_s", "{:.2f} s"),
    ("  pairwise error consistency: speedup over the per-pair loop", "-",
     "bench_study_results.consistency.speedup", "{:.0f}x"),
]


def headline_rows(results: dict) -> list[str]:
    rows = ["| measure | goal | result |", "| --- | --- | --- |"]
    for label, goal, path, fmt in HEADLINES:
        value = _get(results, path)
        if value is None:
            continue
        if fmt == "min":
            text = f"{min(value.values()):.2%}"
        elif path == "depth.runs":
            chosen = next((r for r in value if r.get("backend") == "faiss" and r.get("max_dim")), None)
            if chosen is None:
                continue
            text = f"{chosen['seconds_per_10k_images']:.1f} s"
        else:
            text = fmt.format(value)
        rows.append(f"| {label} | {goal} | {text} |")
    pages = _get(results, "bench_app.pages")
    if pages:
        worst = max(pages, key=lambda k: pages[k]["first_s"])
        rows.append(f"| report app, 50,000 x 30 x 20: slowest first render of a page ({worst}) | < 2 s | "
                    f"{pages[worst]['first_s']:.2f} s |")
    return rows


def gpu_section(folder: Path = GPU_CHECK) -> list[str]:
    """The "GPU" section: the table of the last full benchmarks/gpu_check.py run on a CUDA device, kept in
    `folder` (gpu_check.json and gpu_check.md), or how to make one."""
    lines = ["## GPU", ""]
    try:
        info = json.loads((folder / "gpu_check.json").read_text())
        table = (folder / "gpu_check.md").read_text().strip()
    except (OSError, ValueError):
        info, table = {}, ""
    if table and str(info.get("device", "")).startswith("cuda") and not info.get("tiny"):
        return lines + [table]
    return lines + [
        "Not yet measured on a GPU. benchmarks/gpu_check.py runs every CUDA path of the library once (bf16 "
        "autocast, channels-last training, the out-of-memory halving of the inference batch, the CUDA "
        "non-deterministic condition, fractional GPUs per Ray task, torch.compile) and measures a `paper` "
        "variant, in under 8 minutes on one GPU. On a machine with one CUDA GPU, from the repository root:",
        "", "    python3 benchmarks/gpu_check.py --device cuda --out benchmarks/gpu_check", "",
        "(or `make gpu-check`), then commit benchmarks/gpu_check/ and rerun `make bench` (or "
        "`benchmarks/run_all.py --render-only`): its table replaces this paragraph. The README's GPU figures are "
        "estimates until then."]


def render(results: dict[str, dict], mach: dict) -> str:
    lines = ["# Benchmark results", "",
             "Written by `make bench` (benchmarks/run_all.py). Every ratio compares against a peer measured in the "
             "same run on the same machine.", "", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in mach.items()]
    lines += ["", "## Headlines", ""] + headline_rows(results)
    lines += ["", "Note on the pretrained goals: on a CPU the two pull in opposite directions. Decoding once pays "
              "most when decoding costs about as much as a forward pass (small inputs, as at 64 px), and the "
              "overhead over the pure forward time is small only when it costs much less (larger inputs). At 64 px "
              "the one decode costs about 40% of the three forward passes; at 96 px about 15% with timm's PIL "
              "resize (runs on this machine gave 15.0% and 18.1%) and about 10% with --resizer torch (9.1%, "
              "12.0%), which meets both goals. At the models' native 224-260 px we expect (not measured) the "
              "overhead to shrink further and the speedup to fall towards 1. No GPU was measured. Figures on "
              "this 2-core virtual machine vary by a few percent from run to run."]
    lines += [""] + gpu_section()
    if "recipe" in results:  # the curve and tables of the training recipes
        import bench_recipe

        lines += [""] + bench_recipe.markdown(results["recipe"])
    for name, res in results.items():
        lines += ["", f"## {res.get('benchmark', name)}", "", "```json", json.dumps(res, indent=2), "```"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="bench names (e.g. train metrics) to run; default all")
    parser.add_argument("--render-only", action="store_true", help="rewrite RESULTS.md from existing JSON")
    args = parser.parse_args(argv)
    benches = sorted(HERE.glob("bench_*.py"))
    if args.only:
        benches = [b for b in benches if b.stem.removeprefix("bench_") in args.only]
    OUT.mkdir(exist_ok=True)
    if not args.render_only:
        for bench in benches:
            print(f"== {bench.name}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.call([sys.executable, str(bench)], cwd=HERE.parent)
            print(f"== {bench.name}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
    results = {}
    for p in sorted(OUT.glob("*.json")):
        results[p.stem] = json.loads(p.read_text())
    (HERE / "RESULTS.md").write_text(render(results, machine()))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
