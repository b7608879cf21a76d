"""Scale options on this machine's device: torch.compile, and several small variants on one device at once.

1. torch.compile against eager for one variant: the one-off compile cost, the steady time per epoch, and
   the number of epochs after which compiling pays;
2. four small variants (the `minimal` preset) one after another in one process against two at once in two
   processes on the same device (the local executor's --workers 2), through the real audit engine;
3. HFTA-style fusion: K same-shape variants trained as one vmapped network (torch.func, grouped kernels)
   against K separate train steps on the same batches.
Whichever of 2 and 3 measures faster on the device is named in the output.
Run: .venv/bin/python benchmarks/bench_scale.py [--epochs 3] [--device auto]
"""

from __future__ import annotations

import os
import tempfile

# a fresh compile cache, so that the compile cost is measured and not read back from an earlier run
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bench-inductor-"))

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from audit.data import load_dataset  # noqa: E402
from audit.models.architectures import create_architecture  # noqa: E402
from audit.models.variants import preset_variants  # noqa: E402
from audit.running.train import TensorData, resolve_device, train_variant  # noqa: E402

OUT = Path(__file__).parent / "out"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch_times(spec, train, val, device, *, compile: bool) -> dict:
    """Seconds per epoch (training plus the epoch's recording), from the trainer's progress callback."""
    n_batches = -(-min(len(train), spec.train_size or len(train)) // spec.batch_size)
    marks = [time.perf_counter()]

    def progress(stage, done, total):
        if done % n_batches == 0:
            _synchronize(device)
            marks.append(time.perf_counter())

    res = train_variant(spec, train, val, 10, device=device, compile=compile, progress=progress)
    epochs = np.diff(marks).tolist()
    return {"total_s": res.seconds, "epoch_s": epochs, "accuracy": res.val_accuracy[-1]}


def compile_benchmark(spec, train, val, device) -> dict:
    steps = -(-(spec.train_size or len(train)) // spec.batch_size)
    eager = epoch_times(spec, train, val, device, compile=False)
    compiled = epoch_times(spec, train, val, device, compile=True)
    steady_eager = float(np.median(eager["epoch_s"][1:]))
    steady_compiled = float(np.median(compiled["epoch_s"][1:]))
    compile_cost = compiled["total_s"] - eager["total_s"] + (steady_eager - steady_compiled) * spec.epochs
    saving = steady_eager - steady_compiled
    return {
        "eager": eager, "compiled": compiled,
        "steady_epoch_s": {"eager": steady_eager, "compiled": steady_compiled},
        "steady_speedup": steady_eager / steady_compiled,
        "compile_cost_s": compile_cost,
        "break_even_epochs": (compile_cost / saving) if saving > 0 else None,
        "steps_per_epoch": steps,
        "break_even_steps": (compile_cost / saving * steps) if saving > 0 else None,
    }


def sharing_benchmark(device: str, val_size: int) -> dict:
    """The minimal preset's variants through the engine: one process, then two processes on one device."""
    from audit.running.engine import AuditConfig, plan_audit, run_audit
    from audit.running.executors import LocalExecutor

    seconds = {}
    for workers in (1, 2):
        plan = plan_audit(AuditConfig(dataset="fashion-mnist", variants="minimal", device=device, val_size=val_size,
                                      depth="none", learnability=False, probs=False, download=False))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            outcome = run_audit(plan, Path(tmp) / "a", executor=LocalExecutor(workers=workers))
            seconds[workers] = time.perf_counter() - t0
            assert not outcome.failed, outcome.failed
    return {"variants": len(plan.jobs), "one_process_s": seconds[1], "two_processes_s": seconds[2],
            "speedup_two_processes": seconds[1] / seconds[2]}


def fusion_benchmark(spec, device, *, k: int, steps: int) -> dict:
    """K same-shape networks as one vmapped model (HFTA-style) against K separate train steps."""
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    models = []
    for i in range(k):
        torch.manual_seed(i)
        models.append(create_architecture(spec.arch, in_channels=1, n_classes=10, **spec.arch_kwargs)
                      .to(device).to(memory_format=torch.channels_last).train())
    x = torch.randn(k, spec.batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (k, spec.batch_size), device=device)
    params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")

    def loss_of(p, b, xb, yb):
        return F.cross_entropy(functional_call(skeleton, (p, b), (xb.contiguous(memory_format=torch.channels_last),)),
                               yb)

    fused_step = vmap(grad_and_value(loss_of), randomness="different")
    optimizers = [torch.optim.SGD(m.parameters(), lr=spec.lr, momentum=spec.momentum) for m in models]
    xs = [x[i].contiguous(memory_format=torch.channels_last) for i in range(k)]

    def separate():
        for i, m in enumerate(models):
            loss = F.cross_entropy(m(xs[i]), y[i])
            optimizers[i].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[i].step()

    momentum = {n: torch.zeros_like(v) for n, v in params.items()}

    # before any step: fused and separate gradients, each against a float64 reference of the same network
    grads, _ = fused_step(params, buffers, x, y)
    worst = {"separate": 0.0, "fused": 0.0}
    for i in range(k):
        ref = copy.deepcopy(models[i]).double().to(memory_format=torch.contiguous_format)
        F.cross_entropy(ref(x[i].double()), y[i]).backward()
        models[i].zero_grad()
        F.cross_entropy(models[i](xs[i]), y[i]).backward()
        for (n, p), r in zip(models[i].named_parameters(), ref.parameters(), strict=True):
            scale = float(r.grad.abs().max()) + 1e-12
            worst["separate"] = max(worst["separate"], float((p.grad.detach() - r.grad).abs().max()) / scale)
            worst["fused"] = max(worst["fused"], float((grads[n][i].detach().double() - r.grad).abs().max()) / scale)

    def fused():
        grads, _ = fused_step(params, buffers, x, y)
        with torch.no_grad():
            for n, g in grads.items():
                momentum[n].mul_(spec.momentum).add_(g)
                params[n].sub_(spec.lr * momentum[n])

    def timed(fn) -> float:
        fn()  # warm-up
        _synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        _synchronize(device)
        return (time.perf_counter() - t0) / steps

    t_sep, t_fused = timed(separate), timed(fused)
    return {"k": k, "separate_step_ms": 1000 * t_sep, "fused_step_ms": 1000 * t_fused,
            "speedup_fused": t_sep / t_fused,
            "max_relative_grad_error_vs_float64": worst}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=8000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fuse", type=int, default=4, help="networks fused into one")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    ds = load_dataset("fashion-mnist", download=False)
    rng = np.random.default_rng(0)
    tr_idx = np.sort(rng.permutation(len(ds.train))[: args.train_size])
    train = TensorData.from_numpy(np.array(ds.train.images[tr_idx]), ds.train.labels[tr_idx], device)
    val = TensorData.from_numpy(np.array(ds.val.images[: args.val_size]), ds.val.labels[: args.val_size], device)
    spec = preset_variants("quick", epochs=args.epochs, train_size=args.train_size)[0]

    t0 = time.perf_counter()
    result = {"benchmark": "scale options: torch.compile, and several variants on one device",
              "device": str(device), "threads": torch.get_num_threads(),
              "setup": f"{spec.arch} {spec.arch_kwargs}, Fashion-MNIST {args.train_size} train images, batch "
                       f"{spec.batch_size}, {args.epochs} epochs, {args.val_size} val images recorded every epoch"}
    result["compile"] = compile_benchmark(spec, train, val, device)
    result["several_on_one_device"] = {
        "processes": sharing_benchmark(args.device, args.val_size),
        "fused": fusion_benchmark(spec, device, k=args.fuse, steps=10),
    }
    proc = result["several_on_one_device"]["processes"]["speedup_two_processes"]
    fused = result["several_on_one_device"]["fused"]["speedup_fused"]
    options = {"one after another": 1.0, "two processes (--workers 2)": proc, "fused (vmap)": fused}
    result["faster_on_this_device"] = max(options, key=options.get)
    result["seconds"] = time.perf_counter() - t0
    OUT.mkdir(exist_ok=True)
    (OUT / "scale.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
