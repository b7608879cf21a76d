"""The training recipes: the one-cycle schedule, images drawn per epoch, the presets' conditions, the
input transforms, and the Gaussian control's direction (meding2022 A.4-A.5)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from audit.data.sources import load_gaussian
from audit.metrics.gaussian_control import gaussian_kl, kl_accuracy_correlation, nearest_neighbour_kl
from audit.models.variants import PRESET_RECIPES, VariantSpec, preset_variants
from audit.running.train import (
    MAX_PASSES_PER_EPOCH,
    Normalizer,
    TensorData,
    epoch_draws,
    make_scheduler,
    train_indices,
    train_variant,
)


def _tiny_data(n: int, n_classes: int = 3, size: int = 8, seed: int = 0) -> TensorData:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    images = (rng.integers(0, 60, (n, size, size, 1)) + 60 * labels[:, None, None, None]).astype(np.uint8)
    return TensorData.from_numpy(images, labels, torch.device("cpu"))


def test_onecycle_warms_up_then_anneals_over_the_variants_own_steps():
    spec = VariantSpec(name="v", group="base", lr=0.2, epochs=3, schedule="onecycle")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=spec.lr)
    sched = make_scheduler(opt, spec, steps_per_epoch=10)
    rates = []
    for _ in range(30):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    peak = int(np.argmax(rates))
    assert rates[0] == pytest.approx(0.02) and max(rates) == pytest.approx(0.2, rel=1e-2)
    assert 5 <= peak <= 9  # 25 % of the 30 steps
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1:], strict=False))
    assert rates[-1] < 0.002
    # "half batch" takes two optimizer steps per batch: the cycle spans both
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    split = make_scheduler(opt, dataclasses.replace(spec, split_batch=True), steps_per_epoch=10)
    split_rates = []
    for _ in range(60):
        split_rates.append(opt.param_groups[0]["lr"])
        opt.step()
        split.step()
    assert 12 <= int(np.argmax(split_rates)) <= 16 and split_rates[-1] < 0.002


@pytest.mark.parametrize("total", [1, 2, 3, 4, 5, 8, 30, 705])
def test_onecycle_matches_torch_and_survives_a_few_steps(total):
    """The values of torch's OneCycleLR; 4 steps in all (a tiny folder's plus1) divided by zero there."""
    spec = VariantSpec(name="v", group="base", lr=0.1, epochs=total, schedule="onecycle")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=spec.lr)
    ours = make_scheduler(opt, spec, steps_per_epoch=1)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=spec.lr)
    ref = None
    if total != 4:
        ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=0.1, total_steps=total, pct_start=0.25,
                                                  div_factor=10.0, final_div_factor=1e3, cycle_momentum=False)
    for _ in range(total):
        lr = opt.param_groups[0]["lr"]
        assert 1e-5 - 1e-12 <= lr <= 0.1 + 1e-12
        if ref is not None:
            assert lr == pytest.approx(ref_opt.param_groups[0]["lr"], abs=1e-15)
            ref_opt.step()
            ref.step()
        opt.step()
        ours.step()


def test_epoch_size_draws_that_many_images_each_epoch():
    train, val = _tiny_data(90), _tiny_data(30, seed=1)
    spec = VariantSpec(name="v", group="base", arch="vgg_small", arch_kwargs={"width": 4, "depth": 1}, epochs=2,
                       batch_size=10, epoch_size=30, schedule="onecycle", label_smoothing=0.1)
    totals = []
    res = train_variant(spec, train, val, 3, device=torch.device("cpu"),
                        progress=lambda stage, done, total: totals.append((done, total)))
    assert totals[-1] == (6, 6)  # 2 epochs x 3 batches of 10, not 2 x 9
    assert res.predicted.shape == (3, 30)
    with pytest.raises(ValueError, match="epoch_size"):
        dataclasses.replace(spec, epoch_size=0).check()
    with pytest.raises(ValueError, match="schedule"):
        dataclasses.replace(spec, schedule="cosine").check()
    with pytest.raises(ValueError, match="label_smoothing"):
        dataclasses.replace(spec, label_smoothing=1.0).check()


def test_a_small_split_passes_several_times_per_epoch_up_to_a_cap():
    """A recipe sized for 30,000 images per epoch still takes steps on 1,198 digits or a folder of 90."""
    assert epoch_draws(60000, 30000) == 30000 and epoch_draws(60000, None) == 60000
    assert epoch_draws(1198, 30000) == 1198 * MAX_PASSES_PER_EPOCH
    assert epoch_draws(90, 200) == 200 and epoch_draws(0, 30000) == 0
    train, val = _tiny_data(30), _tiny_data(30, seed=1)
    spec = VariantSpec(name="v", group="base", arch="vgg_small", arch_kwargs={"width": 4, "depth": 1}, epochs=1,
                       batch_size=10, epoch_size=75, schedule="onecycle")
    totals = []
    train_variant(spec, train, val, 3, device=torch.device("cpu"),
                  progress=lambda stage, done, total: totals.append((done, total)))
    assert totals[-1] == (8, 8)  # 75 draws from 30 images: 2.5 passes, 8 batches


def test_paper_preset_keeps_its_recipe_and_fingerprint():
    specs = preset_variants("paper")
    base = next(s for s in specs if s.group == "base")
    assert (base.arch, base.arch_kwargs, base.epochs, base.batch_size, base.lr, base.train_size) == (
        "resnet_small", {"width": 16, "depth": 18}, 30, 256, 0.1, None)
    assert all(s.schedule == "step" and s.label_smoothing == 0.0 and s.epoch_size is None for s in specs)
    # fields added later are left out of the fingerprint at their defaults
    assert not {"schedule", "label_smoothing", "epoch_size"} & set(base.to_dict())
    assert VariantSpec.from_dict(base.to_dict()) == base


def test_quick_preset_keeps_the_a1_conditions_meaningful():
    specs = {s.name: s for s in preset_variants("quick")}
    base = specs["base"]
    assert base.arch == "resnet_small" and base.schedule == "onecycle"
    assert specs["architecture"].arch != base.arch and specs["plus1"].epochs == base.epochs + 1
    n_train = 60000
    assert len(train_indices(n_train, base)) == n_train  # draws from every training image
    assert len(train_indices(n_train, specs["half_data"])) == n_train // 2
    a, b = (set(train_indices(n_train, specs[f"disjoint_{i}"])) for i in (1, 2))
    assert len(a) == len(b) == n_train // 2 and not a & b
    roundtrip = VariantSpec.from_dict(base.to_dict())
    assert roundtrip == base and roundtrip.fingerprint() == base.fingerprint()


def test_linear_transform_is_unchanged_and_symlog_spreads_small_amplitudes():
    rng = np.random.default_rng(0)
    quiet = np.clip(np.rint(128 + 1.0 * rng.standard_normal((50, 8, 8, 1))), 0, 255)
    louder = np.clip(np.rint(128 + 2.0 * rng.standard_normal((50, 8, 8, 1))), 0, 255)
    loud = np.clip(np.rint(128 + 50.0 * rng.standard_normal((50, 8, 8, 1))), 0, 255)
    loudest = np.clip(np.rint(128 + 100.0 * rng.standard_normal((50, 8, 8, 1))), 0, 255)
    images = np.concatenate([quiet, louder, loud, loudest]).astype(np.uint8)
    labels = np.repeat(np.arange(4), 50)

    linear = TensorData.from_numpy(images, labels, torch.device("cpu"))
    norm = Normalizer.fit(linear)
    x = linear.images.float() / 255.0
    expected = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    torch.testing.assert_close(norm(linear.images, False), expected)

    def spread(data):
        out = Normalizer.fit(data)(data.images, False)
        return [float(out[labels == k].std()) for k in range(4)]

    lin = spread(linear)
    sym = spread(TensorData.from_numpy(images, labels, torch.device("cpu"), transform="symlog"))
    # linear: 1 and 2 grey levels are nearly alike next to 50 and 100; symlog: the ratio 2 is a step of its own
    assert lin[1] - lin[0] < 0.05 * (lin[3] - lin[2])
    assert sym[1] - sym[0] > 0.5 * (sym[3] - sym[2])
    with pytest.raises(ValueError, match="input transform"):
        Normalizer.fit(TensorData(linear.images, linear.labels, "log"))


def test_gaussian_kl_is_eq1_and_falls_as_sigma_rises():
    # eq. (1) against a numerical integral of p log(p / q)
    x = np.linspace(-40, 40, 200001)
    p, q = (np.exp(-x**2 / (2 * s**2)) / (s * np.sqrt(2 * np.pi)) for s in (3.0, 4.0))
    assert gaussian_kl(3.0, 4.0) == pytest.approx(np.trapezoid(p * np.log(p / q), x), rel=1e-6)
    kl = nearest_neighbour_kl(100)
    assert np.all(np.diff(kl)[:-1] < 0) and kl[-1] == kl[-2]
    assert kl_accuracy_correlation(np.linspace(1, 0, 100)) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="one accuracy per class"):
        kl_accuracy_correlation(np.ones((2, 2)))


@pytest.mark.slow
def test_gaussian_control_class_accuracy_falls_as_sigma_rises():
    """A reduced Gaussian control (12 classes, 8x8 px, 100 training images a class) with the `gaussian`
    preset's recipe: the easy classes are the ones of small sigma, as eq. (1) predicts."""
    torch.set_num_threads(1)
    ds = load_gaussian(n_classes=12, n_train_per_class=100, n_val_per_class=50, image_size=8)
    assert ds.input_transform == "symlog"
    dev = torch.device("cpu")
    train = TensorData.from_numpy(ds.train.images, ds.train.labels, dev, transform=ds.input_transform)
    val = TensorData.from_numpy(ds.val.images, ds.val.labels, dev, transform=ds.input_transform)
    base = next(s for s in preset_variants("gaussian") if s.group == "base")
    spec = dataclasses.replace(base, epochs=20, arch_kwargs={**base.arch_kwargs, "width": 8})
    res = train_variant(spec, train, val, ds.n_classes, device=dev)
    pred, y = res.predicted[-1], ds.val.labels
    accuracy = np.array([(pred[y == k] == k).mean() for k in range(ds.n_classes)])
    # the last class has one neighbour only, which makes it easier: compare with the three before it
    assert accuracy[:3].mean() > accuracy[-4:-1].mean() + 0.3
    assert kl_accuracy_correlation(accuracy) > 0.55
    assert PRESET_RECIPES["gaussian"].epochs > PRESET_RECIPES["quick"].epochs
