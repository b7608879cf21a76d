"""The default audit end to end, with a breakdown by stage: data, training, pretrained inference, metrics, report.

Runs exactly what `make audit` runs (Fashion-MNIST, quick preset, efficientnet_lite0@48) into a
temporary directory and times each stage from the outside and from the jobs' own records.
Run: .venv/bin/python benchmarks/bench_audit.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"


def main() -> dict:
    from audit.engine import AuditConfig, plan_audit, run_audit
    from audit.report import build_report
    from audit.store import load

    t0 = time.perf_counter()
    plan = plan_audit(AuditConfig(dataset="fashion-mnist", variants="quick", models=["efficientnet_lite0@48"]))
    t_plan = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit"
        t1 = time.perf_counter()
        outcome = run_audit(plan, out)
        t_jobs = time.perf_counter() - t1
        t2 = time.perf_counter()
        summary = build_report(load(out))
        t_report = time.perf_counter() - t2
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
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "audit.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
