"""Learnability of a trained network: how well a student trained on its outputs agrees with it (sharma2018 §2).

D1 and D2 are disjoint seeded parts of the training split, D3 the audit's
validation images. N1 learns D1, labels D2, N2 learns (D2, N1(D2)), and the
learnability is the agreement of N1 and N2 on D3, with the random-label and
random-image controls of sharma2018 Table 1. Torch training here; no files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

#: sharma2018 §2's three kinds of data for step 1 (what N1 is trained on).
CONDITIONS = ("true_data", "random_labels", "random_images")


@dataclass(frozen=True)
class LearnabilityConfig:
    """The tiny teacher-student recipe (the same architecture for N1 and N2, as in sharma2018 Table 1).

    sharma2018 D.1 trains every network until its training error is below 1%
    (at most 500 epochs); here each network trains until it fits
    `fit_accuracy` of its training set or `max_epochs` pass. `arch` is "mlp"
    (a two-layer perceptron, sharma2018 Table 5's kind; cheap enough on a CPU
    to memorise random labels) or any name of `audit.models.architectures`.
    `n_per_split` images go into each of D1 and D2 (sharma2018: 25,000 each on
    CIFAR-10; the default audit uses far fewer to stay within its budget).
    Adam replaces sharma2018's plain SGD, again for speed.
    """

    arch: str = "mlp"
    arch_kwargs: dict = field(default_factory=lambda: {"hidden": (512, 512)})
    n_per_split: int = 1000
    max_epochs: int = 100
    fit_accuracy: float = 0.99
    batch_size: int = 128
    lr: float = 2e-3
    conditions: tuple[str, ...] = CONDITIONS

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class ConditionResult:
    """One condition of sharma2018 §2 on D3.

    learnability : agreement of N1 and N2 on D3, in [0, 1] (sharma2018 reports
        it x 100%); higher = the teacher's function is easier to learn.
    chance : the agreement expected if N2 guessed independently with its own
        class frequencies, sum_c P(N1 = c) P(N2 = c).
    teacher_accuracy, student_accuracy : against the labels of D3.
    teacher_fit, student_fit : accuracy on their own training sets (D1 with
        its labels, D2 with N1's labels) when training stopped; sharma2018
        has both above 0.99.
    epochs : epochs the teacher and the student trained.
    agree : bool per D3 image, N1(x) == N2(x).
    """

    condition: str
    learnability: float
    chance: float
    teacher_accuracy: float
    student_accuracy: float
    teacher_fit: float
    student_fit: float
    epochs: tuple[int, int]
    agree: np.ndarray
    seconds: float


def split_d1_d2(n_train: int, n_per_split: int, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint seeded subsets of the training split, D1 and D2, of up to `n_per_split` images each."""
    if n_train < 2:
        raise ValueError(f"learnability needs at least 2 training images, got {n_train}")
    n = min(int(n_per_split), n_train // 2)
    perm = np.random.default_rng(random_state).permutation(n_train)
    return np.sort(perm[:n]), np.sort(perm[n : 2 * n])


def learnability(train_images, train_labels, test_images, test_labels, *, n_classes: int,
                 config: LearnabilityConfig | None = None, device=None, random_state: int = 0,
                 progress=None) -> dict[str, ConditionResult]:
    """Run sharma2018 §2's teacher-student experiment for each condition.

    Parameters
    ----------
    train_images : torch.Tensor of uint8, shape (n_train, C, H, W)
        The pool D1 and D2 are drawn from (the audit's training split).
    train_labels : array-like of int, shape (n_train,)
    test_images : torch.Tensor of uint8, shape (n_images, C, H, W)
        D3: the audit's validation images.
    test_labels : array-like of int, shape (n_images,)
    n_classes : int
    config : LearnabilityConfig, optional
    device : torch.device, optional (default: the images' device)
    random_state : int, default 0
        Seeds the split, the random labels and images, and both networks.
    progress : callable (stage, done, total), optional

    Returns
    -------
    results : dict {condition: ConditionResult}
        In `config.conditions` order. sharma2018 Table 1 finds true data far
        above both controls (about 70-80% against 12-19% on CIFAR-10).
    """
    import torch

    from audit.data.tensors import Normalizer, TensorData

    config = config or LearnabilityConfig()
    unknown = set(config.conditions) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"unknown learnability conditions {sorted(unknown)}; valid: {', '.join(CONDITIONS)}")
    device = device or train_images.device
    train_labels = np.asarray(train_labels, dtype=np.int64)
    test_labels = np.asarray(test_labels, dtype=np.int64)
    d1, d2 = split_d1_d2(len(train_labels), config.n_per_split, random_state)
    norm = Normalizer.fit(TensorData(train_images, torch.from_numpy(train_labels)))
    x1 = norm(train_images[torch.from_numpy(d1).to(train_images.device)].to(device), True)
    x2 = norm(train_images[torch.from_numpy(d2).to(train_images.device)].to(device), True)
    x3 = test_images.to(device)
    rng = np.random.default_rng(random_state + 1)
    results: dict[str, ConditionResult] = {}
    total = 2 * len(config.conditions)
    for i, cond in enumerate(config.conditions):
        t0 = time.perf_counter()
        y1 = train_labels[d1]
        xa = x1
        if cond in ("random_labels", "random_images"):
            y1 = rng.integers(0, n_classes, size=len(d1))
        if cond == "random_images":  # each value uniform in [-1, 1] (sharma2018 §2), in the normalised space
            g = torch.Generator().manual_seed(random_state + 2)
            xa = (torch.rand(x1.shape, generator=g) * 2 - 1).to(device).contiguous(memory_format=torch.channels_last)
        seed = random_state + 100 * i
        teacher, fit1, ep1 = _fit(config, xa, torch.from_numpy(y1).to(device), n_classes, seed=seed)
        if progress is not None:
            progress("learnability", 2 * i + 1, total)
        y2 = _predict(teacher, x2, None)
        student, fit2, ep2 = _fit(config, x2, torch.from_numpy(y2).to(device), n_classes, seed=seed + 1)
        if progress is not None:
            progress("learnability", 2 * i + 2, total)
        p1 = _predict(teacher, x3, norm)
        p2 = _predict(student, x3, norm)
        agree = p1 == p2
        f1 = np.bincount(p1, minlength=n_classes) / len(p1)
        f2 = np.bincount(p2, minlength=n_classes) / len(p2)
        results[cond] = ConditionResult(
            condition=cond,
            learnability=float(agree.mean()),
            chance=float((f1 * f2).sum()),
            teacher_accuracy=float((p1 == test_labels).mean()),
            student_accuracy=float((p2 == test_labels).mean()),
            teacher_fit=fit1,
            student_fit=fit2,
            epochs=(ep1, ep2),
            agree=agree,
            seconds=time.perf_counter() - t0,
        )
    return results


def _make_network(config: LearnabilityConfig, in_shape, n_classes: int):
    import torch.nn as nn

    if config.arch == "mlp":
        layers: list = [nn.Flatten()]
        width = int(np.prod(in_shape))
        for h in config.arch_kwargs.get("hidden", (512, 512)):
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        return nn.Sequential(*layers, nn.Linear(width, n_classes))
    from audit.models.architectures import create_architecture

    return create_architecture(config.arch, in_channels=in_shape[0], n_classes=n_classes, **config.arch_kwargs)


def _fit(config: LearnabilityConfig, x, y, n_classes: int, *, seed: int):
    """Adam on pre-normalised tensors until the network fits `fit_accuracy` of (x, y) or `max_epochs` pass.

    Returns the network, its accuracy on (x, y) over the last epoch, and the epochs run.
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    model = _make_network(config, tuple(x.shape[1:]), n_classes).to(x.device)
    if config.arch == "mlp":
        x = x.contiguous()
    else:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(seed)
    n_batches = (len(y) + config.batch_size - 1) // config.batch_size
    fit, epochs_run = 0.0, 0
    model.train()
    while epochs_run < config.max_epochs:
        epochs_run += 1
        order = torch.randperm(len(y), generator=gen).to(x.device)
        hits = 0
        for b in range(n_batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hits += int((out.argmax(dim=1) == y[idx]).sum())
        fit = hits / len(y)
        if fit >= config.fit_accuracy:
            break
    return model, fit, epochs_run


def _predict(model, x, norm, batch_size: int = 1000) -> np.ndarray:
    """Argmax of `model` on x (uint8 images when `norm` is given, else already normalised)."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(x), batch_size):
            xb = norm(x[s : s + batch_size], True) if norm is not None else x[s : s + batch_size]
            out.append(model(xb.contiguous()).argmax(dim=1).cpu())
    return torch.cat(out).numpy()
