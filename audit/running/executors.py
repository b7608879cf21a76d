"""Executors run jobs and hand each result to a callback that writes the store.

`LocalExecutor` runs in this process, or in a small pool of worker processes
sized to the cores. `RayExecutor` sends each job to a Ray cluster as a task
with its resources. An executor never writes files itself; it tells the run's
listener (`audit.running.engine.RunListener`) when a job starts and how far it is.
"""

from __future__ import annotations

import os
import queue
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity; every CPU where the system cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cgroup_cpu_limit() -> float | None:
    """The cgroup (v2) CPU quota in cores, as containers set it (`docker --cpus`); None without one."""
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _cpu_times(cpus: set[int]) -> tuple[float, float] | None:
    """(idle, total) jiffies of `cpus` from /proc/stat; None where it cannot be read."""
    try:
        lines = open("/proc/stat").read().splitlines()
    except OSError:
        return None
    idle = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [float(v) for v in fields[:8]]
            idle += values[3] + values[4]  # idle and iowait
            total += sum(values)
    return (idle, total) if total else None


def free_cores(cpus: set[int] | None = None, *, sample_s: float = 0.3) -> float | None:
    """How many of `cpus` (default: the allowed ones) other processes leave idle, measured over `sample_s`
    seconds; None where the system does not tell (no /proc/stat)."""
    cpus = allowed_cpus() if cpus is None else cpus
    before = _cpu_times(cpus)
    time.sleep(sample_s)
    after = _cpu_times(cpus)
    if before is None or after is None or after[1] <= before[1]:
        return None
    return len(cpus) * (after[0] - before[0]) / (after[1] - before[1])


