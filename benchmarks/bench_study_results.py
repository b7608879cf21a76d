"""Benchmark of the study-results page: its first render for 50 observers x 200 main trials (AppTest).

Builds a study of 50 observers who each answer 200 main trials (kept under benchmarks/out/, reused), then
renders audit_app/study_results.py in a fresh process: "first" = the token entered 2 s after the page opened
(as a person pastes it; the page imports its libraries meanwhile) and the results drawn with nothing
cached, "warm" = a rerun. The peer,
in the same process, is the error-consistency loop the page used before (one pandas intersection and one
`error_consistency` per pair of observers) against today's matrix form. Goal: first render under 2 s.
Run: .venv/bin/python benchmarks/bench_study_results.py (results: stdout, benchmarks/out/bench_study_results.json)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_S = 2.0
#: Seconds between the page's first view and the token's entry (a person pasting it).
TYPING_S = 2.0


def build_study(root: Path, n_observers: int, n_trials: int) -> tuple[Path, str]:
    """A study whose observers answered every trial (about 80% right); reused when it exists."""
    import numpy as np

    from human_study.design import DesignConfig
    from human_study.folder import create_study, open_study_dir
    from tests.study_fixtures import make_study_audit

    token_file = root / "token"
    if token_file.exists():
        return root / "audit", token_file.read_text()
    audit = make_study_audit(root / "audit", n_trivial=n_trials + 50, n_impossible=n_trials + 50)
    made = create_study(audit, "bench", config=DesignConfig(n_trials=n_trials, n_practice=2, size=16, seed=1),
                        n_observers=n_observers)
    store, _ = open_study_dir(made.folder)
    rng = np.random.default_rng(0)
    with store:
        for code in made.observer_codes:
            observer = store.get_observer(made.study_id, code)
            session = store.start_session(observer.id)
            for trial in store.schedule(observer.id):
                right = rng.random() < 0.8
                choice = trial.correct_side if right else ("left" if trial.correct_side == "right" else "right")
                store.record_response(session.id, trial.trial_id, choice, rt_ms=float(rng.lognormal(7, 0.3)))
    token_file.write_text(made.admin_token)
    return root / "audit", made.admin_token


def time_page(studies: Path, token: str) -> dict:
    """First render with the token, then a rerun, in this (fresh) process."""
    from streamlit.testing.v1 import AppTest

    from human_study.folder import STUDY_DIRS_ENV

    os.environ[STUDY_DIRS_ENV] = str(studies)
    at = AppTest.from_file(str(ROOT / "audit_app" / "study_results.py"), default_timeout=300).run()
    time.sleep(TYPING_S)  # a person pastes the token; the page imports the analysis' libraries meanwhile
    t = time.perf_counter()
    at.text_input(key="results_token").input(token).run()
    first = time.perf_counter() - t
    if at.exception or not at.metric:
        raise RuntimeError(f"the results did not render: {at.exception}")
    t = time.perf_counter()
    at.run()
    return {"first_s": first, "warm_s": time.perf_counter() - t}


def time_consistency(studies: Path, token: str) -> dict:
    """Today's matrix form of the pairwise error consistency against the per-pair loop (the peer)."""
    from human_study.analysis import error_consistency, pairwise_error_consistency
    from human_study.folder import list_study_folders, open_study_dir

    folder = list_study_folders([studies])[0].folder
    store, study = open_study_dir(folder)
    with store:
        responses = store.admin(study.id, token).responses_frame()
    t = time.perf_counter()
    ours = pairwise_error_consistency(responses)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    main = responses[responses["kind"] == "main"]
    by_subj = {s: g.set_index("trial_id")["correct"].astype(bool) for s, g in main.groupby("subj", sort=True)}
    peer = []
    for (_, a), (_, b) in itertools.combinations(by_subj.items(), 2):
        common = a.index.intersection(b.index)
        peer.append(error_consistency(a.loc[common].to_numpy(), b.loc[common].to_numpy()).kappa)
    peer_s = time.perf_counter() - t
    diff = float(abs(ours["kappa"].to_numpy() - peer).max())
    return {"ours_s": ours_s, "peer_loop_s": peer_s, "speedup": peer_s / ours_s, "max_abs_diff": diff,
            "pairs": len(peer), "responses": len(responses)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--observers", type=int, default=50)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--keep", type=Path, default=ROOT / "benchmarks" / "out" / "study_results")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_study_results.json")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes for the page (best and all kept)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.keep / f"{args.observers}x{args.trials}"
    if args.child:
        print(json.dumps(time_page(root / "audit", (root / "token").read_text())))
        return {}
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    studies, token = build_study(root, args.observers, args.trials)
    print(f"study of {args.observers} observers x {args.trials} trials ready in {time.perf_counter() - t:.0f} s")
    runs = []
    for _ in range(args.repeats):
        proc = subprocess.run([sys.executable, __file__, "--child", "--observers", str(args.observers), "--trials",
                               str(args.trials), "--keep", str(args.keep)], capture_output=True, text=True,
                              cwd=ROOT, check=False)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first = [r["first_s"] for r in runs]
    result = {
        "benchmark": f"study results page: {args.observers} observers x {args.trials} trials (AppTest)",
        "observers": args.observers, "trials": args.trials, "goal_first_s": GOAL_S,
        "first_s": min(first), "first_runs_s": first, "warm_s": min(r["warm_s"] for r in runs),
        "consistency": time_consistency(studies, token),
    }
    print(f"first render {result['first_s']:.2f} s (runs {', '.join(f'{x:.2f}' for x in first)}; goal < {GOAL_S} s), "
          f"warm {result['warm_s']:.2f} s; error consistency {result['consistency']['speedup']:.0f}x the per-pair loop")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
