"""Curate what an audit found: pick images (a DDD category, a difficulty-balanced draw, the label issues,
or a query over the images table) and export them as a benchmark, with a dataset card beside them.

`select_images(result, subset)` picks; `export_selection(result, selection, out)` writes one folder
(CSV, Parquet, an ImageFolder tree or a list of paths, plus card.json and README.md), built under a
temporary name beside `out` and renamed when complete. Reads the audit through `audit.store` and the
report's per-image scores; runs no model, prints nothing, imports no Streamlit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from audit.metrics.agreement import majority_vote
from audit.metrics.difficulty import CATEGORIES, Split
from audit.report import count_noun, report_state
from audit.store import AuditError, AuditResult, utc_now
from audit.store.files import to_people_csv

SUBSETS = ("trivial", "inconclusive", "impossible", "balanced", "label-issues")
FORMATS = ("csv", "parquet", "imagefolder", "list")
CARD_FORMAT = "ddd-audit-export/1"
CARD_FILE = "card.json"
#: What the card says about the CSV files (audit.store.files.spreadsheet_safe).
CSV_NOTE = ("In the CSV files, a text cell that begins with =, +, -, @, a tab or a carriage return and is not a "
            "number starts with an added ' so that a spreadsheet shows it as text instead of running it as a "
            "formula (OWASP, CSV injection). The Parquet files keep every value verbatim, as audit.load() does; "
            "`ddd-audit run --relabel` reads relabel.csv back without the added '.")
#: The label review list's columns (`--subset label-issues`), in order.
REVIEW_COLUMNS = ("image_id", "image", "given_label", "suggested_label", "suggested_votes", "label_quality",
                  "n_correct", "category", "impossible_cause")


@dataclass
class Selection:
    """Images picked from an audit, and how.

    Attributes
    ----------
    subset : str, a name of SUBSETS or the query as given
    rule : str, the rule in words (it goes into the card)
    images : DataFrame, the picked rows of the images table, with `category` at the tolerance used
    tolerance, tolerance_used : int, as asked and as the split can use it with this many models
    seed : int or None, the seed of a balanced draw
    bins : DataFrame or None, a balanced draw's bins: bin, n_available, n_drawn
    notes : list of str, what could not be done as asked (e.g. a class too small to balance)
    """

    subset: str
    rule: str
    images: pd.DataFrame
    tolerance: int
    tolerance_used: int
    seed: int | None = None
    bins: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- selecting
def images_table(result: AuditResult, *, tolerance: int = 1) -> tuple[pd.DataFrame, int, list[str]]:
    """The images table with `category` recomputed at `tolerance`, the tolerance used, and notes.

    Raises AuditError when the per-image scores are missing or older than the finished models.
    """
    if not result.n_models:
        raise AuditError(f"{result.path} has no finished model yet; nothing to export")
    state = report_state(result, result.summary())
    if "n_correct" not in result.images.columns or state == "stale":
        raise AuditError(f"the per-image scores of {result.path} are missing or older than its finished models; "
                         f"build them with `ddd-audit report {result.path}`")
    m = result.n_models
    split = Split.from_counts(result.images["n_correct"].to_numpy(), m, tolerance)
    t = split.tolerance_used
    notes = [split.note] if split.clipped else []
    frame = result.images.copy()
    frame["category"] = split.categories
    if not result.is_complete:
        notes.append(f"the audit is {result.state_text}; the split uses its {count_noun(m, 'finished model')}")
    return frame, t, notes


def select_images(result: AuditResult, subset: str, *, tolerance: int = 1, bins: str | int = "n_correct",
                  per_bin: int | None = None, seed: int = 0) -> Selection:
    """Pick the images of `subset` from an audit.

    Parameters
    ----------
    result : AuditResult
    subset : str
        "trivial", "inconclusive", "impossible" (at `tolerance`, as the report splits), "balanced" (equal
        numbers per difficulty bin, classes balanced within each bin where the data allow), "label-issues"
        (the images cleanlab flags, lowest label quality first, with the label review columns), or a pandas
        query over the images table, e.g. "n_correct >= 3 and label_quality < 0.2".
    tolerance : int, default 1
        t of the split: trivial when n_correct >= M - t, impossible when n_correct <= t.
    bins : "n_correct" or int, default "n_correct"
        Balanced only: one bin per n_correct value 0..M, or this many equal-width bins of the image's mean
        accuracy n_correct / M over [0, 1].
    per_bin : int, optional
        Balanced only: images per bin; default and at most the size of the smallest non-empty bin.
    seed : int, default 0
        Balanced only: the seed of the draw.

    Returns
    -------
    selection : Selection
        Raises AuditError for an unknown subset, a query that does not parse or names an unknown column,
        and an empty selection; each message lists the columns a query may use.
    """
    frame, t, notes = images_table(result, tolerance=tolerance)
    m = result.n_models
    sel = Selection(subset=subset, rule="", images=frame, tolerance=tolerance, tolerance_used=t, notes=notes)
    if subset in CATEGORIES:
        sel.images = frame[frame["category"] == subset]
        sel.rule = {"trivial": f"trivial: n_correct >= {m - t} of {m} models (tolerance {t})",
                    "impossible": f"impossible: n_correct <= {t} of {m} models (tolerance {t})",
                    "inconclusive": f"inconclusive: {t} < n_correct < {m - t} of {m} models (tolerance {t})"}[subset]
    elif subset == "balanced":
        _balanced(sel, result, bins, per_bin, seed)
    elif subset == "label-issues":
        sel.images = label_review(result, frame)
        sel.rule = ("label issues: the images cleanlab's confident learning flags as likely mislabelled "
                    "(is_label_issue), from the ensemble's held-out probabilities; lowest label quality first; "
                    "the suggested label is the models' majority prediction")
    else:
        sel.images = frame[_query(frame, subset)]
        sel.rule = f"query over the images table: {subset}"
    if sel.images.empty:
        raise AuditError(f"--subset {subset!r} selects no image of {result.path} (tolerance {t}); nothing written")
    if subset != "label-issues":
        sel.images = sel.images.sort_values("image_id", kind="stable")
    sel.images = sel.images.reset_index(drop=True)
    return sel


def _query(frame: pd.DataFrame, expr: str) -> np.ndarray:
    """The rows a pandas query keeps; a bare name that is no column is an unknown subset."""
    columns = ", ".join(frame.columns)
    if re.fullmatch(r"[A-Za-z_][\w-]*", expr.strip()) and expr.strip() not in frame.columns:
        raise AuditError(f"unknown subset {expr!r}; give one of {', '.join(SUBSETS)}, or a query over the columns "
                         f"{columns}")
    try:
        mask = frame.eval(expr, engine="python")
    except (SyntaxError, NameError, TypeError, ValueError, KeyError, AttributeError) as exc:
        what = ("names an unknown column" if isinstance(exc, NameError)
                else "does not parse" if isinstance(exc, SyntaxError) else "cannot be evaluated")
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditError(f"--subset {expr!r} {what} ({first}); the columns are {columns}") from None
    if isinstance(mask, pd.Series) and mask.dtype == object and mask.map(lambda v: isinstance(v, bool)).all():
        mask = mask.astype(bool)
    if not isinstance(mask, pd.Series) or not pd.api.types.is_bool_dtype(mask) or len(mask) != len(frame):
        raise AuditError(f"--subset {expr!r} is not a condition on each image (write e.g. \"n_correct >= 3\"); "
                         f"the columns are {columns}")
    return mask.fillna(False).to_numpy(bool)


def parse_bins(bins: str | int) -> str | int:
    """"n_correct", or a number of mean-accuracy bins >= 2 (as `--bins` gives it)."""
    text = str(bins).strip()
    if text == "n_correct":
        return text
    if text.isdigit() and int(text) >= 2:
        return int(text)
    raise AuditError(f"--bins takes n_correct (one bin per count) or a number >= 2 of mean-accuracy bins, got {bins!r}")


def _balanced(sel: Selection, result: AuditResult, bins, per_bin: int | None, seed: int) -> None:
    """Equal numbers per difficulty bin; within a bin, classes as equal as their images allow (seeded)."""
    frame, m = sel.images, result.n_models
    bins = parse_bins(bins)
    counts = frame["n_correct"].to_numpy(np.int64)
    if bins == "n_correct":
        which = counts
        names = [f"n_correct={k}" for k in range(m + 1)]
        what = f"n_correct 0..{m}, one bin per count"
    else:
        which = np.minimum(counts * bins // m, bins - 1)  # [k/N, (k+1)/N) of n_correct / M, the last one closed
        names = [f"accuracy [{k / bins:.2f}, {(k + 1) / bins:.2f}{']' if k == bins - 1 else ')'}"
                 for k in range(bins)]
        what = f"the mean accuracy n_correct / {m} in {bins} equal-width bins"
    available = np.bincount(which, minlength=len(names))
    filled = np.flatnonzero(available)
    smallest = int(available[filled].min())
    if per_bin is None:
        per_bin = smallest
    elif per_bin > smallest:
        sel.notes.append(f"--per-bin {per_bin} is more than the smallest bin ({names[filled[available[filled].argmin()]]}, "
                         f"{smallest} images) holds: {smallest} per bin")
        per_bin = smallest
    empty = [names[k] for k in np.flatnonzero(available == 0)]
    if empty:
        sel.notes.append(f"no image in {', '.join(empty)}: {'that bin is' if len(empty) == 1 else 'those bins are'} "
                         "left out")
    rng = np.random.default_rng(seed)
    labels = frame["label"].to_numpy(np.int64)
    picked, short = [], []
    for k in filled:
        rows = np.flatnonzero(which == k)
        quota = _class_quota({c: np.count_nonzero(labels[rows] == c) for c in range(result.n_classes)}, per_bin, rng)
        equal = per_bin // result.n_classes
        low = [str(result.class_names[c]) for c, n in quota.items() if n < equal]
        if low:
            short.append(f"{names[k]}: {'class' if len(low) == 1 else 'classes'} "
                         f"{', '.join(low[:6])}{', ...' if len(low) > 6 else ''}")
        for c, n in quota.items():
            if n:
                picked.append(rng.choice(rows[labels[rows] == c], size=n, replace=False))
    if short:
        sel.notes.append("classes could not be balanced where they had fewer images than their equal share "
                         f"({per_bin} // {result.n_classes} = {per_bin // result.n_classes}; the other classes fill "
                         f"in): {'; '.join(short)}")
    sel.images = frame.iloc[np.sort(np.concatenate(picked))]
    sel.seed = int(seed)
    sel.bins = pd.DataFrame({"bin": names, "n_available": available,
                             "n_drawn": [per_bin if available[k] else 0 for k in range(len(names))]})
    sel.rule = (f"balanced: {per_bin} images from each of the {len(filled)} non-empty bins ({what}), "
                f"classes as equal as their images allow within each bin (seed {seed})")


def _class_quota(available: dict[int, int], k: int, rng: np.random.Generator) -> dict[int, int]:
    """Split k draws over the classes as equally as `available` allows (water-filling; ties in a seeded order)."""
    order = sorted(rng.permutation(list(available)), key=lambda c: available[c])
    quota, left = {}, k
    for i, c in enumerate(order):
        take = min(available[c], left // (len(order) - i))
        quota[int(c)] = take
        left -= take
    return dict(sorted(quota.items()))


def label_review(result: AuditResult, frame: pd.DataFrame) -> pd.DataFrame:
    """The flagged images as a label review list (REVIEW_COLUMNS), lowest label quality first.

    `image` is what a relabel file names: the image_key of an imported audit, else the recorded source.
    """
    if "is_label_issue" not in frame.columns or "label_quality" not in frame.columns:
        raise AuditError(f"{result.path} has no label issues: they need the models' stored probabilities "
                         "(probs/, which `ddd-audit run` keeps unless --no-probs); the columns are "
                         f"{', '.join(frame.columns)}")
    names = np.asarray(result.class_names, dtype=object)
    suggested, votes = majority_vote(result.predicted(), result.n_classes)
    review = pd.DataFrame({
        "image_id": frame["image_id"].to_numpy(),
        "image": frame["image_key"] if "image_key" in frame.columns else frame["source"],
        "given_label": names[frame["label"].to_numpy(np.int64)],
        "suggested_label": names[suggested],
        "suggested_votes": [f"{v}/{result.n_models}" for v in votes],
        "label_quality": frame["label_quality"].to_numpy(float),
        "n_correct": frame["n_correct"].to_numpy(np.int64),
        "category": frame["category"].to_numpy(),
        "impossible_cause": frame["impossible_cause"].fillna("").to_numpy() if "impossible_cause" in frame.columns
        else "",
    })
    flagged = frame["is_label_issue"].fillna(False).astype(bool).to_numpy()
    return review[flagged].sort_values(["label_quality", "image_id"], kind="stable")


# --------------------------------------------------------------------------- writing
def export_selection(result: AuditResult, selection: Selection, out: str | Path, *, fmt: str = "csv",
                     copy: bool = False, force: bool = False, command: str | None = None) -> dict:
    """Write `selection` to the folder `out` as `fmt`, with card.json and README.md, and return the card.

    Formats: "csv" or "parquet" (the image rows with every score; the label review list for label issues),
    "imagefolder" (out/<class>/<file>, symbolic links to the audit's files, or copies with `copy`; array
    datasets are written as PNG files), "list" (images.txt, one absolute file path per line). A label
    review also gets relabel.csv, a template to fill in for `ddd-audit run --relabel`.

    The folder is built beside `out` and renamed into place when complete. An `out` that exists and is
    not empty is refused unless `force`, which replaces only an earlier export (a folder with card.json).
    Raises AuditError naming the first image file that has moved, before anything is written.
    """
    if fmt not in FORMATS:
        raise AuditError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if selection.images.empty:
        raise AuditError(f"--subset {selection.subset} selects no image; nothing written")
    out = Path(out)
    _check_target(result, out, force)
    rows = selection.images
    # array datasets, and table or shard sources (hf:, parquet:, wds:), are written as PNG files
    arrays = result.has_image_array or bool(result.manifest.get("dataset", {}).get("reader"))
    files = None if arrays or fmt in ("csv", "parquet") else _image_files(result, rows["image_id"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        written = _write(result, selection, tmp, out.resolve(), fmt, copy, arrays, files)
        card = _card(result, selection, fmt, copy and fmt == "imagefolder" and not arrays, command, written)
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, default=_json_default) + "\n")
        (tmp / "README.md").write_text(card_markdown(card))
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return card


def _check_target(result: AuditResult, out: Path, force: bool) -> None:
    if out.is_file() or (out.exists() and not out.is_dir()):
        raise AuditError(f"--out {out} is a file; give a folder to write the export into")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        raise AuditError(f"--out {out} exists and is not empty; choose another folder or pass --force to replace it")
    if not (out / CARD_FILE).is_file():
        raise AuditError(f"--out {out} holds files that no export wrote (no {CARD_FILE}); --force replaces only an "
                         "earlier export: choose another folder")
    target = out.resolve()
    dataset_root = result.manifest.get("dataset", {}).get("root")
    for inside, what in ((result.path.resolve(), "the audit"), (Path(dataset_root).resolve() if dataset_root else None,
                                                               "the audit's image files")):
        if inside is not None and (inside == target or inside.is_relative_to(target)):
            raise AuditError(f"--out {out} holds {what}; choose another folder")


def _image_files(result: AuditResult, image_ids) -> list[Path]:
    """Each image's file, checked to exist; the first that is missing is named in an AuditError."""
    files = []
    for i in image_ids:
        path = result.image_path(int(i))
        if not path.is_file():
            raise AuditError(f"image {int(i)}'s file {path} is missing (moved or deleted since the audit); put the "
                             "images back where the audit found them, or export --format csv, which needs no file")
        files.append(path)
    return files


