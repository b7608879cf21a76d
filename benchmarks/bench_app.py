"""Benchmark of the Streamlit report viewer: time to first render of each page at ImageNet scale.

Builds a synthetic audit (default 50,000 images x 30 models x 20 epochs, 1,000
classes) and its report. Each page runs through streamlit's AppTest in a fresh process:
"first" = its first render there (nothing read yet), "cold" = the best render with
every st.cache_data cleared, "warm" = a rerun. Goal: first render under 2 s.
Run: .venv/bin/python benchmarks/bench_app.py (results: stdout, benchmarks/out/bench_app.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = ("overview", "consistency", "dynamics", "classes", "images", "compare")
GOAL_S = 2.0


def _app(audit: Path):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "audit_app" / "app.py"), default_timeout=300)
    at.session_state["audit_path"] = str(audit)
    return at


def _check(at, page: str) -> None:
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].message}")
    if not at.title or at.title[0].value.lower() != page:
        raise RuntimeError(f"{page}: the page did not render (titles {[t.value for t in at.title]})")


def time_page(audit: Path, page: str, repeats: int) -> dict:
    """Render times of one page in this process (AppTest run time, script start to finish)."""
    import streamlit as st

    at = _app(audit)
    at.run()  # imports and the router, on the default page (which reads no decision file)
    runs = []
    for _ in range(repeats):
        st.cache_data.clear()
        st.cache_resource.clear()  # the Report itself is a cached resource
        at.switch_page(f"{page}.py")
        t = time.perf_counter()
        at.run()
        runs.append(time.perf_counter() - t)
        _check(at, page)
    t = time.perf_counter()
    at.run()
    warm = time.perf_counter() - t
    _check(at, page)
    return {"first_s": runs[0], "cold_s": min(runs), "cold_runs_s": runs, "warm_s": warm,
            "charts": len(at.get("vega_lite_chart"))}


def _in_child(audit: Path, what: str, repeats: int) -> dict:
    """Run one measurement in a fresh Python process, so nothing is cached from another page."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", what, "--audit", str(audit), "--repeats", str(repeats)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{what}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_inspect(audit: Path) -> dict:
    """Images page: pressing Inspect on the first image (every model's decision on it)."""
    import streamlit as st

    at = _app(audit)
    at.run()
    at.switch_page("images.py").run()
    st.cache_data.clear()
    st.cache_resource.clear()  # the Report itself is a cached resource
    at.run()
    button = next(b for b in at.button if b.key and b.key.startswith("images_inspect_"))
    t = time.perf_counter()
    button.click().run()
    cold = time.perf_counter() - t
    if at.exception or not any("models are right" in m.value for m in at.markdown):
        raise RuntimeError("inspect: the image dialog did not render")
    button = next(b for b in at.button if b.key and b.key.startswith("images_inspect_"))
    t = time.perf_counter()
    button.click().run()
    return {"cold_s": cold, "warm_s": time.perf_counter() - t}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2, help="cold runs per page (the best is reported)")
    parser.add_argument("--audit", type=Path, default=None, help="reuse (or keep) the synthetic audit here")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_app.json")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one measurement, in this fresh process
        sys.argv = ["app.py", "--runs", str(args.audit / "no-runs")]
        result = time_inspect(args.audit) if args.child == "inspect" else time_page(args.audit, args.child, args.repeats)
        print(json.dumps(result))
        return result

    from audit.report import build_report
    from audit.store import REPORT_DIR, SUMMARY_FILE, load
    from audit.synthetic import make_synthetic_audit

    with tempfile.TemporaryDirectory() as tmp:
        sys.argv = ["app.py", "--runs", str(Path(tmp) / "no-runs")]  # the app reads its options from argv
        audit = args.audit or Path(tmp) / "audit"
        size = {"n_images": args.images, "n_models": args.models, "n_epochs": args.epochs, "n_classes": args.classes}
        built = {}
        if not (audit / REPORT_DIR / SUMMARY_FILE).exists():
            print(f"writing a synthetic audit of {args.images:,} images x {args.models} models x "
                  f"{args.epochs} epochs ...", flush=True)
            t = time.perf_counter()
            make_synthetic_audit(audit, random_state=0, **size)
            built["synthetic_write_s"] = time.perf_counter() - t
            t = time.perf_counter()
            build_report(load(audit))
            built["report_s"] = time.perf_counter() - t
        pages = {}
        print(f"  {'page':<12} {'first':>7} {'cold':>7} {'warm':>7}   (seconds; goal: first < {GOAL_S:.0f} s)")
        for page in PAGES:
            pages[page] = r = _in_child(audit, page, args.repeats)
            flag = "" if r["first_s"] < GOAL_S else "  over the goal"
            print(f"  {page:<12} {r['first_s']:7.2f} {r['cold_s']:7.2f} {r['warm_s']:7.2f}{flag}", flush=True)
        inspect = _in_child(audit, "inspect", args.repeats)
        print(f"  {'inspect':<12} {inspect['cold_s']:7.2f} {'':>7} {inspect['warm_s']:7.2f}   "
              "(Images: press Inspect on an image)", flush=True)
    results = {
        "benchmark": "Report viewer: time to first render of each page (AppTest)",
        "audit": size,
        "method": "streamlit.testing AppTest, one fresh process per page: first = the page's first run "
        "(after the app's imports on the default page), cold = best of --repeats runs with st.cache_data "
        "cleared, warm = a rerun; inspect = pressing Inspect on the Images page, caches cleared",
        "goal_s": GOAL_S,
        "pages": pages,
        "inspect_image": inspect,
        "all_first_under_goal": all(r["first_s"] < GOAL_S for r in pages.values()),
        **built,
        "peak_rss_mb_largest_page_process": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return results


if __name__ == "__main__":
    main()
