"""An audit's settings: `AuditConfig`, flat as the manifest stores it, and its groups as small sub-configs
that check themselves (the data, the trained variants, the pretrained models, the deeper measures).

`AuditConfig.check()` checks every bound (`audit.schemas`), then each group's rules between its flags, each
failure one line naming the flag (InputError). Nothing here loads a dataset, trains or writes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from audit.data.base import DatasetError
from audit.data.registry import registered_dataset
from audit.schemas import InputError, check_audit_settings, check_settings_group

#: The options of table and shard sources that `ddd-audit run` takes as flags (--split, --train-split, ...).
SOURCE_FLAG_OPTIONS = ("split", "train_split", "image_column", "label_column", "classes")


def _check_group(part) -> None:
    check_settings_group(part.GROUP, dataclasses.asdict(part))


@dataclass(frozen=True)
class DataConfig:
    """Which images are audited: the source (`dataset`, `dataset_options`, `data_root`, `download`,
    `follow_symlinks`), the sizes, the image size of trained variants on file datasets, the decode cache and
    the reviewed labels (`relabel`)."""

    GROUP = "data"
    dataset: str
    data_root: str | None
    train_size: int | None
    val_size: int | None
    cache_dir: str | None
    image_size: int | None
    dataset_options: dict
    download: bool
    relabel: str | None
    follow_symlinks: bool

    def check(self) -> DataConfig:
        """The bounds; and --split, --train-split, --image-column, --label-column and --classes only for a
        source that takes them (hf:, parquet:, wds:)."""
        _check_group(self)
        try:
            source = registered_dataset(self.dataset)
        except DatasetError:  # an unknown name fails when the dataset is loaded, with the names that exist
            return self
        for option in SOURCE_FLAG_OPTIONS:
            if option in self.dataset_options and not source.takes(option):
                flag = "--" + option.replace("_", "-")
                raise InputError(f"{flag} is for hf:PATH, parquet:GLOB and wds:PATTERN datasets, not {self.dataset}",
                                 "dataset_options")
        return self


@dataclass(frozen=True)
class TrainingConfig:
    """The trained variants: the preset or grid file (`variants`), the base epochs, and what each records."""

    GROUP = "training"
    variants: str
    epochs: int | None
    record_train: bool
    probs: bool
    compile: bool

    def check(self) -> TrainingConfig:
        """The bounds (which presets and grid files exist is checked when they are read)."""
        _check_group(self)
        return self


@dataclass(frozen=True)
class PretrainedConfig:
    """The pretrained models: their specs, the ImageNet label map or the linear probe, and the resizer."""

    GROUP = "pretrained"
    models: list[str]
    probe: bool
    label_map: str | None
    probe_train_size: int | None
    resizer: str

    def check(self) -> PretrainedConfig:
        """The bounds (which models exist is checked when they are planned)."""
        _check_group(self)
        return self


@dataclass(frozen=True)
class DeeperConfig:
    """The deeper measures: prediction depth (and of the training images, and its four types), learnability,
    and the images whose representations are kept for RSA and CKA."""

    GROUP = "deeper"
    depth: str
    depth_train: bool
    depth_reference: int | None
    learnability: bool | None
    depth_types: bool
    rsa_images: int | None

    def check(self) -> DeeperConfig:
        """The bounds; and --depth-train only with a prediction depth to extend."""
        _check_group(self)
        if self.depth_train and self.depth == "none":
            raise InputError("Cannot use both --depth none and --depth-train; use --depth base --depth-train",
                             "depth_train")
        return self


@dataclass
class AuditConfig:
    """Everything that defines an audit run (stored in manifest.json, field by field as here).

    The fields are flat, as the manifest and `ddd-audit run`'s flags have them; `data`, `training`,
    `pretrained` and `deeper` are the groups as sub-configs, and `check()` checks them all.
    """

    dataset: str = "fashion-mnist"
    variants: str = "quick"
    models: list[str] = field(default_factory=list)
    data_root: str | None = None
    epochs: int | None = None
    train_size: int | None = None
    val_size: int | None = None
    seed: int = 0
    device: str = "auto"
    record_train: bool = False
    download: bool = True
    probe: bool = True
    label_map: str | None = None
    probe_train_size: int | None = 5000
    cache_dir: str | None = None
    image_size: int | None = None
    dataset_options: dict = field(default_factory=dict)
    depth: str = "base"
    depth_train: bool = False
    depth_reference: int | None = 2000
    learnability: bool | None = None
    probs: bool = True
    depth_types: bool = False
    compile: bool = False
    resizer: str = "pil"
    relabel: str | None = None
    rsa_images: int | None = 2000
    #: intra-op threads of each job (--threads); None chooses them before each job from the cores that other
    #: processes leave free (the threads change float sums: fix them for bit-identical reruns)
    threads: int | None = None
    #: Audit images behind symbolic links that leave the dataset folder (by default they are skipped)
    follow_symlinks: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def _part(self, cls):
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})

    @property
    def data(self) -> DataConfig:
        """The data's settings."""
        return self._part(DataConfig)

    @property
    def training(self) -> TrainingConfig:
        """The trained variants' settings."""
        return self._part(TrainingConfig)

    @property
    def pretrained(self) -> PretrainedConfig:
        """The pretrained models' settings."""
        return self._part(PretrainedConfig)

    @property
    def deeper(self) -> DeeperConfig:
        """The deeper measures' settings."""
        return self._part(DeeperConfig)

    def check(self) -> AuditConfig:
        """Every bound first (the first violation named by its flag, as `audit.schemas.AuditSettings` says),
        then each sub-config's rules between flags; InputError with one line. Returns `self`."""
        check_audit_settings(self.to_dict())
        for part in (self.data, self.training, self.pretrained, self.deeper):
            part.check()
        return self
