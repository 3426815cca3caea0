"""The hardware suite (`bench profile --suite`, `nox -s gpu`): how fast RDDM, Resfusion and
SR3 sample and train on this device, at the papers' configuration (256x256, width 64).

For each method, precision (fp32, bf16 autocast, bf16 compiled) and batch size it times one
sampling step (every network once; CUDA events after warm-up and a synchronisation on GPUs)
and derives seconds per image at the paper's step count, the achieved multiply-accumulate
rate (audited MACs, docs/methods.md §5) and, on GPUs with a known peak, its share of the
bf16 tensor-core peak; then it times RDDM's paper-profile training (batch 1, two images per
optimizer step) for a number of iterations. Everything runs on random inputs: the numbers are
speed, not quality.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

#: dense bf16 tensor-core peak in TFLOP/s by device-name fragment (vendor data sheets)
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "RTX 3090": 71.0}
SUITE_METHODS = ("rddm", "resfusion", "sr3")
SETTINGS = (("fp32", False), ("bf16", False), ("bf16", True))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> float:
    """Median seconds of ``call`` after ``warmup`` calls; CUDA events on GPUs."""
    times = []
    for index in range(warmup + repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            _sync(device)
            start.record()
            call()
            end.record()
            _sync(device)
            elapsed = start.elapsed_time(end) / 1000
        else:
            started = time.perf_counter()
            call()
            elapsed = time.perf_counter() - started
        if index >= warmup:
            times.append(elapsed)
    times.sort()
    return times[len(times) // 2]


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)


def _build(name: str, task: str, size: int, device: torch.device) -> tuple[Any, int]:
    from baselines import build_method, paper_settings

    settings = paper_settings(name, task)
    method = build_method(name, image_size=size, mask_channels=1, **settings["options"])
    return method.to(device).eval(), int(settings["steps"])


def sampling_rows(
    size: int, batches: tuple[int, ...], device: torch.device, repeats: int, warmup: int
) -> list[dict[str, Any]]:
    """One row per method x (precision, compiled) x batch: s/step, s/image, rate, memory."""
    from bench.cost import static_counts
    from bench.runner.precision import autocast, compile_networks

    rows = []
    peak = peak_tflops(device)
    for name in SUITE_METHODS:
        counted, steps = _build(name, "shadow-removal", size, "cpu")  # type: ignore[arg-type]
        macs_step = static_counts(counted, size, steps)["macs"]  # per image, one step
        for precision, compiled in SETTINGS:
            method, _ = _build(name, "shadow-removal", size, device)
            if compiled:
                examples = {n: method.example_inputs(n, 1, size) for n in method.networks()}
                with autocast(precision, device):
                    failure = compile_networks(method.networks(), examples)
                if failure is not None:
                    rows.append({"method": name, "precision": precision, "compiled": failure})
                    continue
            for batch in batches:
                inputs = {n: method.example_inputs(n, batch, size) for n in method.networks()}

                def step(method=method, inputs=inputs, precision=precision) -> None:
                    with torch.no_grad(), autocast(precision, device):
                        for net_name, net in method.networks().items():
                            net(*inputs[net_name])

                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                seconds = timed(step, device, repeats, warmup)
                tflops = 2 * macs_step * batch / seconds / 1e12
                rows.append(
                    {
                        "method": name,
                        "precision": precision,
                        "compiled": "yes" if compiled else "no",
                        "batch": batch,
                        "steps": steps,
                        "s_per_step": seconds,
                        "s_per_image": seconds * steps / batch,
                        "tflops": tflops,
                        "peak_share": tflops / peak if peak and precision == "bf16" else None,
                        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30
                        if device.type == "cuda"
                        else None,
                    }
                )
            del method
    return rows


def training_rate(
    size: int, iterations: int, device: torch.device, precision: str = "fp32"
) -> dict[str, Any]:
    """RDDM's paper-profile training (2 UNets, batch 1, 2 images per optimizer step, Adam
    8e-5) for ``iterations`` steps on random pairs: iterations per second."""
    from bench.runner.precision import autocast

    method, _ = _build("rddm", "shadow-removal", size, device)
    method.train()
    optimizer = torch.optim.Adam(method.parameters(), lr=8e-5, betas=(0.9, 0.99))
    generator = torch.Generator(device=device).manual_seed(0)
    batch = {
        "input": torch.rand(1, 3, size, size, device=device) * 2 - 1,
        "target": torch.rand(1, 3, size, size, device=device) * 2 - 1,
        "mask": (torch.rand(1, 1, size, size, device=device) > 0.5).float(),
    }

    def iteration() -> None:
        optimizer.zero_grad(set_to_none=True)
        for _ in range(2):  # gradient accumulation 2
            with autocast(precision, device):
                loss = method.loss(batch, generator)["loss"] / 2
            loss.backward()
        optimizer.step()

    iteration()  # warm-up: allocations, cuDNN autotuning
    _sync(device)
    started = time.perf_counter()
    for _ in range(iterations):
        iteration()
    _sync(device)
    seconds = time.perf_counter() - started
    return {
        "method": "rddm",
        "precision": precision,
        "iterations": iterations,
        "seconds": seconds,
        "iterations_per_s": iterations / seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else None,
    }
