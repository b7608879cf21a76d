"""The report's parts: each one registered with `@register_part`, all computed in order by `compute_report`.

A part is a function `compute(inputs, content)`: it reads the audit through `inputs` (a `ReportInputs`, with
the split already made) and adds its summary entries, tables, figures, per-image scores and notes to
`content` (the one `ReportContent` of a report). Registering it says where it comes in the report (`order`),
whether it changes with the split's tolerance, whether it is one of the deeper measures that
`compute_report(deep=False)` leaves out, and which lines it adds to the CLI's summary text:

    from audit.report import register_part

    @register_part("image_sizes", order=95, depends_on_tolerance=False,
                   summary_lines=lambda summary: [f"Mean pixel value {summary['image_sizes']:.1f}"])
    def image_sizes(inputs, content):
        content.summary["image_sizes"] = float(inputs.result.images_array().mean())

Parts are registered when their module is imported; `audit.report` imports the built-in ones. Nothing here
writes a file (`audit.report.build` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from audit.metrics import difficulty
from audit.metrics.difficulty import Split
from audit.store import REPORT_FIGURES, REPORT_MAPS, REPORT_TABLES, AuditResult


@dataclass
class ReportContent:
    """The report in memory, before anything is written.

    `outputs` maps each report file name to its content, in writing order: a DataFrame (written as CSV), an
    ndarray (.npy), or a function that draws a figure (.png; called only when the report is written).
    `scores` are the per-image columns that go into images.parquet; `notes` end up in the summary's "notes".
    """

    summary: dict
    outputs: dict[str, object] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def table(self, key: str, frame: pd.DataFrame) -> None:
        """A table under its key in `audit.store.REPORT_TABLES`."""
        self.outputs[REPORT_TABLES[key]] = frame

    def array(self, key: str, values: np.ndarray) -> None:
        """A decision map under its key in `audit.store.REPORT_MAPS`."""
        self.outputs[REPORT_MAPS[key]] = values

    def figure(self, key: str, draw: Callable) -> None:
        """A figure under its key in `audit.store.REPORT_FIGURES`, drawn by `draw()` when written."""
        self.outputs[REPORT_FIGURES[key]] = draw

    def tables(self) -> tuple[dict, dict]:
        """The tables and decision maps by their keys in REPORT_TABLES and REPORT_MAPS, as `read_report_tables`."""
        return ({key: self.outputs[name] for key, name in REPORT_TABLES.items() if name in self.outputs},
                {key: self.outputs[name] for key, name in REPORT_MAPS.items() if name in self.outputs})


@dataclass
class ReportInputs:
    """What every part reads: the audit, the report's settings, and the split (set by the "split" part)."""

    result: AuditResult
    tolerance: int = 1
    n_bootstrap: int = 200
    random_state: int = 0
    deep: bool = True
    split: Split | None = None

    @cached_property
    def names(self) -> list[str]:
        """The audit's finished models, in order."""
        return self.result.model_names

    @cached_property
    def correct(self) -> np.ndarray:
        """Final-epoch correctness, shape (n_images, n_models)."""
        return self.result.correct()

    @cached_property
    def epochs_of(self) -> dict[str, list[int]]:
        """Each model's recorded epochs."""
        return {m: self.result.epochs(m) for m in self.names}

    @cached_property
    def groups_of(self) -> dict[str, object]:
        """Each model's group (its condition) from the models table, None where absent."""
        return dict(zip(self.names, model_fields(self.result, self.names, "group"), strict=True))

    @property
    def categories(self) -> np.ndarray:
        """The split's categories, one per image."""
        return self.split.categories


@dataclass(frozen=True)
class ReportPart:
    """One registered part of the report (see the module's docstring)."""

    name: str
    compute: Callable[[ReportInputs, ReportContent], None]
    order: int
    depends_on_tolerance: bool = True
    deep: bool = False
    summary_lines: Callable[[dict], list[str]] | None = None


_PARTS: dict[str, ReportPart] = {}


def register_part(name: str, *, order: int, depends_on_tolerance: bool = True, deep: bool = False,
                  summary_lines: Callable[[dict], list[str]] | None = None):
    """Register `compute(inputs, content)` as the report part `name` (a decorator; returns the function).

    Registering a name again replaces the earlier part, so a module can be reloaded.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"a report part needs a name, got {name!r}")

    def register(compute: Callable) -> Callable:
        _PARTS[name] = ReportPart(name, compute, int(order), bool(depends_on_tolerance), bool(deep), summary_lines)
        return compute

    return register


def report_parts() -> list[ReportPart]:
    """The registered parts, in report order."""
    return sorted(_PARTS.values(), key=lambda p: (p.order, p.name))


def unregister_part(name: str) -> None:
    """Remove a registered part (for parts added from outside, e.g. in a notebook or a test)."""
    _PARTS.pop(name, None)


def compute_report(result: AuditResult, *, tolerance: int = 1, n_bootstrap: int = 200, random_state: int = 0,
                   deep: bool = True, parts=None) -> ReportContent:
    """Everything `build_report` writes, computed in memory by the registered parts in order.

    `deep=False` leaves out the deeper measures; `parts` (names) computes only those parts (the split is
    always made first, as every other part reads it).
    """
    difficulty.usable_tolerance(tolerance, 1)  # a bad tolerance fails before anything is read
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an int >= 0, got {n_bootstrap!r}")
    inputs = ReportInputs(result, int(tolerance), int(n_bootstrap), int(random_state), bool(deep))
    content = ReportContent(summary={})
    chosen = report_parts()
    if parts is not None:
        unknown = set(parts) - {p.name for p in chosen}
        if unknown:
            raise ValueError(f"unknown report parts {sorted(unknown)}; registered: {[p.name for p in chosen]}")
        chosen = [p for p in chosen if p.name in parts or p.name in ("models", "split")]
    for part in chosen:
        if part.deep and not deep:
            continue
        if part.name != "models" and not inputs.names:
            break  # nothing to report past the audit's facts
        part.compute(inputs, content)
    content.summary["notes"] = content.notes
    return content


def model_fields(result: AuditResult, models, fld: str) -> list:
    """One field of each model's row in the models table (None where absent), in the order of `models`."""
    if fld not in result.models.columns:
        return [None] * len(models)
    values = result.models.drop_duplicates("name").set_index("name")[fld].reindex(list(models))
    return [None if pd.isna(v) else v for v in values]


def num(value) -> float | None:
    """A float for summary.json, None for NaN."""
    value = float(value)
    return None if np.isnan(value) else value
