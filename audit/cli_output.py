"""What the `ddd-audit` command line prints: the consoles, the progress bars of a run, the plan of a dry
run, the summary after a run or import, and the line that says how to open the report."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

# soft_wrap: long lines stay whole when the output is a file or a pipe (no breaks mid-figure at 80 columns)
_WIDTH = None if sys.stdout.isatty() else 200  # tables keep whole names in a file or pipe
console = Console(stderr=True, soft_wrap=True)
stdout = Console(soft_wrap=True, width=_WIDTH)


def command_name() -> str:
    """How to call ddd-audit here: its name when this environment's script is on PATH, else its path."""
    script = Path(sys.executable).parent / "ddd-audit"
    found = shutil.which("ddd-audit")
    if found and Path(found).resolve() == script.resolve():
        return "ddd-audit"
    return str(script) if script.exists() else f"{sys.executable} -m audit"


class CliProgress:
    """A `RunListener` that draws Rich progress bars: one bar for the run, one per running job."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.overall = None
        self.running: dict[str, object] = {}

    def plan(self, jobs, todo):
        self.overall = self.progress.add_task("jobs", total=len(todo))

    def job_started(self, name, index, total):
        self.running[name] = self.progress.add_task(f"  {name}", total=None)

    def job_progress(self, name, stage, done, total):
        task = self.running.get(name)
        if task is not None:
            self.progress.update(task, description=f"  {name} ({stage})", completed=done, total=total)

    def job_finished(self, name, status, seconds, error=None):
        task = self.running.pop(name, None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.advance(self.overall)
        mark = "[green]done[/]" if status == "done" else f"[red]{status}[/]"
        first = (error or "").splitlines()[0] if error else ""
        first = first if len(first) <= 160 else first[:157] + "..."  # the whole line is in the summary
        self.progress.console.print(f"{name}: {mark} in {seconds:.1f} s {first}".rstrip(), highlight=False)


def exit_on_failures(summary: dict, audit_dir: Path) -> None:
    """Exit 1 with one line when jobs failed (each failure is listed in the summary above)."""
    facts = summary.get("audit", {})
    failed = facts.get("failed") or {}
    if failed:
        console.print(f"[red]error:[/] failed jobs: {len(failed)} of {facts.get('jobs_total', 0)} "
                      f"(full errors in {audit_dir / 'failures'}); fix the cause and rerun the same command "
                      "to resume", highlight=False)
        raise typer.Exit(1)


def print_plan(plan, audit_dir: Path):
    from rich.table import Table

    from audit.store import AuditDir

    store = AuditDir(audit_dir)
    done = set(store.finished_jobs() + store.finished_aux_jobs()) if store.exists() else set()
    table = Table(title=f"{count_text(len(plan.jobs), 'job')} on {plan.dataset.name} "
                        f"({count_text(len(plan.dataset.val), 'validation image')})")
    for col in ("job", "kind", "group", "epochs", "status", "estimate"):
        table.add_column(col)
    total = 0.0
    for job in plan.jobs:
        d = job.describe()
        sec = 0.0 if job.name in done else job.estimate_seconds(plan.context)
        total += sec
        spec = d.get("spec")
        epochs = spec.get("epochs", "-") if isinstance(spec, dict) else d.get("epochs", "-")  # pretrained: a name
        table.add_row(job.name, d["kind"], d.get("group", ""), str(epochs),
                      "done" if job.name in done else "to run", f"{sec:.0f} s")
    stdout.print(table)
    stdout.print(f"estimated cost: {total / 60:.1f} min on {plan.context.torch_device()}")


def count_text(n: int, noun: str) -> str:
    from audit.report import count_noun

    return count_noun(n, noun)


def report_and_print(path: Path):
    from audit import load
    from audit.report import build_report, format_summary

    with console.status("computing the report"):
        result = load(path)
        summary = build_report(result)
    stdout.print(format_summary(summary), highlight=False)
    stdout.print(f"\naudit directory: {path}", highlight=False)
    if result.n_models:
        stdout.print(f"view it: {command_name()} app {path}", highlight=False)
    return summary
