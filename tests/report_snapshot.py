"""Reports whose every number is pinned: small audits made without training, and their report as plain values.

`golden_audits(root)` writes three audits that together reach every report part that runs without torch:
a synthetic audit with dynamics and two scored models, and model-vs-human's own raw data (humans beside
models, conditions). `snapshot(path)` reads a written report back as JSON-able values: summary.json, every
table and decision map, the list of figures and the report's per-image columns. tests/data/report_golden.json
holds the snapshot taken when the report was restructured; `tests/test_report_golden.py` compares.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "report_golden.json"
MVH_RAW = ROOT / "tests" / "data" / "model-vs-human" / "raw-data"
#: images.parquet columns that a report writes (report's own, deeper measures, training-dynamics scores)
SCORE_COLUMNS = ("n_correct", "category", "tp_agreement", "consensus", "mean_true_prob", "accessibility",
                 "learned_epoch", "forgetting_events", "is_label_issue", "label_quality", "impossible_cause",
                 "cartography_confidence", "cartography_variability", "cartography_correctness", "el2n", "aum",
                 "first_learned_epoch")


def golden_audits(root: Path) -> dict[str, Path]:
    """Write the pinned audits under `root` (no report yet): {name: audit path}."""
    from audit.curation.importers import read_model_vs_human, write_imported_audit
    from audit.synthetic import make_synthetic_audit

    synthetic = make_synthetic_audit(root / "synthetic", n_images=400, n_models=8, n_epochs=6, n_pretrained=2,
                                     random_state=3)
    _scored(synthetic, "scored-a", 0.8, seed=1)
    _scored(synthetic, "scored-b", 0.55, seed=2)
    out = {"synthetic": synthetic}
    for name in ("colour", "cue-conflict"):
        out[f"mvh-{name}"] = write_imported_audit(read_model_vs_human(MVH_RAW / name), root / f"mvh-{name}")
    return out


def _scored(path: Path, name: str, correct_share: float, seed: int) -> None:
    """A model scored after the audit, stored through the store's writer (kind "scored")."""
    from audit.store import AuditDir, decisions_frame, load

    result = load(path)
    rng = np.random.default_rng(seed)
    labels = result.labels
    predicted = np.where(rng.random(len(labels)) < correct_share, labels, (labels + 1) % result.n_classes)
    probs = rng.random(len(labels)).astype(np.float32)
    store = AuditDir(path)
    store.write_job(name, {"kind": "scored", "scored_kind": "pretrained", "spec": f"{name}@fake",
                           "accuracy": float((predicted == labels).mean())},
                    decisions_frame([0], result.image_ids, predicted[None], probs[None], probs[None], labels))
    store.write_models_table(order=[j["name"] for j in result.manifest["jobs"]])


def snapshot(path: Path) -> dict:
    """A written report as plain values: {"summary", "text", "tables": {file: rows}, "figures", "images": {column:
    values}}; "text" is the summary as the CLI prints it."""
    from audit.report import format_summary

    report = path / "report"
    summary = json.loads((report / "summary.json").read_text())
    summary["files"] = {kind: sorted(names) for kind, names in summary.get("files", {}).items()}  # a listing
    tables = {}
    for f in sorted(report.iterdir()):
        if f.suffix == ".csv":
            tables[f.name] = _plain(pd.read_csv(f).to_dict(orient="list"))
        elif f.suffix == ".npy":
            tables[f.name] = _plain(np.load(f).tolist())
    figures = sorted(f.name for f in report.iterdir() if f.suffix == ".png")
    images = pd.read_parquet(path / "images.parquet")
    columns = {c: _plain(images[c].tolist()) for c in SCORE_COLUMNS if c in images.columns}
    text = format_summary(json.loads((report / "summary.json").read_text()))
    return {"summary": _plain(summary), "text": text.splitlines(), "tables": tables, "figures": figures, "images": columns}


def _plain(value):
    """JSON-able values with NaN as None, so that a snapshot survives a round trip through JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def differences(got, want, where: str = "", *, rtol: float = 1e-9) -> list[str]:
    """Where two snapshots differ (numbers to `rtol`), as readable lines; empty when they agree."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{where}/{k}: missing" for k in want if k not in got]
        out += [f"{where}/{k}: unexpected" for k in got if k not in want]
        for k in want:
            if k in got:
                out += differences(got[k], want[k], f"{where}/{k}", rtol=rtol)
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{where}: {len(got)} items, expected {len(want)}"]
        out = []
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            out += differences(g, w, f"{where}[{i}]", rtol=rtol)
            if len(out) > 20:
                break
        return out
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        return [] if abs(got - want) <= rtol * max(1.0, abs(want)) else [f"{where}: {got!r} != {want!r}"]
    return [] if got == want else [f"{where}: {got!r} != {want!r}"]
