"""Accuracy per CPU-second of training recipes, all in one run on the same machine, on one thread.

1. Fashion-MNIST (all 10,000 test images): the old `quick` recipe, the new one and three other
   candidates, each trained at two budgets (numbers of epochs), so every recipe gives a curve of
   test accuracy against the CPU-seconds of its training (per-epoch recording included).
2. The Gaussian control (meding2022 A.4-A.5) at the dataset's default sizes: models of the `quick`
   and of the `gaussian` preset trained one after another; after each, Spearman's rho between the
   per-class accuracy (mean over the models so far) and eq. (1)'s KL divergence to the nearest
   neighbouring class, against the CPU-seconds spent so far.

CPU-seconds are `time.process_time()` of this process with `torch.set_num_threads(1)`, so a busy
machine slows the wall clock but not the figures. The default audit trains its variants two at a
time on 2 cores: its training takes about the sum of its variants' CPU-seconds / 2.
Writes out/recipe.json, the curve recipe.png beside RESULTS.md and the recipe section of RESULTS.md.
Run: .venv/bin/python benchmarks/bench_recipe.py [--gaussian-models 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from audit.data import load_dataset
from audit.metrics.gaussian_control import kl_accuracy_correlation
from audit.models.variants import VariantSpec, preset_variants
from audit.running.train import TensorData, train_variant

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "RESULTS.md"
BEGIN, END = "<!-- bench_recipe: begin -->", "<!-- bench_recipe: end -->"

_OLD = {"arch": "resnet_small", "arch_kwargs": {"width": 8, "depth": 8}, "lr": 0.05, "batch_size": 128,
        "train_size": 6000, "schedule": "step", "label_smoothing": 0.0, "epoch_size": None}
_NEW_RECIPE = {"schedule": "onecycle", "label_smoothing": 0.1, "lr": 0.1, "batch_size": 128, "train_size": None,
               "epoch_size": 30000}

#: name -> (the base spec's fields, epoch budgets)
CANDIDATES: dict[str, tuple[dict, tuple[int, ...]]] = {
    "old quick: resnet_small w8 d8, step schedule, fixed 6,000 images": (_OLD, (3, 6)),
    "new quick: resnet_small w12 d8 stem stride 2, one-cycle, label smoothing, 30,000 of 60,000 per epoch": (
        {}, (3, 4)),
    "new recipe, old network (resnet_small w8 d8), 15,000 images per epoch": (
        {**_NEW_RECIPE, "arch": "resnet_small", "arch_kwargs": {"width": 8, "depth": 8}, "epoch_size": 15000},
        (4,)),
    "new recipe, resnet_small w8 d8 stem stride 2, batch 256, lr 0.2, 50,000 per epoch": (
        {**_NEW_RECIPE, "arch_kwargs": {"width": 8, "depth": 8, "stem_stride": 2}, "batch_size": 256, "lr": 0.2,
         "epoch_size": 50000}, (2, 4)),
    "new recipe, vgg_small w8 d1 (the issue's cheapest network)": (
        {**_NEW_RECIPE, "arch": "vgg_small", "arch_kwargs": {"width": 8, "depth": 1}}, (4, 8)),
}


def _train(spec: VariantSpec, train: TensorData, val: TensorData, n_classes: int):
    t0 = time.process_time()
    res = train_variant(spec, train, val, n_classes, device=torch.device("cpu"))
    return res, time.process_time() - t0


def fashion_curves() -> list[dict]:
    ds = load_dataset("fashion-mnist")
    dev = torch.device("cpu")
    train = TensorData.from_numpy(ds.train.images, ds.train.labels, dev)
    val = TensorData.from_numpy(ds.val.images, ds.val.labels, dev)
    base = preset_variants("quick")[0]
    rows = []
    for name, (fields, budgets) in CANDIDATES.items():
        for epochs in budgets:
            spec = dataclasses.replace(base, **fields, epochs=epochs)
            res, cpu = _train(spec, train, val, ds.n_classes)
            pool = min(spec.train_size or len(train), len(train))
            rows.append({"recipe": name, "epochs": epochs, "image_steps": epochs * min(spec.epoch_size or pool, pool),
                         "cpu_s": round(cpu, 1), "accuracy": round(float(res.val_accuracy[-1]), 4)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def gaussian_curves(n_models: int) -> dict[str, list[dict]]:
    ds = load_dataset("gaussian")
    dev = torch.device("cpu")
    train = TensorData.from_numpy(ds.train.images, ds.train.labels, dev, transform=ds.input_transform)
    val = TensorData.from_numpy(ds.val.images, ds.val.labels, dev, transform=ds.input_transform)
    labels = ds.val.labels
    curves = {}
    for preset in ("quick", "gaussian"):
        specs = [s for s in preset_variants(preset) if s.group in ("base", "init_seed", "data_order", "lr_jitter")]
        accuracies, cpu_total, points = [], 0.0, []
        for spec in specs[:n_models]:
            res, cpu = _train(spec, train, val, ds.n_classes)
            cpu_total += cpu
            pred = res.predicted[-1]
            accuracies.append(np.array([(pred[labels == k] == k).mean() for k in range(ds.n_classes)]))
            mean = np.mean(accuracies, axis=0)
            points.append({"models": len(accuracies), "cpu_s": round(cpu_total, 1),
                           "mean_accuracy": round(float(mean.mean()), 4),
                           "rho": round(kl_accuracy_correlation(mean), 3),
                           "rho_this_model": round(kl_accuracy_correlation(accuracies[-1]), 3)})
            print(preset, json.dumps(points[-1]), flush=True)
        curves[preset] = points
    return curves


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in CANDIDATES:
        rows = [r for r in result["fashion_mnist"] if r["recipe"] == name]
        ax1.plot([r["cpu_s"] for r in rows], [100 * r["accuracy"] for r in rows], "o-", label=name.split(":")[0]
                 if ":" in name else name.split(",")[1].strip())
    ax1.set(xlabel="CPU-seconds per variant (1 thread)", ylabel="test accuracy (%)",
            title="Fashion-MNIST: accuracy per CPU-second")
    ax1.axhline(85, color="grey", lw=0.8, ls=":")
    ax1.legend(fontsize=7)
    for preset, points in result["gaussian"].items():
        ax2.plot([p["cpu_s"] for p in points], [p["rho"] for p in points], "o-", label=f"--variants {preset}")
    ax2.axhline(0.8, color="grey", lw=0.8, ls=":")
    ax2.set(xlabel="CPU-seconds, all models so far (1 thread)", ylabel="Spearman rho (class accuracy, KL)",
            title="Gaussian control: rho of the mean over models")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(result: dict) -> list[str]:
    """The RESULTS.md section: the curve and the two tables."""
    lines = [BEGIN, "## Training recipes: accuracy per CPU-second (bench_recipe)", "",
             f"One thread, `time.process_time()`; {result['machine_note']}", "",
             "![accuracy and rho against CPU-seconds](recipe.png)", "",
             "| recipe | epochs | image-steps | CPU-s | Fashion-MNIST test accuracy |", "| --- | --- | --- | --- | --- |"]
    for r in result["fashion_mnist"]:
        lines.append(f"| {r['recipe']} | {r['epochs']} | {r['image_steps']:,} | {r['cpu_s']:.1f} | "
                     f"{r['accuracy']:.2%} |")
    lines += ["", "Gaussian control at the dataset's default sizes: rho between per-class accuracy (mean over the "
              "models so far) and eq. (1)'s KL divergence to the nearest neighbouring class.", "",
              "| preset | models | CPU-s (all models) | mean accuracy | rho | rho of the last model alone |",
              "| --- | --- | --- | --- | --- | --- |"]
    for preset, points in result["gaussian"].items():
        for p in points:
            lines.append(f"| {preset} | {p['models']} | {p['cpu_s']:.1f} | {p['mean_accuracy']:.2%} | {p['rho']:.3f} | "
                         f"{p['rho_this_model']:.3f} |")
    best = max((p["rho"] for points in result["gaussian"].values() for p in points), default=float("nan"))
    lines += ["", f"Goal rho >= 0.8 (meding2022 A.5's class accuracy following the KL divergence), for the mean over "
              f"the few models here (the base, init_seed, data_order and lr_jitter conditions): "
              f"{'met' if best >= 0.8 else 'not met'}; the best rho here is {best:.3f}. A full audit of a preset "
              f"averages over all its conditions (the README gives the gaussian preset's)."]
    return lines + [END]


def write_section(result: dict, path: Path = RESULTS) -> None:
    """Put the section into RESULTS.md, replacing the one a previous run wrote."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = "\n".join(markdown(result))
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gaussian-models", type=int, default=4, help="models per preset on the Gaussian control")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = {"benchmark": "training recipes: accuracy per CPU-second",
              "machine_note": "the default audit's training takes about the sum of its variants' CPU-seconds / 2 "
                              "on 2 cores.",
              "fashion_mnist": fashion_curves(), "gaussian": gaussian_curves(args.gaussian_models)}
    OUT.mkdir(exist_ok=True)
    (OUT / "recipe.json").write_text(json.dumps(result, indent=2))
    plot(result, HERE / "recipe.png")
    write_section(result)
    return result


if __name__ == "__main__":
    main()
