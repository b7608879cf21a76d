"""The run state of an audit, judged from its manifest: complete, running, interrupted or failed."""

from __future__ import annotations

import os
import socket
import time

#: What a run is doing: all jobs done; its process still works; it stopped early (killed, crashed, Ctrl-C);
#: or it ended with failed jobs.
RUN_STATES = ("complete", "running", "interrupted", "failed")
RESUME_HINT = "rerun the same command to resume"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of a process (Linux), so a reused pid is not taken for the run."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def utc_now() -> str:
    """The time as the manifest records it: ISO 8601, UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def current_process() -> dict:
    """The running process as the manifest records it: host, pid, start time."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_start": _process_start(os.getpid()),
        "started_at": utc_now(),
    }


def process_alive(process: dict) -> bool | None:
    """Whether a recorded process still runs; None when it ran on another host (cannot tell)."""
    if process.get("host") != socket.gethostname():
        return None
    pid = int(process.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    recorded = process.get("process_start")
    return recorded is None or _process_start(pid) == recorded


def run_state(manifest: dict) -> str:
    """One of RUN_STATES for a manifest, judged from its jobs and its recorded process."""
    jobs = manifest.get("jobs", [])
    if jobs and all(j.get("status") == "done" for j in jobs):
        return "complete"
    if manifest.get("finished_at"):
        return "failed" if any(j.get("status") == "failed" for j in jobs) else "interrupted"
    process = manifest.get("process")
    if not process:
        return "running"  # written before runs recorded their process
    return "interrupted" if process_alive(process) is False else "running"


def describe_run_state(manifest: dict) -> str:
    """The run state in words, with what to do about it."""
    state = run_state(manifest)
    jobs = manifest.get("jobs", [])
    done = sum(j.get("status") == "done" for j in jobs)
    if state == "complete":
        return "complete"
    if state == "running":
        host = (manifest.get("process") or {}).get("host")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        return f"running{where}, {done}/{len(jobs)} jobs done"
    if state == "failed":
        failed = sum(j.get("status") == "failed" for j in jobs)
        return f"failed: {failed} of {len(jobs)} jobs failed, {done} done; fix the cause and {RESUME_HINT}"
    return f"interrupted, {done}/{len(jobs)} jobs done; {RESUME_HINT}"
