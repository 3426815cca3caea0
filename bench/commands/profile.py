"""`bench profile`: parameters, MACs and latency of a method's networks."""

from __future__ import annotations

from typing import Annotated

import typer

from bench import console
from bench.options import ConfigOption, JsonOption, QuietOption, examples, setup

EXAMPLE = examples("bench profile rddm --size 256 --json")


def profile(
    method: Annotated[
        str, typer.Argument(help="Method name, e.g. rddm, resfusion, sr3 (any with --suite).")
    ] = "rddm",
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 256,
    dataset: Annotated[
        str | None,
        typer.Option(help="Dataset whose task sets steps and mask input [default: run.dataset]."),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Sampling steps [default: the paper's].")
    ] = None,
    dim: Annotated[
        int, typer.Option(help="UNet base width (64 in the papers; widths follow each paper).")
    ] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    repeats: Annotated[
        int, typer.Option(help="Timed repeats after warm-up (at least 15).", min=15)
    ] = 15,
    suite: Annotated[
        bool,
        typer.Option(
            "--suite",
            help="Instead of METHOD alone: RDDM, Resfusion and SR3 at fp32, bf16 and bf16 "
            "compiled, batch 1 and 16 (s/step, s/image, TFLOP/s, peak memory), and RDDM's "
            "paper-profile training rate; the GPU check (`nox -s gpu`).",
        ),
    ] = False,
    train_iters: Annotated[
        int, typer.Option(help="With --suite: RDDM training iterations timed.", min=1)
    ] = 200,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Count parameters and MACs (as the papers did with thop, and audited) and time the networks."""
    from baselines import METHODS, paper_settings
    from bench.cost import measure_cost
    from bench.data import get_dataset
    from bench.errors import unknown_name
    from bench.runner.execute import resolve_device

    if suite:
        _suite(
            size, resolve_device(device), train_iters, repeats, setup(config_path, quiet, as_json)
        )
        return
    config = setup(config_path, quiet, as_json, {"run": {"dataset": dataset}})
    if method not in METHODS:
        raise unknown_name("method", method, METHODS)
    spec = get_dataset(config.run.dataset)
    settings = paper_settings(method, spec.task)
    steps = steps or settings.get("steps") or 1
    from baselines import build_method

    model = build_method(
        method,
        mask_channels=1 if spec.has_mask else 0,
        unet_dim=dim,
        image_size=size,
        **settings.get("options", {}),
    )
    console.info(f"profiling {method} ({spec.task}, {steps} steps) at {size}x{size}, dim {dim}")
    result = measure_cost(model, size, steps, resolve_device(device), repeats=repeats)
    result |= {"method": method, "task": spec.task, "unet_dim": dim}
    rows = []
    for name, net in result["networks"].items():
        rows.append(
            _row(
                name,
                net["params"],
                net["params_thop"],
                net["macs"],
                net["macs_thop"],
                net["latency_s"]["median"],
                net["latency_s"]["iqr"],
            )
        )
    total = result["total"]
    rows.append(
        _row(
            "per step",
            total["params"],
            total["params_thop"],
            total["macs"],
            total["macs_thop"],
            total["latency_step_s"],
            None,
        )
    )
    rows.append(
        [
            "per image",
            "",
            "",
            f"{total['macs_per_image'] / 1e9:.1f}",
            f"{total['macs_thop_per_image'] / 1e9:.1f}",
            f"{total['latency_image_s']:.3f}",
            "",
        ]
    )
    table = console.table(
        f"{method} at {size}x{size} on {result['device']} ({steps} steps); "
        "paper = thop 0.1.1 as published, audited = parameter sum / torch flop counter",
        [
            "network",
            "params M (audited)",
            "params M (paper)",
            "GMACs (audited)",
            "GMACs (paper)",
            "latency s (median)",
            "IQR s",
        ],
        rows,
    )
    console.emit(result, table)
    for key, value in result["memory"].items():
        console.info(f"{key}: {value:.0f}")


def _row(name, params, params_thop, macs, macs_thop, median, iqr):
    return [
        name,
        f"{params / 1e6:.2f}",
        f"{params_thop / 1e6:.2f}",
        f"{macs / 1e9:.2f}",
        f"{macs_thop / 1e9:.2f}",
        f"{median:.4f}",
        "" if iqr is None else f"{iqr:.4f}",
    ]


def _suite(size: int, device, train_iters: int, repeats: int, config) -> None:
    """`bench profile --suite`: the sampling table, then the training rate."""
    import platform

    from bench.runner.precision import native_bf16
    from bench.suite import peak_tflops, sampling_rows, training_rate

    hardware = (
        __import__("torch").cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    console.info(
        f"suite on {hardware} at {size}x{size}; native bf16: {native_bf16(device) or 'none'}"
    )
    rows = sampling_rows(size, (1, 16), device, repeats, warmup=5)
    training = training_rate(size, train_iters, device)

    def fmt(value, digits=4):
        return "" if value is None else f"{value:.{digits}g}"

    table = console.table(
        f"sampling at {size}x{size} on {hardware} (peak bf16: {fmt(peak_tflops(device))} TFLOP/s)",
        ["method", "precision", "compiled", "batch", "s/step", "s/image", "TFLOP/s", "of peak", "peak GiB"],
        [
            [r["method"], r["precision"], r["compiled"], str(r.get("batch", "")),
             fmt(r.get("s_per_step")), fmt(r.get("s_per_image")), fmt(r.get("tflops"), 3),
             fmt(r.get("peak_share"), 2), fmt(r.get("peak_memory_gib"), 3)]
            for r in rows
        ],
    )  # fmt: skip
    console.emit(
        {"hardware": hardware, "size": size, "sampling": rows, "training": training}, table
    )
    console.info(
        f"RDDM training (paper profile, fp32): {training['iterations_per_s']:.2f} iterations/s "
        f"over {training['iterations']} iterations"
    )
