"""Threads that fit the machine: a slice of the default audit, alone, beside two busy processes, and two at once.

The workload is the default audit's recipe on Fashion-MNIST (the `minimal` preset's four variants of the quick
network, a fixed training subset, no deeper measures), run as `ddd-audit run` in a fresh process. Each setting
is timed with two thread policies in the same run:

- `auto`: the default, `audit.running.executors.choose_threads` before each job (the cores other processes leave free);
- `fixed`: `--threads` = torch's own count (the physical cores), which is what every run used before.

"beside two busy processes" starts two pure-Python spinners for the run's whole length; "two at once" starts
two audits together and takes the slower. Ratios are against the same policy's time alone, so the goal (at most
2.5x, issue "first hour, round two") reads straight off the table.

    python benchmarks/bench_threads.py               # prints the table (about 6 minutes on 2 cores)
    python benchmarks/bench_threads.py --train-size 2000 --val-size 500   # a quicker look
    python benchmarks/bench_threads.py --default-audit --policies auto    # the whole default audit
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIN = "while True: pass"


def audit_command(out: Path, args, threads: int | None) -> list[str]:
    if args.default_audit:  # the whole default audit, as `make audit` runs it
        command = [sys.executable, "-m", "audit", "run", "--dataset", "fashion-mnist", "--variants", "quick",
                   "--models", "efficientnet_lite0@48", "--out", str(out)]
        return command + (["--threads", str(threads)] if threads else [])
    command = [sys.executable, "-m", "audit", "run", "--dataset", "fashion-mnist", "--variants", "minimal",
               "--train-size", str(args.train_size), "--val-size", str(args.val_size), "--epochs", str(args.epochs),
               "--depth", "none", "--no-learnability", "--rsa-images", "0", "--device", "cpu", "--out", str(out)]
    return command + (["--threads", str(threads)] if threads else [])


def run_audits(n: int, tmp: Path, args, threads: int | None, *, busy: int = 0) -> tuple[float, list[dict]]:
    """Start `n` audits together (beside `busy` spinners); the slowest one's seconds and each one's threads."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
    try:
        time.sleep(1.0 if busy else 0)  # the spinners are running before the audits choose their threads
        outs = [tmp / f"audit{i}-{time.monotonic_ns()}" for i in range(n)]
        t0 = time.perf_counter()
        procs = [subprocess.Popen(audit_command(out, args, threads), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for out in outs]
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"the audit failed:\n{err[-3000:]}")
        seconds = time.perf_counter() - t0
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    chosen = [json.loads((out / "manifest.json").read_text()).get("threads", {}) for out in outs]
    return seconds, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=6000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--policies", default="auto,fixed", help="auto, fixed or both (comma-separated)")
    parser.add_argument("--default-audit", action="store_true", help="time the whole default audit (make audit) "
                        "instead of the slice: about 25 minutes per policy on 2 cores")
    args = parser.parse_args()
    import torch

    fixed = torch.get_num_threads()
    workload = ("the default audit (make audit)" if args.default_audit else
                f"minimal preset, {args.train_size} training and {args.val_size} validation images, {args.epochs} epochs")
    print(f"cores allowed: {len(os.sched_getaffinity(0))}, torch's own threads: {fixed}; workload: {workload}",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for policy, threads in (("auto", None), ("fixed", fixed)):
            if policy not in args.policies.split(","):
                continue
            alone, chosen = run_audits(1, tmp, args, threads)
            busy, chosen_busy = run_audits(1, tmp, args, threads, busy=2)
            pair, chosen_pair = run_audits(2, tmp, args, threads)
            rows.append((policy, alone, busy, pair, chosen, chosen_busy, chosen_pair))
            print(f"{policy}: alone {alone:.1f} s, beside two busy {busy:.1f} s, two at once {pair:.1f} s", flush=True)
    print("\n| threads | alone | beside two busy processes | ratio | two audits at once (slower) | ratio | threads "
          "chosen (alone / busy / two) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for policy, alone, busy, pair, c1, c2, c3 in rows:
        chosen = " / ".join(",".join(str(c.get("per_job", "?")) for c in cs) for cs in (c1, c2, c3))
        print(f"| {policy} | {alone:.1f} s | {busy:.1f} s | {busy / alone:.2f}x | {pair:.1f} s | {pair / alone:.2f}x "
              f"| {chosen} |")


if __name__ == "__main__":
    main()
