"""The default audit end to end, with a breakdown by stage: data, training, pretrained inference, metrics, report.

Runs exactly what `make audit` runs (Fashion-MNIST, quick preset, efficientnet_lite0@48) into a
temporary directory (or --out DIR, kept) and times each stage from the outside and from the jobs' own
records; records the trained variants' accuracies too.
Run: .venv/bin/python benchmarks/bench_audit.py [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"


def main(argv=None) -> dict:
    from audit.report import build_report
    from audit.running.engine import AuditConfig, plan_audit, run_audit
    from audit.store import load

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="keep the audit in this (new) folder instead of a temporary one")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    plan = plan_audit(AuditConfig(dataset="fashion-mnist", variants="quick", models=["efficientnet_lite0@48"]))
    t_plan = time.perf_counter() - t0
    with contextlib.ExitStack() as stack:
        out = Path(args.out) if args.out else Path(stack.enter_context(tempfile.TemporaryDirectory())) / "audit"
        t1 = time.perf_counter()
        outcome = run_audit(plan, out)
        t_jobs = time.perf_counter() - t1
        t2 = time.perf_counter()
        audit = load(out)
        summary = build_report(audit)
        t_report = time.perf_counter() - t2
        variants = audit.models[audit.models["kind"] == "variant"]
        accuracy = dict(zip(variants["name"], variants["accuracy"].astype(float).round(4), strict=True))
        by_kind: dict[str, float] = {}
        capture = 0.0  # penultimate Gram matrices, outside the variants' training seconds
        for p in sorted((out / "jobs").glob("*.json")) + sorted((out / "aux").glob("*.json")):
            rec = json.loads(p.read_text())
            kind = rec.get("kind", "other")
            by_kind[kind] = by_kind.get(kind, 0.0) + float(rec.get("seconds", 0.0))
            if kind == "variant":
                capture += float((rec.get("representation") or {}).get("seconds", 0.0))
    total = time.perf_counter() - t0
    result = {
        "benchmark": "default audit end to end (make audit), by stage",
        "jobs": len(plan.jobs),
        "failed": sorted(outcome.failed),
        "seconds": {
            "data_and_plan": round(t_plan, 1),
            "training_variants": round(by_kind.get("variant", 0.0), 1),
            "pretrained_inference_and_probe": round(by_kind.get("pretrained", 0.0), 1),
            "other_jobs (learnability)": round(sum(v for k, v in by_kind.items() if k not in ("variant", "pretrained")),
                                               1),
            "representation_capture (in the variant jobs)": round(capture, 1),
            "writing_and_overhead": round(t_jobs - sum(by_kind.values()) - capture, 1),
            "metrics_and_report": round(t_report, 1),
            "rsa_and_cka (in the report)": round((summary.get("representation") or {}).get("seconds", 0.0), 1),
            "total": round(total, 1),
        },
        "goal_total_s": 300,
        "variant_accuracy": {
            "mean": round(sum(accuracy.values()) / max(len(accuracy), 1), 4),
            "min": min(accuracy.values(), default=None),
            "below_80_percent": sorted(name for name, acc in accuracy.items() if acc < 0.8),
            "by_variant": accuracy,
        },
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "audit.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
