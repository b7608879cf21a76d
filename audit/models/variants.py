"""Trainable variants: the controlled variations of meding2022 Appendix A.1, and their presets.

A `VariantSpec` is one network to train: the base recipe with exactly the
changes its condition (`group`) calls for. Presets expand into lists of specs;
a user grid (YAML or JSON) does the same. Specs only: no training here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audit.schemas import SCHEDULES  # the learning-rate schedules (see `audit.running.train.make_scheduler`)

#: The conditions of meding2022 A.1, with the number of instances the paper trained.
PAPER_CONDITIONS: dict[str, int] = {
    "base": 1,
    "plus1": 1,
    "plus10": 1,
    "nesterov": 1,
    "half_batch": 1,
    "init_seed": 5,
    "lr_jitter": 5,
    "nondeterministic": 5,
    "data_order": 5,
    "architecture": 1,
    "half_data": 1,
    "combined": 5,
    "disjoint": 2,
}




@dataclass(frozen=True)
class VariantSpec:
    """One trainable network.

    `train_part` is "all", "half" (a seeded random half), "first_half" or
    "second_half" (the two disjoint halves). `split_batch` feeds each batch as
    two halves in sequence (the paper's "half batch size" condition).
    `schedule` is "step" (`lr_milestones`) or "onecycle" (see `audit.running.train.make_scheduler`);
    `epoch_size` draws that many images afresh each epoch from the variant's part
    (None: every image of the part once per epoch).
    """

    name: str
    group: str
    arch: str = "resnet_small"
    arch_kwargs: dict = field(default_factory=dict)
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    split_batch: bool = False
    init_seed: int = 0
    order_seed: int = 0
    train_part: str = "all"
    deterministic: bool = True
    train_size: int | None = None
    schedule: str = "step"
    label_smoothing: float = 0.0
    epoch_size: int | None = None

    def to_dict(self) -> dict:
        """The spec's fields; the recipe fields added later are left out at their defaults, so a spec
        written before them keeps its fingerprint (and its audit resumes)."""
        d = dataclasses.asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        for name, default in _LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VariantSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown variant fields {sorted(unknown)}; valid: {sorted(known)}")
        if not d.get("name"):
            raise ValueError(f"a variant needs a name; got the fields {sorted(d)}")
        d = {"group": d["name"], **d}  # a user's variant is its own group unless it names one
        if "lr_milestones" in d:
            d["lr_milestones"] = tuple(d["lr_milestones"])
        spec = cls(**d)
        spec.check()
        return spec

    def check(self) -> None:
        """Raise ValueError, naming the field, for values that would only fail once training starts."""
        from audit.models.architectures import check_architecture
        from audit.store.safety import check_name

        check_name(self.name, "variant name")  # it becomes the name of the variant's files in the audit

        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"variant {self.name!r}: {name} must be a positive integer, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not self.lr > 0:
            raise ValueError(f"variant {self.name!r}: lr must be a positive number, got {self.lr!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"variant {self.name!r}: schedule must be one of {', '.join(SCHEDULES)}, "
                             f"got {self.schedule!r}")
        if isinstance(self.label_smoothing, bool) or not isinstance(self.label_smoothing, int | float) \
                or not 0 <= self.label_smoothing < 1:
            raise ValueError(f"variant {self.name!r}: label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.epoch_size is not None and (isinstance(self.epoch_size, bool) or not isinstance(self.epoch_size, int)
                                            or self.epoch_size < 1):
            raise ValueError(f"variant {self.name!r}: epoch_size must be a positive integer or null, "
                             f"got {self.epoch_size!r}")
        try:
            check_architecture(self.arch, self.arch_kwargs)
        except ValueError as exc:
            raise ValueError(f"variant {self.name!r}: {exc}") from None

    def fingerprint(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


#: Fields added to VariantSpec after audits were written, with the defaults that keep the old recipe.
_LATER_FIELDS = {"schedule": "step", "label_smoothing": 0.0, "epoch_size": None}


@dataclass(frozen=True)
class BaseRecipe:
    """The base condition's training recipe, which every variant changes in one way."""

    arch: str = "resnet_small"
    arch_kwargs: dict = field(default_factory=lambda: {"width": 16, "depth": 18})
    other_arch: str = "densenet_small"
    other_arch_kwargs: dict = field(default_factory=dict)
    epochs: int = 90
    batch_size: int = 256
    lr: float = 0.1
    train_size: int | None = None
    schedule: str = "step"
    label_smoothing: float = 0.0
    epoch_size: int | None = None


PRESET_RECIPES: dict[str, BaseRecipe] = {
    # sized so that the default audit (Fashion-MNIST) takes a few minutes on 2 CPU cores: a ResNet whose
    # stem halves the resolution (4x cheaper per image than at full resolution), one-cycle schedule and
    # label smoothing, 3 epochs of 30,000 images drawn afresh from the whole training split (about
    # 87 % on Fashion-MNIST in 15 CPU-seconds; benchmarks/bench_recipe.py compares it with the old recipe)
    "quick": BaseRecipe(
        arch_kwargs={"width": 12, "depth": 8, "stem_stride": 2},
        other_arch="vgg_small",
        other_arch_kwargs={"width": 12, "depth": 1},
        epochs=3,
        lr=0.1,
        batch_size=128,
        train_size=None,
        schedule="onecycle",
        label_smoothing=0.1,
        epoch_size=30000,
    ),
    # the full A.1 grid: for a GPU or a cluster
    "paper": BaseRecipe(epochs=30, batch_size=256, train_size=None),
}
# the Gaussian control (meding2022 A.4-A.5): the quick networks trained for 16 epochs, at a higher rate and
# without label smoothing, which blurs the neighbouring sigmas the classes differ by (rho 0.83 between class
# accuracy and eq. 1's KL divergence in 9 min on 2 cores; 0.80 with 12 epochs)
PRESET_RECIPES["gaussian"] = dataclasses.replace(PRESET_RECIPES["quick"], epochs=16, lr=0.2, label_smoothing=0.0)

#: instances per condition in each preset ("nondeterministic" is dropped on devices without such kernels)
PRESET_CONDITIONS: dict[str, dict[str, int]] = {
    "quick": {
        "base": 1, "plus1": 1, "nesterov": 1, "half_batch": 1, "init_seed": 2, "lr_jitter": 2,
        "nondeterministic": 2, "data_order": 2, "architecture": 1, "half_data": 1, "combined": 1, "disjoint": 2,
    },
    "paper": dict(PAPER_CONDITIONS),
    "minimal": {"base": 1, "init_seed": 2, "data_order": 1},
}  # fmt: skip
PRESET_CONDITIONS["gaussian"] = dict(PRESET_CONDITIONS["quick"])


def list_presets() -> list[str]:
    return sorted(PRESET_CONDITIONS)


def expand_conditions(conditions: dict[str, int], recipe: BaseRecipe, *, seed: int = 0) -> list[VariantSpec]:
    """Expand {condition: n_instances} into variant specs (meding2022 A.1).

    Seeds are derived from `seed`, so the same grid gives the same specs.
    Learning-rate jitter draws the initial rate from [1.48, 1.52] x the base rate,
    as the paper's 0.148-0.152 around 0.1.
    """
    unknown = set(conditions) - set(PAPER_CONDITIONS)
    if unknown:
        raise ValueError(f"unknown conditions {sorted(unknown)}; valid: {', '.join(PAPER_CONDITIONS)}")
    rng = np.random.default_rng(seed)
    base = VariantSpec(
        name="base", group="base", arch=recipe.arch, arch_kwargs=dict(recipe.arch_kwargs), epochs=recipe.epochs,
        batch_size=recipe.batch_size, lr=recipe.lr, init_seed=seed, order_seed=seed, train_size=recipe.train_size,
        schedule=recipe.schedule, label_smoothing=recipe.label_smoothing, epoch_size=recipe.epoch_size,
    )
    other = {"arch": recipe.other_arch, "arch_kwargs": dict(recipe.other_arch_kwargs)}
    specs: list[VariantSpec] = []

    def add(group: str, n: int, make):
        for i in range(n):
            name = group if n == 1 and group not in ("disjoint",) else f"{group}_{i + 1}"
            specs.append(dataclasses.replace(base, name=name, group=group, **make(i)))

    def fresh_seed() -> int:
        return int(rng.integers(1, 2**31 - 1))

    def jitter() -> float:
        return round(float(rng.uniform(1.48, 1.52)) * recipe.lr, 5)

    for group, n in conditions.items():
        if n < 1:
            continue
        if group == "base":
            add("base", 1, lambda i: {})
        elif group == "plus1":
            add(group, n, lambda i: {"epochs": recipe.epochs + 1})
        elif group == "plus10":
            add(group, n, lambda i: {"epochs": recipe.epochs + 10})
        elif group == "nesterov":
            add(group, n, lambda i: {"nesterov": True})
        elif group == "half_batch":
            add(group, n, lambda i: {"split_batch": True})
        elif group == "init_seed":
            add(group, n, lambda i: {"init_seed": fresh_seed()})
        elif group == "lr_jitter":
            add(group, n, lambda i: {"lr": jitter()})
        elif group == "nondeterministic":
            add(group, n, lambda i: {"deterministic": False})
        elif group == "data_order":
            add(group, n, lambda i: {"order_seed": fresh_seed()})
        elif group == "architecture":
            add(group, n, lambda i: dict(other))
        elif group == "half_data":
            add(group, n, lambda i: {"train_part": "half"})
        elif group == "combined":
            add(group, n, lambda i: {**other, "order_seed": fresh_seed(), "nesterov": True, "lr": jitter(),
                                     "init_seed": fresh_seed()})
        elif group == "disjoint":
            add(group, min(n, 2), lambda i: {"train_part": ("first_half", "second_half")[i]})
    return specs


def preset_variants(preset: str, *, seed: int = 0, epochs: int | None = None,
                    train_size: int | None = None) -> list[VariantSpec]:
    """The variant specs of a named preset (`list_presets()`), optionally with another base epoch count."""
    if preset not in PRESET_CONDITIONS:
        raise ValueError(f"unknown variant preset {preset!r}; valid: {', '.join(list_presets())}, or a grid file")
    recipe = PRESET_RECIPES.get(preset, PRESET_RECIPES["quick"])
    if epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=epochs)
    if train_size is not None:
        recipe = dataclasses.replace(recipe, train_size=train_size)
    return expand_conditions(PRESET_CONDITIONS[preset], recipe, seed=seed)


