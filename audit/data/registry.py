"""The dataset registry: every dataset name and every prefix source is a function registered here with
`@register_dataset`, and `load_dataset(spec)` looks `spec` up. An unknown name fails with one line that
lists what is registered. The built-in sources register when `audit.data` is imported; nothing here reads
a file.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audit.data.base import Dataset, DatasetError


@dataclass(frozen=True)
class RegisteredDataset:
    """One registered source: a dataset `name`, or a `prefix` such as "imagefolder:" followed by `argument`."""

    load: Callable[..., Dataset]
    name: str | None = None
    prefix: str | None = None
    argument: str = "PATH"

    @property
    def usage(self) -> str:
        """How it is named on the command line: "digits" or "imagefolder:PATH"."""
        return self.name if self.name is not None else f"{self.prefix}{self.argument}"

    def takes(self, option: str) -> bool:
        """Whether `load` takes the keyword `option` (or any keyword, through **options)."""
        params = inspect.signature(self.load).parameters.values()
        return any(p.kind is p.VAR_KEYWORD or (p.name == option and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
                   for p in params)


_NAMES: dict[str, RegisteredDataset] = {}
_PREFIXES: dict[str, RegisteredDataset] = {}


def register_dataset(name: str | None = None, *, prefix: str | None = None, argument: str = "PATH"):
    """Register a function as the dataset `name`, or as the source of every spec that starts with `prefix`.

    A name's function is called as `load(data_root=..., download=..., **options)`; a prefix's as
    `load(rest, **options)`, with `rest` the text after the prefix ("imagefolder:~/birds" -> "~/birds").
    Either returns a `Dataset`. `argument` is how `list_datasets` shows what follows a prefix. Registering
    a name again from another function fails (from the same function, as on a reload, it replaces).
    """
    if (name is None) == (prefix is None):
        raise ValueError("register_dataset takes a name or a prefix=, not both and not neither")
    if name is not None and (not isinstance(name, str) or not name or ":" in name):
        raise ValueError(f"a dataset name is a non-empty string without ':' (that marks a prefix), got {name!r}")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) < 2 or not prefix.endswith(":")):
        raise ValueError(f"a dataset prefix ends with ':', such as 'imagefolder:', got {prefix!r}")
    table, key = (_NAMES, name) if name is not None else (_PREFIXES, prefix)

    def add(load: Callable[..., Dataset]) -> Callable[..., Dataset]:
        old = table.get(key)
        if old is not None and _origin(old.load) != _origin(load):
            raise ValueError(f"dataset {key!r} is already registered by {'.'.join(_origin(old.load))}")
        table[key] = RegisteredDataset(load, name=name, prefix=prefix, argument=argument)
        return load

    return add


def _origin(load: Callable) -> tuple[str, str]:
    return getattr(load, "__module__", "?"), getattr(load, "__qualname__", repr(load))


def unregister_dataset(key: str) -> None:
    """Remove a registered name or prefix (for datasets added from outside, e.g. in a notebook or a test)."""
    _NAMES.pop(key, None)
    _PREFIXES.pop(key, None)


def registered_dataset(spec: str) -> RegisteredDataset:
    """The registration that reads `spec`: its name, else the longest registered prefix it starts with."""
    if spec in _NAMES:
        return _NAMES[spec]
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        if spec.startswith(prefix):
            return _PREFIXES[prefix]
    raise DatasetError(f"unknown dataset {spec!r}; valid: {', '.join(list_datasets())}")


def list_datasets() -> list[str]:
    """The registered names, then the prefixes with their argument ("imagefolder:PATH"), in registration order."""
    return [entry.usage for entry in (*_NAMES.values(), *_PREFIXES.values())]


def load_dataset(spec: str, *, data_root: str | Path | None = None, download: bool = True, **options) -> Dataset:
    """Load a dataset by name or PREFIX:PATH: one of `list_datasets()`.

    `imagefolder:PATH` reads an ImageFolder tree; `imagenet:PATH` an ImageNet validation tree (synset
    folders, or the flat official layout); `hf:PATH`, `parquet:GLOB` and `wds:PATTERN` tables and shards.
    `options` go to the source (`--dataset-option KEY=VALUE`); `data_root` and `download` to named datasets.
    """
    data_root = Path(data_root) if data_root is not None else None
    if data_root is not None and not data_root.exists():
        raise DatasetError(f"--data-root {data_root} does not exist")
    entry = registered_dataset(spec)
    if entry.name is not None:
        return entry.load(data_root=data_root, download=download, **options)
    return entry.load(spec[len(entry.prefix):], **options)
