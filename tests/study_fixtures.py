"""Tiny audit directories for the human-study tests, written through audit.store's writer.

Each image gets a chosen number of correct models, so the trivial and impossible sets are
known by construction. Test helpers only: no pytest fixtures, no conftest, no network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from audit.store import AuditDir, decisions_frame, write_npy, write_parquet


def write_audit(
    path,
    n_correct,
    labels,
    *,
    n_models: int,
    n_classes: int | None = None,
    image_shape: tuple[int, ...] = (8, 8),
    random_state: int = 0,
) -> Path:
    """Write an audit whose image i is classified correctly by exactly n_correct[i] models.

    Parameters
    ----------
    n_correct, labels : array-like of int, shape (n_images,)
    image_shape : (h, w) for grayscale or (h, w, 3) for RGB uint8 images
    """
    path = Path(path)
    n_correct = np.asarray(n_correct, dtype=int)
    labels = np.asarray(labels, dtype=int)
    n_classes = int(n_classes or labels.max() + 1)
    n_images = len(labels)
    rng = np.random.default_rng(random_state)
    classes = [f"class{c}" for c in range(n_classes)]
    models = [f"model{m}" for m in range(n_models)]
    correct = np.zeros((n_images, n_models), dtype=bool)
    for i, k in enumerate(n_correct):
        correct[i, rng.permutation(n_models)[:k]] = True
    store = AuditDir(path)
    store.write_manifest(
        {
            "dataset": {"name": "tiny", "classes": classes},
            "jobs": [{"name": m, "status": "done"} for m in models],
        }
    )
    images = pd.DataFrame(
        {
            "image_id": np.arange(n_images),
            "label": labels,
            "class_name": [classes[c] for c in labels],
            "split": "val",
            "source": "array",
        }
    )
    write_parquet(path / "images.parquet", images)
    write_npy(path / "images.npy", rng.integers(0, 256, size=(n_images, *image_shape), dtype=np.uint8))
    ids = np.arange(n_images)
    for m, name in enumerate(models):
        wrong = (labels + 1 + m % (n_classes - 1)) % n_classes
        predicted = np.where(correct[:, m], labels, wrong)
        prob = np.where(correct[:, m], 0.9, 0.1).astype(np.float32)
        frame = decisions_frame([0], ids, predicted[None], prob[None], np.full((1, n_images), 0.9), labels)
        store.write_job(name, {"kind": "test", "accuracy": float(correct[:, m].mean())}, frame)
    store.write_models_table(models)
    return path


def make_study_audit(
    path,
    *,
    n_trivial: int = 200,
    n_impossible: int = 180,
    n_near: int = 20,
    n_mixed: int = 20,
    n_models: int = 5,
    n_classes: int = 4,
    image_shape: tuple[int, ...] = (8, 8),
    random_state: int = 0,
) -> Path:
    """An audit with n_trivial images all models get right, n_impossible all get wrong, n_near
    with exactly one model right and n_near with exactly one wrong (trivial/impossible only at
    tolerance 1), and n_mixed with 2 correct; shuffled, classes drawn uniformly."""
    rng = np.random.default_rng(random_state)
    n_correct = np.concatenate(
        [
            np.full(n_trivial, n_models),
            np.zeros(n_impossible, dtype=int),
            np.full(n_near, n_models - 1),
            np.ones(n_near, dtype=int),
            np.full(n_mixed, 2),
        ]
    )
    n_correct = rng.permutation(n_correct)
    labels = rng.integers(0, n_classes, size=len(n_correct))
    return write_audit(
        path,
        n_correct,
        labels,
        n_models=n_models,
        n_classes=n_classes,
        image_shape=image_shape,
        random_state=random_state,
    )


#: Nine numbers of right answers out of 149 whose accuracies have meding2022 §3.4's mean
#: (81.36%), range (71.81% = 107/149 to 88.59% = 132/149) and SD (6.29%).
PAPER_N_CORRECT = (107, 108, 113, 123, 125, 127, 128, 128, 132)


def answer_like_the_paper(store, study, codes, n_correct=PAPER_N_CORRECT, *, random_state: int = 7) -> dict:
    """Let each observer (codes) answer every trial, n_correct[k] of them right: the trials with
    the lowest shared difficulty plus a little individual noise, with log-normal RTs.

    Returns {subject: ndarray of bool over the trials sorted by trial id}.
    """
    rng = np.random.default_rng(random_state)
    first = store.get_observer(study.id, codes[0])
    trial_ids = sorted(t.trial_id for t in store.schedule(first.id) if t.kind == "main")
    hardness = dict(zip(trial_ids, rng.permutation(len(trial_ids)), strict=True))
    correct = {}
    for code, k in zip(codes, n_correct, strict=True):
        observer = store.get_observer(study.id, code)
        session = store.start_session(observer.id)
        order = sorted(trial_ids, key=lambda t: hardness[t] + rng.normal(0, 8))
        right = set(order[:k])
        for trial in store.schedule(observer.id):
            wrong = "left" if trial.correct_side == "right" else "right"
            choice = trial.correct_side if trial.trial_id in right else wrong
            store.record_response(session.id, trial.trial_id, choice, rt_ms=float(rng.lognormal(7, 0.3)))
        correct[observer.subject] = np.array([t in right for t in trial_ids])
    return correct