def load_grid(path: str | Path, *, seed: int = 0) -> list[VariantSpec]:
    """Read a user grid file (YAML or JSON), checked against `audit.schemas.GridFile`.

    Either ``{"base": {BaseRecipe fields}, "conditions": {condition: n}}`` or
    ``{"variants": [{VariantSpec fields}, ...]}`` (both keys may appear). Every problem is an
    InputError of one line that names the file, the field and the values allowed.
    """
    from audit.schemas import GridFile, InputError, check

    path = Path(path)
    where = f"grid file {path}"
    grid = _read_grid(path)
    check(GridFile, grid, where)
    if not ({"conditions", "variants"} & set(grid)):
        raise InputError(f"{where} must hold a mapping with 'conditions' and/or 'variants'")
    specs: list[VariantSpec] = []
    try:
        if "conditions" in grid:
            recipe = dataclasses.replace(PRESET_RECIPES["quick"], **(grid.get("base") or {}))
            specs += expand_conditions(dict(grid["conditions"]), recipe, seed=seed)
            for spec in specs:
                spec.check()
        for d in grid.get("variants") or []:
            specs.append(VariantSpec.from_dict(d))
    except ValueError as exc:  # what the schema leaves to the registries: conditions, architectures
        raise InputError(f"{where}: {exc}") from None
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise InputError(f"{where} names a variant twice: {sorted({n for n in names if names.count(n) > 1})}")
    return specs


def _read_grid(path: Path):
    """The parsed content of a grid file; InputError for a missing file or broken YAML/JSON."""
    from audit.schemas import InputError

    if not path.is_file():
        raise InputError(f"grid file {path} does not exist" if not path.exists() else f"grid file {path} is not a file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"grid file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise InputError(f"grid file {path} is not valid YAML{where}: "
                             f"{getattr(exc, 'problem', None) or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"grid file {path} is not valid JSON at line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}") from None


def resolve_variants(spec: str, *, seed: int = 0, epochs: int | None = None,
                     train_size: int | None = None) -> list[VariantSpec]:
    """`--variants` value: a preset name, a grid file path, or "none"."""
    if spec in ("none", ""):
        return []
    if spec in PRESET_CONDITIONS:
        return preset_variants(spec, seed=seed, epochs=epochs, train_size=train_size)
    if spec.endswith((".yaml", ".yml", ".json")):
        return load_grid(spec, seed=seed)
    raise ValueError(f"unknown variant preset {spec!r}; valid: {', '.join(list_presets())}, none, or a .yaml/.json grid file")
