"""The schemas of what people write: a grid file's recipe and variants, and an audit's settings (the flags
of `ddd-audit run`), as pydantic models with the bounds of every field; the bounds themselves, for the
CLI's options; and `check`, which turns the first violation into one line naming the file or flag, the
field and the values allowed. Validation only: nothing here reads a file, trains or writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

# --------------------------------------------------------------------------- bounds (the CLI shows them)
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_LR = 10.0
MAX_WIDTH = 4096
MAX_DEPTH = 200
MAX_SEED = 2**32 - 1
MAX_IMAGES = 100_000_000  # train_size, val_size, epoch_size: more than any dataset this tool reads
MIN_IMAGE_SIZE = 8  # three stride-2 stages
MAX_IMAGE_SIZE = 1024
MAX_RSA_IMAGES = 10_000  # a Gram matrix of n x n float32 per model: 400 MB at 10,000
MAX_DEPTH_REFERENCE = 1_000_000
MAX_WORKERS = 256
MAX_THREADS = 1024
MAX_INSTANCES = 100  # instances of one condition in a grid
SCHEDULES = ("step", "onecycle")
TRAIN_PARTS = ("all", "half", "first_half", "second_half")


class InputError(ValueError):
    """An input that breaks its schema; the message is one line: where, the field, the values allowed.
    `field` is the top-level field at fault (None when unknown)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# --------------------------------------------------------------------------- one line per violation
def check(model: type[BaseModel], data: Any, where: str, *,
          field_name: Callable[[str], str] | None = None) -> BaseModel:
    """`model` validated from `data`; InputError with one line otherwise.

    where : the file or setting the data came from, put first in the message ("grid file grid.yaml")
    field_name : how a field's path is shown (for example as its command-line flag)
    """
    try:
        return model.model_validate(_plain(data))
    except ValidationError as exc:
        loc = exc.errors(include_url=False)[0]["loc"]
        field = loc[0] if loc and isinstance(loc[0], str) else None
        raise InputError(explain(exc, model, data, where, field_name=field_name), field) from None