def choose_threads(requested: int | None = None, *, workers: int = 1) -> tuple[int, str]:
    """The intra-op threads of each of `workers` job processes, and why.

    `requested` (--threads) wins, then OMP_NUM_THREADS. Otherwise: torch's own count (the physical cores),
    capped by the CPUs this process may use (affinity, cgroup quota) and by those that other processes leave
    free right now. Threads beyond the free cores do not add speed: they wait at every parallel step for a
    thread that another process holds off its core (benchmarks/bench_threads.py measures it).
    """
    workers = max(int(workers), 1)
    if requested:
        return max(1, int(requested) // workers), "--threads"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return max(1, int(env) // workers), "OMP_NUM_THREADS"
    import torch

    cpus = allowed_cpus()
    cores = min(torch.get_num_threads(), len(cpus))
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, round(limit)))
    free = free_cores(cpus)
    if free is not None and round(free) < cores:
        return max(1, round(free) // workers), f"{round(free)} of {len(cpus)} cores free"
    return max(1, cores // workers), f"{cores} cores"


def _threads_for(workers: int) -> int:
    return choose_threads(workers=workers)[0]


class LocalExecutor:
    """Run jobs on this machine; a failing job is reported and the rest go on.

    workers = 1 runs the jobs one after another in this process; workers > 1
    runs them in that many processes, each with cores / workers threads. On a
    GPU the processes share the device, so several small variants train at once.
    """

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers

    def run(self, jobs: list, ctx, *, on_result: Callable, listener) -> None:
        if self.workers == 1 or len(jobs) <= 1:
            self._run_inline(jobs, ctx, on_result, listener)
        else:
            self._run_pool(jobs, ctx, on_result, listener)

    def _run_inline(self, jobs, ctx, on_result, listener):
        for i, job in enumerate(jobs):
            if ctx.adapt_threads:  # another audit may have started or ended since the last job
                ctx.threads = choose_threads()[0]
            listener.job_started(job.name, i, len(jobs))
            t0 = time.perf_counter()

            def progress(stage, done, total, _name=job.name):
                listener.job_progress(_name, stage, done, total)

            try:
                output = job.run(ctx, progress)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one failing model must not sink the audit
                on_result(job.name, None, _error_text(exc), time.perf_counter() - t0)
                continue
            on_result(job.name, output, None, time.perf_counter() - t0)

    def _run_pool(self, jobs, ctx, on_result, listener):
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        ctx.threads = ctx.threads or _threads_for(self.workers)
        ctx._tensors.clear()
        mpctx = mp.get_context("spawn")
        index = {job.name: i for i, job in enumerate(jobs)}
        with mpctx.Manager() as manager:
            events = manager.Queue()  # the workers' start and progress events, shown here as they come

            def show_events():
                while True:
                    try:
                        kind, name, stage, done, total = events.get_nowait()
                    except queue.Empty:
                        return
                    if kind == "start":
                        listener.job_started(name, index[name], len(jobs))
                    else:
                        listener.job_progress(name, stage, done, total)

            with ProcessPoolExecutor(max_workers=self.workers, mp_context=mpctx, initializer=_init_worker,
                                     initargs=(ctx, events)) as pool:
                futures = {pool.submit(_run_in_worker, job): job for job in jobs}
                pending = set(futures)
                while pending:
                    finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                    show_events()
                    for fut in finished:
                        job = futures[fut]
                        try:
                            output, seconds = fut.result()
                        except Exception as exc:  # includes a worker that died
                            on_result(job.name, None, _error_text(exc), 0.0)
                            continue
                        on_result(job.name, output, None, seconds)


_WORKER_CTX = None
_WORKER_EVENTS = None


def _init_worker(ctx, events=None):
    global _WORKER_CTX, _WORKER_EVENTS
    import torch

    torch.set_num_threads(ctx.threads or 1)
    _WORKER_CTX = ctx
    _WORKER_EVENTS = events


def _run_in_worker(job):
    t0 = time.perf_counter()
    progress = None
    if _WORKER_EVENTS is not None:
        events, last = _WORKER_EVENTS, [0.0]
        events.put(("start", job.name, "", 0, 0))

        def progress(stage, done, total):  # at most a few events a second per job
            now = time.monotonic()
            if now - last[0] >= 0.3 or done == total:
                last[0] = now
                events.put(("progress", job.name, stage, done, total))

    output = job.run(_WORKER_CTX, progress)
    return output, time.perf_counter() - t0


class RayExecutor:
    """Run each job as a Ray task (CPUs, and a GPU when the device is CUDA).

    A task whose worker dies is retried once (`max_retries`); a job that still
    fails is reported and the others finish. `gpus_per_job` below 1 lets several
    small variants share one GPU (Ray's fractional GPUs). Results come back to this process,
    which writes them through the store's atomic writes.
    """

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, cpus_per_job: int = 1,
                 gpus_per_job: float = 1.0, max_retries: int = 1, connect_timeout: float = 30.0):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError('--executor ray needs Ray; install it with: pip install "ddd-audit[cluster]"') from None
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_job = cpus_per_job
        if not 0 < gpus_per_job <= 64 or (gpus_per_job > 1 and gpus_per_job != int(gpus_per_job)):
            raise ValueError(f"gpus_per_job must be a fraction of one GPU or a whole number, got {gpus_per_job}")
        self.gpus_per_job = gpus_per_job
        self.max_retries = max_retries
        self.connect_timeout = connect_timeout

    def _connect(self):
        import ray

        if ray.is_initialized():
            return False
        if self.address:
            _check_reachable(self.address, self.connect_timeout)
            ray.init(address=self.address, log_to_driver=False)
        else:
            ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1")
        return True

    def run(self, jobs: list, ctx, *, on_result: Callable, listener) -> None:
        import ray

        started_here = self._connect()
        try:
            use_gpu = ctx.torch_device().type == "cuda"
            ctx.threads = self.cpus_per_job
            ctx._tensors.clear()
            ctx_ref = ray.put(ctx)
            remote = ray.remote(_ray_task).options(num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job if use_gpu else 0,
                                                   max_retries=self.max_retries, retry_exceptions=False)
            pending = {}
            for i, job in enumerate(jobs):
                listener.job_started(job.name, i, len(jobs))
                pending[remote.remote(job, ctx_ref)] = job
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                job = pending.pop(ref)
                try:
                    output, seconds = ray.get(ref)
                except Exception as exc:  # RayTaskError, WorkerCrashedError, ...
                    on_result(job.name, None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                              0.0)
                    continue
                on_result(job.name, output, None, seconds)
        finally:
            if started_here:
                ray.shutdown()


def _ray_task(job, ctx):
    import torch

    torch.set_num_threads(max(1, ctx.threads or 1))
    t0 = time.perf_counter()
    output = job.run(ctx, None)
    return output, time.perf_counter() - t0


def _check_reachable(address: str, timeout: float) -> None:
    """Fail fast with a clear message when a cluster address does not answer."""
    import socket

    if address == "auto" or ":" not in address:
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=min(timeout, 10.0)):
            pass
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot reach the Ray cluster at {address} ({exc}); check --ray-address "
                         "(host:port of the head node, e.g. 10.0.0.5:6379) and that the cluster is running") from None


@dataclass(frozen=True)
class ExecutorSettings:
    """How a run's jobs are executed (`ddd-audit run --executor --workers --ray-address --gpus-per-job`): not
    part of the audit, so not in its manifest. `check()` refuses flags of another executor; `make()` builds it."""

    name: str = "local"
    address: str | None = None
    workers: int = 1
    gpus_per_job: float = 1.0

    def check(self) -> ExecutorSettings:
        """InputError with one line when a Ray flag is given without --executor ray. Returns `self`."""
        from audit.schemas import InputError

        if self.address and self.name != "ray":
            raise InputError("--ray-address needs --executor ray; use --executor ray --ray-address ADDR", "address")
        if self.gpus_per_job != 1.0 and self.name != "ray":
            raise InputError("--gpus-per-job needs --executor ray; locally, --workers N runs N variants at once on "
                             "one device", "gpus_per_job")
        return self

    def make(self) -> LocalExecutor | RayExecutor:
        """The executor; an unknown name is an InputError that lists the valid ones."""
        from audit.schemas import InputError

        if self.name == "local":
            return LocalExecutor(workers=self.workers)
        if self.name == "ray":
            return RayExecutor(address=self.address, gpus_per_job=self.gpus_per_job)
        raise InputError(f"unknown executor {self.name!r}; valid: local, ray", "name")