def _folder_names(class_names: list[str]) -> list[str]:
    """A folder name per class: the class name with path separators replaced; unique."""
    out, seen = [], set()
    for i, name in enumerate(class_names):
        safe = re.sub(r"[/\\\x00]", "-", str(name)).strip()
        if safe in ("", ".", "..") or safe.startswith(".") or safe in seen:
            safe = f"{safe.lstrip('.')}_{i}" if safe.strip(".") else f"class_{i}"
        seen.add(safe)
        out.append(safe)
    return out


def _write(result, selection, tmp: Path, final: Path, fmt: str, copy: bool, arrays: bool, files) -> dict:
    """Write the format's files into `tmp` (paths inside point to `final`); return {what: file}."""
    rows = selection.images
    review = selection.subset == "label-issues"
    stem = "label_issues" if review else "images"
    written = {}
    if review:
        template = pd.DataFrame({"image": rows["image"], "new_label": ""})
        to_people_csv(template, tmp / "relabel.csv")
        written["relabel_template"] = "relabel.csv"
    if fmt in ("csv", "parquet"):
        name = f"{stem}.{fmt}"
        to_people_csv(rows, tmp / name) if fmt == "csv" else rows.to_parquet(tmp / name, index=False)
        written["table"] = name
        return written
    folders = _folder_names(result.class_names)
    labels = result.images["label"].to_numpy(np.int64)
    width = len(str(result.n_images - 1))
    base = tmp / "images" if fmt == "list" else tmp
    placed = []
    ids = rows["image_id"].to_numpy(np.int64) if arrays or fmt == "imagefolder" else []
    for k, image_id in enumerate(ids):
        folder = base / folders[labels[image_id]]
        folder.mkdir(parents=True, exist_ok=True)
        if arrays:
            target = folder / f"{image_id:0{width}d}.png"
            result.image(image_id).save(target, format="PNG")
        elif copy:
            target = folder / f"{image_id:0{width}d}_{files[k].name}"
            shutil.copy2(files[k], target)
        else:
            target = folder / f"{image_id:0{width}d}_{files[k].name}"
            os.symlink(files[k], target)
        placed.append(target)
    if fmt == "list":
        paths = [str(final / p.relative_to(tmp)) for p in placed] if arrays else [str(f) for f in files]
        (tmp / "images.txt").write_text("\n".join(paths) + "\n")
        written["list"] = "images.txt"
        if arrays:
            written["images"] = "images/<class>/<image_id>.png"
    else:
        index = rows.assign(file=[str(p.relative_to(tmp)) for p in placed])
        to_people_csv(index, tmp / "index.csv")
        written["index"] = "index.csv"
        written["images"] = "<class>/<image_id>.png" if arrays else "<class>/<image_id>_<file name>"
        written["folders"] = {f: {"class_name": result.class_names[c], "label": c}
                              for c, f in enumerate(folders) if (tmp / f).is_dir()}
    return written


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder onto `out`; an earlier export there is moved aside first, then removed."""
    old = None
    if out.exists():
        if any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=".tmp", dir=out.parent))
            os.replace(out, old / "previous")
        else:
            out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- the card
def _card(result: AuditResult, selection: Selection, fmt: str, copy: bool, command: str | None,
          written: dict) -> dict:
    rows = selection.images
    summary = result.summary() or {}
    accuracy = {m.get("name"): m.get("accuracy") for m in summary.get("models", [])}
    models = [{"name": m, "kind": _field(result, m, "kind"), "group": _field(result, m, "group"),
               "accuracy": accuracy.get(m)} for m in result.model_names]
    dataset = result.manifest.get("dataset", {})
    labels = rows["given_label"] if "given_label" in rows.columns else rows["class_name"]
    by_class = labels.astype(str).value_counts()
    card = {
        "format": CARD_FORMAT,
        "created_at": utc_now(),
        "subset": selection.subset,
        "rule": selection.rule,
        "n_images": int(len(rows)),
        "export_format": fmt,
        "copied": bool(copy),
        "source_audit": {
            "path": str(result.path.resolve()),
            "dataset": dataset.get("name"),
            "fingerprint": dataset.get("fingerprint"),
            "n_images": int(result.n_images),
            "n_models": int(result.n_models),
            "state": result.state,
            "relabel": result.manifest.get("relabel"),
        },
        "models": models,
        "tolerance": {"asked": int(selection.tolerance), "used": int(selection.tolerance_used)},
        "seed": selection.seed,
        "counts": {
            "by_class": {str(c): int(by_class.get(str(c), 0)) for c in result.class_names},
            "by_category": {c: int((rows["category"] == c).sum()) for c in CATEGORIES},
        },
        "notes": list(selection.notes),
        "csv_cells": CSV_NOTE,
        "command": command,
        "files": written,
    }
    if selection.bins is not None:
        card["counts"]["by_bin"] = dict(zip(selection.bins["bin"], selection.bins["n_drawn"].astype(int), strict=True))
    return card


def card_markdown(card: dict) -> str:
    """The card as the README.md a colleague reads first."""
    src = card["source_audit"]
    lines = [
        f"# {card['subset']}: {count_noun(card['n_images'], 'image')} from the audit of {src['dataset']}",
        "",
        f"Exported by ddd-audit on {card['created_at']} as `{card['export_format']}`"
        f"{' (copies of the files)' if card['copied'] else ''}.",
        "",
        f"- **Rule**: {card['rule']}",
        f"- **Source audit**: `{src['path']}` (dataset fingerprint `{src['fingerprint']}`, "
        f"{count_noun(src['n_images'], 'image')}, {count_noun(src['n_models'], 'model')}, {src['state']})",
        f"- **Tolerance**: {card['tolerance']['used']}" + (f" (asked {card['tolerance']['asked']})"
                                                          if card['tolerance']['used'] != card['tolerance']['asked']
                                                          else ""),
        f"- **Seed**: {card['seed'] if card['seed'] is not None else 'none (no random draw)'}",
    ]
    if src.get("relabel"):
        r = src["relabel"]
        lines.append(f"- **Relabelled**: {r['n_changed']} images from `{r['file']}` (sha256 `{r['sha256'][:16]}...`)")
    if card.get("command"):
        lines.append(f"- **Made with**: `{card['command']}`")
    lines += ["", "## Counts", "", "| category | images |", "| --- | ---: |"]
    lines += [f"| {c} | {n} |" for c, n in card["counts"]["by_category"].items()]
    if "by_bin" in card["counts"]:
        lines += ["", "| bin | images |", "| --- | ---: |"]
        lines += [f"| {b} | {n} |" for b, n in card["counts"]["by_bin"].items()]
    lines += ["", "| class | images |", "| --- | ---: |"]
    lines += [f"| {c} | {n} |" for c, n in card["counts"]["by_class"].items()]
    lines += ["", "## Models of the audit", "", "| model | kind | group | accuracy |", "| --- | --- | --- | ---: |"]
    lines += [f"| {m['name']} | {m['kind'] or ''} | {m['group'] or ''} | {_percent(m['accuracy'])} |"
              for m in card["models"]]
    if card["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in card["notes"]]
    lines += ["", "## Opening the CSV files", "", CSV_NOTE]
    if card["export_format"] == "imagefolder":
        lines += ["", "## Loading it", "", "```python",
                  "from torchvision.datasets import ImageFolder",
                  "data = ImageFolder(\"<this folder>\")  # classes in sorted folder order; card.json maps each "
                  "folder to the audit's label", "```"]
    return "\n".join(lines) + "\n"


def _percent(value) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def _field(result: AuditResult, model: str, name: str):
    if name not in result.models.columns:
        return None
    value = result.models.loc[result.models["name"] == model, name].iloc[0]
    return None if pd.isna(value) else value


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")