def explain(exc: ValidationError, model: type[BaseModel], data: Any, where: str, *,
            field_name: Callable[[str], str] | None = None) -> str:
    """The first error of `exc` as one line: "{where}: {field} must be {allowed}; got {value}"."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(p for p in first["loc"] if p != "[key]")
    shown = _path(loc, data)
    if field_name is not None and shown:
        shown = field_name(shown)
    more = f" (and {len(errors) - 1} more {'problem' if len(errors) == 2 else 'problems'})" if len(errors) > 1 \
        else ""
    prefix = f"{where}: " if where else ""
    if first["type"] == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        valid = ", ".join(parent.model_fields) if parent is not None else ""
        return f"{prefix}unknown field {shown!r}; valid: {valid}{more}"
    allowed = _allowed(model, loc) or first["msg"].lower()
    got = "it is missing" if first["type"] == "missing" else f"got {_show(first.get('input'))}"
    subject = shown or "its content"
    return f"{prefix}{subject} must be {allowed}; {got}{more}"


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, so that strict fields take them."""
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _path(loc: tuple, data: Any) -> str:
    """('variants', 0, 'epochs') -> "variants[0] ('a').epochs", the variant's name taken from the data."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" ({node['name']!r})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as `list[Variant]` or `Variant | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, str) and current is not None and part in current.model_fields:
            current = _inner_model(current.model_fields[part].annotation)
    return current


def _allowed(model: type[BaseModel], loc: tuple) -> str | None:
    """The description of the deepest field on `loc` (the model's own for the whole input)."""
    current: type[BaseModel] | None = model
    allowed = model.model_config.get("title")
    for part in loc:
        if isinstance(part, str) and current is not None and part in current.model_fields:
            info = current.model_fields[part]
            allowed = info.description or allowed
            current = _inner_model(info.annotation)
    return allowed


# --------------------------------------------------------------------------- field types
def _name_rule(value: str) -> str:
    from audit.store.safety import check_name

    check_name(value, "variant name")
    return value


def _rsa_rule(value: int | None) -> int | None:
    if value is not None and 0 < value < 3:
        raise ValueError("0 (none) or at least 3")
    return value


def _int(low: int, high: int, default: int = 1) -> Any:
    """An integer field from `low` to `high`; the default is never validated (nor used: unset stays unset)."""
    return Field(default, ge=low, le=high, description=f"an integer from {low:,} to {high:,}")


_STRICT = ConfigDict(extra="forbid", strict=True)
Instances = Annotated[int, Field(ge=0, le=MAX_INSTANCES)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


class ArchOptions(BaseModel):
    """The numeric options of the trainable architectures; which options an architecture takes is checked
    against its factory (`audit.models.architectures.check_architecture`)."""

    model_config = ConfigDict(extra="allow", strict=True, title="a mapping of architecture options")
    width: int = _int(1, MAX_WIDTH)
    growth: int = _int(1, MAX_WIDTH)
    depth: int = _int(1, MAX_DEPTH)
    stem_stride: int = _int(1, 2)


class _Recipe(BaseModel):
    """What a grid's `base` and its `variants` share."""

    model_config = _STRICT
    arch: str = Field("resnet_small", min_length=1, max_length=128, description="an architecture name (see "
                      "`ddd-audit list architectures`)")
    arch_kwargs: ArchOptions = Field(default_factory=ArchOptions, description="a mapping of architecture "
                                     f"options such as {{width: 1..{MAX_WIDTH}, depth: 1..{MAX_DEPTH}}}")
    epochs: int = _int(1, MAX_EPOCHS)
    batch_size: int = _int(1, MAX_BATCH_SIZE)
    lr: float = Field(0.1, gt=0, lt=MAX_LR, allow_inf_nan=False,
                      description=f"a finite number above 0 and below {MAX_LR:g}")
    train_size: int | None = Field(None, ge=2, le=MAX_IMAGES,
                                   description=f"null or an integer from 2 to {MAX_IMAGES:,}")
    schedule: Literal[SCHEDULES] = Field("step", description=f"one of {', '.join(SCHEDULES)}")  # type: ignore
    label_smoothing: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False,
                                   description="a number from 0 up to (not including) 1")
    epoch_size: int | None = Field(None, ge=1, le=MAX_IMAGES,
                                   description=f"null or an integer from 1 to {MAX_IMAGES:,}")


class BaseRecipeFields(_Recipe):
    """A grid's `base`: the quick recipe with these fields changed."""

    model_config = ConfigDict(**_STRICT, title="a mapping of recipe fields (arch, epochs, lr, ...)")
    other_arch: str = Field("vgg_small", min_length=1, max_length=128, description="an architecture name")
    other_arch_kwargs: ArchOptions = Field(default_factory=ArchOptions, description="a mapping of "
                                           "architecture options")


class VariantFields(_Recipe):
    """One entry of a grid's `variants`."""

    model_config = ConfigDict(**_STRICT, title="a mapping of variant fields (name, epochs, lr, ...)")
    name: Annotated[str, AfterValidator(_name_rule)] = Field(description="a variant name of letters, digits, '_', '.', "
                                                             "'@', '+' or '-' (no '/' or '..')")
    group: str = Field("", min_length=1, max_length=128, description="a condition name of 1-128 characters")
    momentum: float = Field(0.9, ge=0, lt=1, allow_inf_nan=False, description="a number from 0 up to 1")
    nesterov: bool = Field(False, description="true or false")
    weight_decay: float = Field(5e-4, ge=0, lt=1, allow_inf_nan=False, description="a number from 0 up to 1")
    lr_milestones: list[Fraction] = Field(default_factory=list, max_length=100, description="a list of "
                                          "fractions of the epochs, each above 0 and below 1, such as [0.5, 0.75]")
    split_batch: bool = Field(False, description="true or false")
    init_seed: int = _int(0, MAX_SEED)
    order_seed: int = _int(0, MAX_SEED)
    train_part: Literal[TRAIN_PARTS] = Field("all", description=f"one of {', '.join(TRAIN_PARTS)}")  # type: ignore
    deterministic: bool = Field(True, description="true or false")


class GridFile(BaseModel):
    """A grid file: `base` and `conditions`, and/or `variants`."""

    model_config = ConfigDict(**_STRICT, title="a mapping with 'conditions' and/or 'variants' (and 'base')")
    base: BaseRecipeFields = Field(default_factory=BaseRecipeFields, description="a mapping of recipe fields "
                                   "(arch, arch_kwargs, epochs, batch_size, lr, ...)")
    conditions: dict[str, Instances] = Field(default_factory=dict, description="a mapping {condition: "
                                             f"instances}} with 0 to {MAX_INSTANCES} instances each")
    variants: list[VariantFields] = Field(default_factory=list, max_length=10_000, description="a list of "
                                          "mappings, one per variant (name, epochs, lr, ...)")


# --------------------------------------------------------------------------- an audit's settings
class AuditSettings(BaseModel):
    """`audit.running.engine.AuditConfig`: the settings of `ddd-audit run`, one field per flag."""

    model_config = ConfigDict(extra="forbid", strict=True, title="the settings of an audit")
    dataset: str = Field(min_length=1, description="a dataset name or PREFIX:PATH")
    variants: str = Field(description="a preset, a grid file or none")
    models: list[str] = Field(default_factory=list, description="a list of model specs")
    data_root: str | None = None
    epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS, description=f"an integer from 1 to {MAX_EPOCHS:,}")
    train_size: int | None = Field(None, ge=2, le=MAX_IMAGES, description=f"an integer from 2 to {MAX_IMAGES:,}")
    val_size: int | None = Field(None, ge=1, le=MAX_IMAGES, description=f"an integer from 1 to {MAX_IMAGES:,}")
    seed: int = _int(0, MAX_SEED)
    device: str = Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$", description="auto, cpu, cuda, cuda:N or mps")
    record_train: bool = False
    download: bool = True
    probe: bool = True
    label_map: str | None = None
    probe_train_size: int | None = Field(None, ge=10, le=MAX_IMAGES,
                                         description=f"an integer from 10 to {MAX_IMAGES:,}")
    cache_dir: str | None = None
    image_size: int | None = Field(None, ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE,
                                   description=f"an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} (pixels)")
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    depth: Literal["none", "base", "all"] = Field(description="none, base or all")
    depth_train: bool = False
    depth_reference: int | None = Field(None, ge=30, le=MAX_DEPTH_REFERENCE,
                                        description=f"an integer from 30 to {MAX_DEPTH_REFERENCE:,}")
    learnability: bool | None = None
    probs: bool = True
    depth_types: bool = False
    compile: bool = False
    resizer: Literal["pil", "torch"] = Field(description="pil or torch")
    relabel: str | None = None
    rsa_images: Annotated[int | None, AfterValidator(_rsa_rule)] = Field(
        None, ge=0, le=MAX_RSA_IMAGES, description=f"0 (none) or an integer from 3 to {MAX_RSA_IMAGES:,}")
    follow_symlinks: bool = False
    threads: int | None = Field(None, ge=1, le=MAX_THREADS, description=f"an integer from 1 to {MAX_THREADS}")


