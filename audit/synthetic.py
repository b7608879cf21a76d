"""A synthetic audit directory with realistic DDD structure, for benchmarks and tests.

Writes a complete, valid audit (manifest, images, decisions, job records, models
table) through `audit.store`, with no training: each image gets a latent
difficulty, so many images are trivial or impossible and accuracy rises over epochs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from audit.store import IMAGES_ARRAY, AuditDir, decisions_frame

_GROUPS = ("init_seed", "data_order", "learning_rate", "cuda_nondeterministic", "optimizer", "batch_size")


def make_synthetic_audit(
    path: str | os.PathLike,
    *,
    n_images: int = 2000,
    n_models: int = 10,
    n_epochs: int = 10,
    n_classes: int = 10,
    n_pretrained: int = 0,
    n_unfinished: int = 0,
    image_size: int = 16,
    random_state: int = 0,
) -> Path:
    """Write a synthetic audit directory and return its path.

    Image i has a latent difficulty d_i drawn from a mixture: about 45 % very
    easy, 15 % very hard and 40 % in between, plus a per-class offset. Model m
    at epoch e >= 1 is correct when ability(e) + skill_m + u_im + noise_ime > d_i,
    with ability rising over epochs, u_im a fixed per-(image, model) quirk (the
    source of inconclusive images) and the noise the source of epoch-to-epoch
    swaps. Epoch 0 (before training) guesses uniformly. Wrong predictions
    favour one confusable class per image, so consensus on errors is high.

    Parameters
    ----------
    path : path-like
        The audit directory; created, and overwritten file by file if present.
    n_images, n_classes : int
        Validation images and classes (labels are balanced).
    n_models : int
        Finished models in total; the first is the "base" variant, then
        variants of the meding2022 A.1 conditions, then `n_pretrained`
        pretrained models with a single recorded epoch (epoch 0).
    n_epochs : int
        Recorded epochs of each trained variant, epoch 0 included (>= 1); the
        job record's "n_epochs" is the number trained, n_epochs - 1.
    n_pretrained : int, default 0
    n_unfinished : int, default 0
        Extra jobs listed in the manifest as "running", with no files, to mimic
        an audit still in progress.
    image_size : int, default 16
        Side of the square uint8 images written to images.npy.
    random_state : int, default 0

    Returns
    -------
    path : Path
    """
    _check_sizes(n_images=n_images, n_models=n_models, n_epochs=n_epochs, n_classes=n_classes,
                 n_pretrained=n_pretrained, n_unfinished=n_unfinished, image_size=image_size)

    rng = np.random.default_rng(random_state)
    store = AuditDir(path)
    store.path.mkdir(parents=True, exist_ok=True)

    labels = rng.permutation(np.arange(n_images) % n_classes).astype(np.int64)
    image_ids = np.arange(n_images, dtype=np.int64)
    class_names = [f"class_{k}" for k in range(n_classes)]
    difficulty = _difficulty(rng, labels, n_classes).astype(np.float32)
    confuser = (labels + rng.integers(1, n_classes, n_images)) % n_classes

    n_variants = n_models - n_pretrained
    names, groups, kinds = _model_names(n_variants, n_pretrained)
    pending = [f"unfinished-{m + 1}" for m in range(n_unfinished)]

    images = pd.DataFrame(
        {
            "image_id": image_ids,
            "label": labels,
            "class_name": pd.Categorical.from_codes(labels, categories=class_names).astype(str),
            "split": "val",
            "source": IMAGES_ARRAY,
        }
    )
    jobs = [
        {"name": n, "kind": k, "group": g, "status": "done"}
        for n, k, g in zip(names, kinds, groups, strict=True)
    ]
    jobs += [{"name": n, "kind": "variant", "group": "init_seed", "status": "running"} for n in pending]
    store.write_manifest(
        {
            "config": {
                "dataset": "synthetic",
                "n_images": n_images,
                "n_models": n_models,
                "n_epochs": n_epochs,
                "n_pretrained": n_pretrained,
            },
            "dataset": {
                "name": "synthetic",
                "split": "val",
                "n_images": n_images,
                "classes": class_names,
                "fingerprint": hashlib.sha256(labels.tobytes()).hexdigest()[:16],
            },
            "seeds": {"random_state": random_state},
            "versions": {"numpy": np.__version__, "pandas": pd.__version__},
            "jobs": jobs,
        }
    )
    store.write_images(images)
    store.write_image_array(_images(rng, labels, difficulty, n_classes, image_size))

    for m, (name, kind, group) in enumerate(zip(names, kinds, groups, strict=True)):
        model_rng = np.random.default_rng([random_state, m])
        epochs = np.arange(n_epochs) if kind == "variant" else np.array([0])
        skill = 0.0 if m == 0 else float(model_rng.normal(0, 0.25))
        if kind == "pretrained":
            skill += 0.8
        predicted, true_prob, top_prob = _decisions(
            model_rng, epochs, difficulty, labels, confuser, n_classes, skill, pretrained=kind == "pretrained"
        )
        frame = decisions_frame(epochs, image_ids, predicted, true_prob, top_prob, labels)
        curve = (predicted == labels[None, :]).mean(axis=1)
        record = {  # the fields the engine's job records carry
            "kind": kind,
            "group": group,
            "spec": {"arch": "resnet18" if kind == "variant" else "synthetic-pretrained", "seed": int(m)},
            "accuracy": float(curve[-1]),
            "n_epochs": int(len(epochs) - 1),  # epochs trained; epoch 0 is before training
            "val_accuracy_curve": [float(a) for a in curve],
            "weights_source": "synthetic",
        }
        store.write_job(name, record, frame)
    store.write_models_table(order=names)
    return store.path


def _check_sizes(**sizes) -> None:
    """Every size an int at or above its least value, and no more pretrained models than models."""
    least = {"n_classes": 2, "n_pretrained": 0, "n_unfinished": 0}
    for name, value in sizes.items():
        low = least.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if sizes["n_pretrained"] > sizes["n_models"]:
        raise ValueError(f"n_pretrained={sizes['n_pretrained']} exceeds n_models={sizes['n_models']}")


def _model_names(n_variants: int, n_pretrained: int) -> tuple[list, list, list]:
    """(names, groups, kinds): the base variant, variants of the meding2022 A.1 conditions, then pretrained."""
    names, groups, kinds = [], [], []
    for m in range(n_variants):
        group = "base" if m == 0 else _GROUPS[(m - 1) % len(_GROUPS)]
        names.append("base" if m == 0 else f"{group}-{(m - 1) // len(_GROUPS) + 1}")
        groups.append(group)
        kinds.append("variant")
    for m in range(n_pretrained):
        names.append(f"pretrained-{m + 1}")
        groups.append("pretrained")
        kinds.append("pretrained")
    return names, groups, kinds


def _difficulty(rng, labels, n_classes) -> np.ndarray:
    n = len(labels)
    kind = rng.choice(3, size=n, p=[0.45, 0.15, 0.40])
    d = np.empty(n)
    d[kind == 0] = rng.normal(-3.5, 0.6, np.count_nonzero(kind == 0))
    d[kind == 1] = rng.normal(4.5, 0.6, np.count_nonzero(kind == 1))
    d[kind == 2] = rng.uniform(-1.5, 2.5, np.count_nonzero(kind == 2))
    class_offset = rng.normal(0, 0.4, n_classes)
    return d + class_offset[labels]


def _ability(epochs: np.ndarray) -> np.ndarray:
    """Ability per epoch: low at epoch 1, saturating at the final epoch."""
    last = max(int(epochs.max()), 1)
    x = epochs / last
    return -2.5 + 4.0 * (1 - np.exp(-3 * x)) / (1 - np.exp(-3))


def _decisions(rng, epochs, difficulty, labels, confuser, n_classes, skill, *, pretrained):
    n_epochs, n = len(epochs), len(labels)
    quirk = rng.normal(0, 0.8, n).astype(np.float32)
    if pretrained:
        ability = np.array([1.5 + skill], dtype=np.float32)
    else:
        ability = (_ability(epochs) + skill).astype(np.float32)
    margin = ability[:, None] + quirk[None, :] - difficulty[None, :]
    margin += rng.normal(0, 0.35, (n_epochs, n)).astype(np.float32)
    correct = margin > 0
    # wrong answers: the image's confusable class 60 % of the time, else another wrong class
    other = (labels[None, :] + rng.integers(1, n_classes, (n_epochs, n))) % n_classes
    wrong = np.where(rng.random((n_epochs, n)) < 0.6, confuser[None, :], other)
    predicted = np.where(correct, labels[None, :], wrong)
    sig = 1 / (1 + np.exp(-margin))
    true_prob = np.where(correct, 0.5 + 0.5 * sig, 0.5 * sig).astype(np.float32)
    top_prob = np.where(
        correct, true_prob, true_prob + (1 - 2 * true_prob) * rng.uniform(0.1, 1, (n_epochs, n))
    ).astype(np.float32)
    if not pretrained and epochs[0] == 0:  # before training: uniform guessing
        guess = rng.integers(0, n_classes, n)
        predicted[0] = guess
        hit = guess == labels
        true_prob[0] = np.where(hit, 1.2, rng.uniform(0.5, 1.0, n)) / n_classes
        top_prob[0] = np.where(hit, true_prob[0], 1.2 / n_classes)
    return predicted.astype(np.int32), true_prob, top_prob


def _images(rng, labels, difficulty, n_classes, size) -> np.ndarray:
    """Small grey images: a class pattern under noise that grows with difficulty."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    freq = 1 + np.arange(n_classes, dtype=np.float32)[:, None, None] % 5
    angle = np.arange(n_classes, dtype=np.float32)[:, None, None] * 0.7
    patterns = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    noise_level = 1 / (1 + np.exp(-difficulty))
    out = np.empty((len(labels), size, size), dtype=np.uint8)
    for start in range(0, len(labels), 8192):  # bounded float32 temporaries
        sl = slice(start, start + 8192)
        noise = rng.random((len(labels[sl]), size, size), dtype=np.float32)
        w = noise_level[sl, None, None]
        out[sl] = (255 * ((1 - w) * patterns[labels[sl]] + w * noise)).astype(np.uint8)
    return out
