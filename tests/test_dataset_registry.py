"""The dataset registry (`@register_dataset`): a toy dataset registered from outside the package is audited
end to end; names, prefixes and the one-line error for an unknown name; and `AuditConfig`'s sub-configs,
which check their own flags while the manifest keeps the flat config."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest

from audit.data import (
    Dataset,
    DatasetError,
    Split,
    list_datasets,
    load_dataset,
    register_dataset,
    unregister_dataset,
)
from audit.running.config import DataConfig, DeeperConfig, PretrainedConfig, TrainingConfig
from audit.running.engine import AuditConfig, plan_audit, run_audit
from audit.running.executors import ExecutorSettings, LocalExecutor
from audit.schemas import SETTINGS_GROUPS, InputError
from audit.store import load

BUILT_IN = ["fashion-mnist", "mnist", "cifar10", "cifar100", "gaussian", "digits", "imagefolder:PATH",
            "imagenet:PATH", "hf:PATH", "parquet:GLOB", "wds:PATTERN"]


def make_bars(n_classes: int = 3, n_train: int = 40, n_val: int = 20) -> Dataset:
    """Class c is a bright bar across row 2c of an 8 x 8 grey image, on seeded noise (n_* per class)."""
    rng = np.random.default_rng(0)

    def split(per_class):
        labels = np.repeat(np.arange(n_classes), per_class)
        images = rng.integers(0, 60, size=(len(labels), 8, 8, 1), dtype=np.uint8)
        images[np.arange(len(labels)), 2 * labels] = 230
        return Split(labels, images=images)

    return Dataset(name="bars", classes=[f"row {2 * c}" for c in range(n_classes)], train=split(n_train),
                   val=split(n_val), origin="tests/test_dataset_registry.py")


@pytest.fixture
def bars():
    """`bars` and the prefix `bars:N` (N classes), registered from here and removed afterwards."""

    @register_dataset("bars")
    def load_bars(data_root=None, download=True):
        return make_bars()

    @register_dataset(prefix="bars:", argument="N")
    def load_bars_n(n_classes: str, *, split: str | None = None):
        return make_bars(int(n_classes))

    yield
    unregister_dataset("bars")
    unregister_dataset("bars:")


def test_a_dataset_registered_from_outside_is_audited(bars, tmp_path):
    config = AuditConfig(dataset="bars", variants="minimal", epochs=1, device="cpu", depth="none", rsa_images=0)
    outcome = run_audit(plan_audit(config), tmp_path / "a")
    assert not outcome.failed
    result = load(tmp_path / "a")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    expected = make_bars()
    assert manifest["config"] == config.to_dict()
    assert manifest["dataset"]["name"] == "bars" and manifest["dataset"]["fingerprint"] == expected.fingerprint()
    np.testing.assert_array_equal(result.labels, np.repeat([0, 1, 2], 20))  # 20 validation images per class
    assert list(result.images["class_name"][::20]) == ["row 0", "row 2", "row 4"]
    assert result.model_names == ["base", "init_seed_1", "init_seed_2", "data_order"]  # the minimal preset
    for name in result.model_names:
        assert result.decision_array(name).shape == (2, 60)  # epoch 0 and the one trained epoch


def test_names_and_prefixes_are_listed_in_registration_order(bars):
    assert list_datasets() == [*BUILT_IN[:6], "bars", *BUILT_IN[6:], "bars:N"]
    assert load_dataset("bars:4").n_classes == 4  # the longest prefix that matches, with what follows it
    with pytest.raises(DatasetError) as err:
        load_dataset("bar")
    assert str(err.value) == f"unknown dataset 'bar'; valid: {', '.join(list_datasets())}"
    assert "\n" not in str(err.value)


def test_unregistered_names_are_gone(bars):
    unregister_dataset("bars")
    with pytest.raises(DatasetError, match="unknown dataset 'bars'; valid: fashion-mnist"):
        load_dataset("bars")


@pytest.mark.parametrize("usage", BUILT_IN)
def test_every_built_in_source_is_registered_and_named_in_the_help(usage):
    from audit import cli

    assert usage in list_datasets()
    assert usage in inspect.signature(cli.run).parameters["dataset"].default.help


@pytest.mark.parametrize("args, kwargs, message", [
    (("digits",), {}, "already registered by audit.data.sources.load_digits"),
    (("a:b",), {}, "without ':'"),
    ((), {"prefix": "x"}, "ends with ':'"),
    ((), {}, "not both and not neither"),
    (("x",), {"prefix": "x:"}, "not both and not neither"),
])
def test_bad_registrations_fail(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        register_dataset(*args, **kwargs)(lambda data_root=None, download=True: None)


# --------------------------------------------------------------------------- AuditConfig's sub-configs
def test_the_flat_config_is_what_the_manifest_kept():
    """The manifest's "config" of an audit made before the sub-configs, key for key and in order."""
    kept = {"dataset": "fashion-mnist", "variants": "quick", "models": [], "data_root": None, "epochs": None,
            "train_size": None, "val_size": None, "seed": 0, "device": "auto", "record_train": False,
            "download": True, "probe": True, "label_map": None, "probe_train_size": 5000, "cache_dir": None,
            "image_size": None, "dataset_options": {}, "depth": "base", "depth_train": False,
            "depth_reference": 2000, "learnability": None, "probs": True, "depth_types": False, "compile": False,
            "resizer": "pil", "relabel": None, "rsa_images": 2000, "threads": None, "follow_symlinks": False}
    assert json.dumps(AuditConfig().to_dict()) == json.dumps(kept)
    assert AuditConfig(dataset="digits", epochs=3).to_dict() == {**kept, "dataset": "digits", "epochs": 3}