def as_flag(field: str) -> str:
    """An AuditConfig field as its flag of `ddd-audit run`: "val_size" -> "--val-size"."""
    return "--" + field.split(".")[0].replace("_", "-")


def check_audit_settings(settings: dict) -> None:
    """Raise InputError, naming the flag, when an audit's settings break their bounds."""
    check(AuditSettings, settings, "", field_name=as_flag)


#: The groups of an audit's settings, each one of `audit.running.config`'s sub-configs; the fields left out
#: (seed, device, threads) belong to the whole audit.
SETTINGS_GROUPS = {
    "data": ("dataset", "data_root", "train_size", "val_size", "cache_dir", "image_size", "dataset_options",
             "download", "relabel", "follow_symlinks"),
    "training": ("variants", "epochs", "record_train", "probs", "compile"),
    "pretrained": ("models", "probe", "label_map", "probe_train_size", "resizer"),
    "deeper": ("depth", "depth_train", "depth_reference", "learnability", "depth_types", "rsa_images"),
}
_GROUP_MODELS = {
    group: create_model(f"AuditSettings_{group}", __config__=AuditSettings.model_config,
                        **{name: (AuditSettings.model_fields[name].annotation, AuditSettings.model_fields[name])
                           for name in fields})
    for group, fields in SETTINGS_GROUPS.items()
}


def check_settings_group(group: str, settings: dict) -> None:
    """Raise InputError, naming the flag, when the settings of one group of SETTINGS_GROUPS break their
    bounds (the same bounds as `AuditSettings`)."""
    check(_GROUP_MODELS[group], settings, "", field_name=as_flag)
