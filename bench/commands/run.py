"""`bench run`: the main job."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from bench import console
from bench.errors import EXIT_FAILURE, UsageError
from bench.options import ConfigOption, JsonOption, QuietOption, setup

EXAMPLE = """Examples:

  bench run                                   # embedded offline default: synth-shadow, smoke profile

  bench run istd --methods rddm,resfusion,sr3 --profile paper --seeds 0,1,2

  bench run synth-shadow --iters 50 --steps 2 --experiment quick
"""

#: metric name fragments shown in the printed table (everything is logged to MLflow)
SHOWN = ("psnr", "ssim", "mae_all", "lpips", "fid", "isc", "kid")


def _split(value: str | None, kind: type = str) -> list | None:
    if value is None:
        return None
    try:
        return [kind(item.strip()) for item in value.split(",") if item.strip()]
    except ValueError:
        raise UsageError(f"'{value}' is not a comma-separated list of {kind.__name__}s") from None


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["sum_scale=1", "objective='sm-res'"]`` -> ``{"sum_scale": 1, "objective": "sm-res"}``.

    Values are read as TOML, so numbers, booleans and lists keep their types; a bare
    word is taken as a string.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option '{item}' is not KEY=VALUE, e.g. --option sum_scale=1")
        try:
            options[key.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            options[key.strip()] = text
    return options


def run(
    dataset: Annotated[
        str | None, typer.Argument(help="Dataset name (`bench data list`) [default: run.dataset].")
    ] = None,
    methods: Annotated[
        str | None, typer.Option("--methods", "-m", help="Comma-separated method names.")
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="Profile from bench.toml: smoke, paper, ...")
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds, e.g. 0,1,2.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    iters: Annotated[
        int | None, typer.Option(help="Training iterations (overrides the profile).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Sampling steps (overrides the profile).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            help="Method option KEY=VALUE (repeatable), e.g. -o sum_scale=1; values are TOML.",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Load these weights instead of training.", exists=True, dir_okay=False),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Resume each cell from its last checkpoint.")
    ] = False,
    log_checkpoint: Annotated[
        bool, typer.Option(help="Log each cell's checkpoint to MLflow.")
    ] = False,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train or load each method, sample, score with the paper's protocol, profile and track."""
    from bench.runner.cell import RunContext
    from bench.runner.cells import expand
    from bench.runner.grid import run_grid

    overrides = {
        "run": {
            "dataset": dataset,
            "methods": _split(methods),
            "profile": profile,
            "seeds": _split(seeds, int),
            "device": device,
        },
        "tracking": {"uri": tracking_uri, "experiment": experiment},
    }
    config = setup(config_path, quiet, as_json, overrides)
    if iters is not None and iters < 1 or steps is not None and steps < 1:
        raise UsageError("--iters and --steps must be at least 1")
    cells = expand(config, iterations=iters, steps=steps, options=parse_options(option or []))
    context = RunContext(
        tracking_uri=config.tracking_uri(),
        experiment=config.tracking.experiment,
        parent_run_id=None,
        data_root=config.paths.data_root,
        weights_dir=config.paths.weights_dir,
        results_dir=config.paths.results_dir,
        device=config.run.device,
        resume=resume,
        checkpoint=checkpoint,
        log_checkpoint=log_checkpoint,
        config=config.to_dict(),
    )
    console.info(
        f"{len(cells)} cell(s): {config.run.dataset} x {','.join(config.run.methods)} x "
        f"seeds {','.join(map(str, config.run.seeds))}, profile {config.run.profile}; "
        f"tracking {context.tracking_uri}"
    )
    result = run_grid(config, cells, context)
    rows = ([result.identity] if result.identity else []) + result.records
    shown = sorted({k for r in rows for k in r.metrics if any(s in k for s in SHOWN)})
    table = console.table(
        f"{config.run.dataset} ({config.run.profile} profile)",
        ["method", "seed", "status", *shown, "seconds"],
        [
            [
                "identity (input)" if r is result.identity else r.cell.method,
                "" if r is result.identity else r.cell.seed,
                r.status,
                *(_fmt(r.metrics.get(k)) for k in shown),
                f"{r.seconds:.1f}",
            ]
            for r in rows
        ],
    )
    data = {
        "parent_run_id": result.parent_run_id,
        "tracking_uri": context.tracking_uri,
        "experiment": context.experiment,
        "wall_seconds": result.seconds,
        "harness_overhead": result.overhead,
        "identity": result.identity and result.identity.metrics,
        "cells": [
            {
                "cell": r.cell.key,
                "status": r.status,
                "run_id": r.run_id,
                "metrics": r.metrics,
                "unavailable": r.unavailable,
                "error": r.error,
                "seconds": r.seconds,
            }
            for r in result.records
        ],
    }
    console.emit(data, table)
    console.info(
        f"wall time {result.seconds:.1f} s, harness overhead {100 * result.overhead:.1f}% "
        f"(time outside network forward/backward)\n"
        f"next: [bold]bench report[/bold] for the paper tables, [bold]bench ui[/bold] to compare runs"
    )
    for record in result.records:
        for name, reason in record.unavailable.items():
            console.warn(f"{record.cell.method}: {name} unavailable: {reason}")
    if result.failed:
        for record in result.failed:
            console.error(f"{record.cell.key} {record.status}: {record.error}")
        raise typer.Exit(EXIT_FAILURE)


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