def test_the_sub_configs_split_the_fields_between_them():
    parts = {"data": DataConfig, "training": TrainingConfig, "pretrained": PretrainedConfig, "deeper": DeeperConfig}
    config = AuditConfig(dataset="digits", epochs=2, models=["m"], depth="all", cache_dir="c")
    grouped = []
    for group, cls in parts.items():
        names = [f.name for f in dataclasses.fields(cls)]
        assert cls.GROUP == group and set(names) == set(SETTINGS_GROUPS[group])
        assert dataclasses.asdict(getattr(config, group)) == {n: getattr(config, n) for n in names}
        grouped += names
    assert len(grouped) == len(set(grouped))
    assert set(grouped) | {"seed", "device", "threads"} == {f.name for f in dataclasses.fields(AuditConfig)}


@pytest.mark.parametrize("config, part, message", [
    (AuditConfig(depth="none", depth_train=True), "deeper",
     "Cannot use both --depth none and --depth-train; use --depth base --depth-train"),
    (AuditConfig(dataset="digits", dataset_options={"split": "test"}), "data",
     "--split is for hf:PATH, parquet:GLOB and wds:PATTERN datasets, not digits"),
    (AuditConfig(dataset="imagefolder:x", dataset_options={"label_column": "y"}), "data",
     "--label-column is for hf:PATH, parquet:GLOB and wds:PATTERN datasets, not imagefolder:x"),
    (AuditConfig(epochs=0), "training", "--epochs must be an integer from 1 to 10,000; got 0"),
    (AuditConfig(probe_train_size=5), "pretrained", "--probe-train-size must be an integer from 10 to"),
    (AuditConfig(rsa_images=2), "deeper", "--rsa-images must be 0 (none) or an integer from 3 to 10,000; got 2"),
    (AuditConfig(val_size=0), "data", "--val-size must be an integer from 1 to"),
])
def test_each_sub_config_checks_its_own_flags(config, part, message):
    with pytest.raises(InputError) as err:
        getattr(config, part).check()
    assert str(err.value).startswith(message)
    others = [p for p in ("data", "training", "pretrained", "deeper") if p != part]
    for other in others:
        getattr(config, other).check()  # no other group objects
    with pytest.raises(InputError) as err:
        plan_audit(config)  # checked before any dataset is loaded
    assert str(err.value).startswith(message)


def test_a_source_that_takes_an_option_gets_it(bars):
    AuditConfig(dataset="bars:3", dataset_options={"split": "val"}).check()  # load_bars_n takes split=
    AuditConfig(dataset="hf:x", dataset_options={"split": "val", "classes": "c.txt"}).check()
    with pytest.raises(InputError, match="--split is for hf:PATH"):
        AuditConfig(dataset="bars", dataset_options={"split": "val"}).check()


def test_executor_settings():
    assert ExecutorSettings("ray", "10.0.0.1:6379", gpus_per_job=0.5).check().address == "10.0.0.1:6379"
    with pytest.raises(InputError, match="^--ray-address needs --executor ray; use --executor ray --ray-address ADDR$"):
        ExecutorSettings("local", "10.0.0.1:6379").check()
    with pytest.raises(InputError, match="^--gpus-per-job needs --executor ray; locally, --workers N runs N"):
        ExecutorSettings(gpus_per_job=0.5).check()
    made = ExecutorSettings(workers=2).make()
    assert isinstance(made, LocalExecutor) and made.workers == 2
    with pytest.raises(InputError, match="unknown executor 'dask'; valid: local, ray"):
        ExecutorSettings("dask").make()
