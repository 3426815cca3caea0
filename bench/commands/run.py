"""`bench run`: the main job."""

from __future__ import annotations

import dataclasses
import math
import shlex
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from baselines.registry import registered_names
from bench import console
from bench.conventions import MetricKey, identity_label, printed_columns
from bench.errors import EXIT_FAILURE, BenchError, UsageError
from bench.options import (
    ARGV_KEY,
    ConfigOption,
    ExperimentOption,
    JsonOption,
    QuietOption,
    TrackingUriOption,
    examples,
    setup,
)

if TYPE_CHECKING:  # types only: importing the runner loads torch, which --help must not
    from bench.config import Config
    from bench.runner.execute import CellRecord, RunContext
    from bench.runner.grid import GridResult
    from bench.statistics import PairedDifference

EXAMPLE = examples(
    "bench run                             # offline default: synth-shadow, smoke",
    "bench run istd -m rddm,resfusion,sr3 --profile paper --seeds 0,1,2",
    "bench run synth-shadow -m rddm,sr3 --iters 50 --steps 2 --experiment quick",
    "bench run --table rddm-table-10 --seeds 0,1,2     # every cell of Table 10",
    "bench run istd --profile paper --nproc 8          # each cell on 8 GPUs",
    "bench run istd --seeds 0,1,2 --jobs 3             # three cells at once",
    "bench run --table rddm-table-10 --executor slurm  # a Slurm job per cell",
)


def _split(value: str | None, option: str, kind: type = str) -> list | None:
    """``--seeds 0,1,2`` -> [0, 1, 2]; a bad item names the option and an example."""
    if value is None:
        return None
    try:
        return [kind(item.strip()) for item in value.split(",") if item.strip()]
    except ValueError:
        example = "0,1,2" if kind is int else "a,b"
        raise UsageError(
            f"{option} '{value}' is not a comma-separated list of {kind.__name__}s, e.g. "
            f"{option} {example}"
        ) from None


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
    ctx: typer.Context,
    dataset: Annotated[
        str | None, typer.Argument(help="Dataset name (`bench data list`) [default: run.dataset].")
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods",
            "-m",
            help="Comma-separated method names [default: run.methods of the config]: "
            f"{', '.join(registered_names(plugins=False))}, and those of --methods-from and "
            "installed plugins.",
        ),
    ] = None,
    methods_from: Annotated[
        list[Path] | None,
        typer.Option(
            "--methods-from",
            help="A Python file that registers methods of your own (repeatable), e.g. "
            "examples/residual_regressor.py; installed packages register through the "
            "bench.methods entry point instead.",
            dir_okay=False,
        ),
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
        typer.Option(
            help="Load these weights instead of training: a bench checkpoint or one written by "
            "the official RDDM, Resfusion or SR3 code (`bench checkpoint inspect FILE`).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    weight_set: Annotated[
        str,
        typer.Option(
            "--weight-set",
            "--weights",
            help="With --checkpoint: the EMA weights (ema) or the raw ones (online).",
        ),
    ] = "ema",
    resume: Annotated[
        bool, typer.Option(help="Resume each cell from its last checkpoint.")
    ] = False,
    trust_checkpoint: Annotated[
        bool,
        typer.Option(
            "--trust-checkpoint",
            help="Unpickle the --checkpoint and --resume files fully, for files from a source "
            "you trust that hold more than weights. Unpickling can run any code the file "
            "names; without this flag files are read weights-only. Recorded on the run.",
        ),
    ] = False,
    precision: Annotated[
        str | None,
        typer.Option(
            help="Network precision: fp32, or bf16 autocast (GPUs; CPUs with AMX or AVX-512 "
            "BF16) [default: the profile's]."
        ),
    ] = None,
    compile: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile the networks for sampling (eager, with the reason, if it "
            "cannot) [default: the profile's].",
        ),
    ] = None,
    eval_every: Annotated[
        int | None,
        typer.Option(
            "--eval-every",
            min=0,
            help="Also sample and score the EMA every N iterations and log the headline "
            "metrics as curve/<protocol>/<metric>: the learning curve (0: off) [default: "
            "the profile's].",
        ),
    ] = None,
    pipeline: Annotated[
        str,
        typer.Option(
            help="Data pipeline (training crops and flips, equalisation, test size): paper "
            "(each method its own paper's for the dataset's task), dataset (the manifest's "
            "for every method), or a method's name (that paper's for every method, a fair "
            "comparison on one pipeline). Recorded on every run (cell.pipeline.*).",
        ),
    ] = "paper",
    log_checkpoint: Annotated[
        bool, typer.Option(help="Log each cell's checkpoint to MLflow.")
    ] = False,
    tracking_uri: TrackingUriOption = None,
    experiment: ExperimentOption = None,
    table: Annotated[
        str | None,
        typer.Option(
            help="Run the cells a paper table needs with its settings (`bench report --list`); "
            "--profile, --iters, --seeds and --device still apply."
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            help="Where cells run: local (this machine) or slurm (one job-array task per cell "
            "through submitit; the slurm table of bench.toml)."
        ),
    ] = "local",
    jobs: Annotated[
        int, typer.Option(help="Cells at once with --executor local; 1: one after the other.")
    ] = 1,
    nproc: Annotated[
        int,
        typer.Option(
            help="Training processes per cell (DistributedDataParallel; one per GPU). "
            "Under torchrun leave it at 1: torchrun's --nproc_per_node decides."
        ),
    ] = 1,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train or load each method, sample, score with the paper's protocol, profile and track."""
    if iters is not None and iters < 1 or steps is not None and steps < 1:
        raise UsageError("--iters and --steps must be at least 1")
    _check_engines(executor, jobs, nproc)
    plugins = load_method_files(methods_from or [])
    overrides = {
        "run": {
            "dataset": dataset,
            "methods": _split(methods, "--methods"),
            "profile": profile,
            "seeds": _split(seeds, "--seeds", int),
            "device": device,
        },
        "tracking": {"uri": tracking_uri, "experiment": experiment},
    }
    invocation = {"resume": resume, "checkpoint": checkpoint, "log_checkpoint": log_checkpoint}
    invocation |= {"weight_set": weight_set, "precision": precision, "compile": compile}
    invocation |= {"eval_every": eval_every, "methods_from": plugins, "trust": trust_checkpoint}
    invocation["pipeline"] = pipeline
    if precision not in (None, "fp32", "bf16"):
        raise UsageError(f"--precision '{precision}' is not known; valid choices: bf16, fp32")
    invocation |= {"executor": executor, "jobs": jobs, "nproc": nproc}
    invocation["argv"] = ctx.meta.get(ARGV_KEY, ["run"])
    if table is None:
        config = setup(config_path, quiet, as_json, overrides)
        failed = _run_grid(config, iters, steps, parse_options(option or []), **invocation)
    else:
        if dataset or methods or steps or option or checkpoint:
            raise UsageError(
                "--table fixes the dataset, methods, steps and options; drop the dataset "
                "argument, --methods, --steps, --option and --checkpoint"
            )
        failed = _run_table(table, overrides, config_path, quiet, as_json, iters, **invocation)
    if failed:
        raise typer.Exit(EXIT_FAILURE)


def load_method_files(files: list[Path]) -> tuple[Path, ...]:
    """Import each --methods-from file (it registers methods); a file that fails to import
    is one error naming it and the cause."""
    from baselines.registry import load_file

    loaded = []
    for path in files:
        try:
            load_file(path)
        except Exception as error:
            raise UsageError(f"--methods-from {path}: {type(error).__name__}: {error}") from None
        loaded.append(path.resolve())
    return tuple(loaded)


def _run_table(
    table_id: str,
    overrides: dict[str, Any],
    config_path: Path | None,
    quiet: bool,
    as_json: bool,
    iters: int | None,
    **invocation: Any,
) -> bool:
    """Each planned run of ``table_id`` through :func:`_run_grid`, as if typed by hand."""
    from bench.report.reproduce import command, table_plan

    plan = table_plan(table_id)
    failed = False
    for index, planned in enumerate(plan, 1):
        profile = overrides["run"]["profile"] or planned.profile
        iterations = iters if iters is not None else planned.iterations
        planned = dataclasses.replace(planned, profile=profile, iterations=iterations)
        run_overrides = {
            **overrides,
            "run": {
                **overrides["run"],
                "dataset": planned.dataset,
                "methods": list(planned.methods),
                "profile": profile,
            },
        }
        config = setup(config_path, quiet, as_json, run_overrides)
        console.info(f"[{table_id} {index}/{len(plan)}] {command(planned)}")
        failed |= _run_grid(config, iterations, planned.steps, dict(planned.options), **invocation)
    return failed


def _check_engines(executor: str, jobs: int, nproc: int) -> None:
    if executor not in ("local", "slurm"):
        raise UsageError(f"--executor '{executor}' is not known; valid choices: local, slurm")
    if jobs < 1 or nproc < 1:
        raise UsageError("--jobs and --nproc must be at least 1")
    if nproc > 1 and (jobs > 1 or executor == "slurm"):
        raise UsageError(
            "--nproc trains one cell at a time on this machine; drop --jobs, or for Slurm set "
            "gpus_per_cell in the slurm table of bench.toml instead of --nproc"
        )
    if jobs > 1 and executor == "slurm":
        raise UsageError("--jobs is for --executor local; Slurm runs every cell as its own job")


def _run_grid(
    config: Any,
    iters: int | None,
    steps: int | None,
    options: dict[str, Any],
    executor: str,
    jobs: int,
    nproc: int,
    argv: list[str],
    **invocation: Any,
) -> bool:
    """One grid (dataset x methods x seeds) under one parent run; True if a cell failed.
    ``argv``: the command as typed, for the --resume line printed after Ctrl-C.
    The command plans and renders; bench.runner executes."""
    from bench.runner import distributed
    from bench.runner.executors import make_executor
    from bench.runner.grid import grid_worker, run_as_rank

    cells, context = _plan(config, iters, steps, options, **invocation)
    console.info(
        f"{len(cells)} cell(s): {config.run.dataset} x {','.join(config.run.methods)} x "
        f"seeds {','.join(map(str, config.run.seeds))}, profile {config.run.profile}; "
        f"tracking {context.tracking_uri}"
    )
    output = (console.state.quiet, console.state.json)
    try:
        if nproc > 1:
            result = distributed.launch(nproc, grid_worker, config, cells, context, output)
        else:
            engine = make_executor(
                executor, jobs, config.slurm, config.paths.results_dir, config.source.parent
            )
            result = run_as_rank(config, cells, context, output, engine)
    except KeyboardInterrupt:
        raise Interrupted(_interrupted(context, cells, argv)) from None
    if result is None:  # a rank other than 0: rank 0 reports
        return False
    _render(config, context, result)
    return bool(result.failed)


class Interrupted(BenchError):
    """Ctrl-C during a grid: what was kept and the command that continues it."""

    exit_code = 130


def _interrupted(context: RunContext, cells: list, argv: list[str]) -> str:
    """What Ctrl-C left behind, and the ``--resume`` command that continues the grid."""
    from bench.runner.execute import checkpoint_path

    kept = [
        c for c in cells if checkpoint_path(context.results_dir, c, context.experiment).is_file()
    ]
    argv = list(argv)
    if "--resume" not in argv:
        argv.append("--resume")
    command = "bench " + " ".join(shlex.quote(arg) for arg in argv)
    where = (
        f"checkpoints are kept for {', '.join(c.key for c in kept)} "
        f"(under {context.results_dir / 'checkpoints'})"
        if kept
        else "no cell had reached a checkpoint"
    )
    return (
        f"interrupted: the unfinished runs are marked KILLED in {context.tracking_uri}; "
        f"{where}; continue the grid with: {command}"
    )


def _check_trainable(dataset: str) -> None:
    """A test-only set (Set5 and the other SR benchmarks) samples a trained network: without
    --checkpoint there is nothing to train on."""
    from bench.data import get_dataset

    spec = get_dataset(dataset)
    if spec.train_split is None:
        raise UsageError(
            f"dataset {dataset} has no training split: pass --checkpoint FILE (a network "
            f"trained elsewhere, e.g. on div2k) to sample and score it"
        )


def _plan(
    config: Any,
    iters: int | None,
    steps: int | None,
    options: dict[str, Any],
    resume: bool,
    checkpoint: Path | None,
    weight_set: str,
    precision: str | None,
    compile: bool | None,
    eval_every: int | None,
    methods_from: tuple[Path, ...],
    log_checkpoint: bool,
    trust: bool,
    pipeline: str,
) -> tuple[list[Any], Any]:
    """The cells and the context they share, once everything that could stop them after
    training started has been checked (writable results, --resume, --checkpoint)."""
    from bench.files import ensure_writable
    from bench.runner.cells import expand
    from bench.runner.execute import RunContext

    cells = expand(config, iters, steps, options, precision, compile, eval_every, pipeline)
    if checkpoint is None:
        _check_trainable(config.run.dataset)
    ensure_writable(config.paths.results_dir, f"[paths] results_dir in {config.source}")
    if resume:  # before any work: a checkpoint of other settings is never continued
        from bench.runner.execute import checkpoint_path, resume_problem
        from bench.torch_files import check_torch_file

        experiment = config.tracking.experiment
        for cell in cells:
            problem = resume_problem(config.paths.results_dir, cell, experiment, trust)
            if problem:
                raise UsageError(problem)
            existing = checkpoint_path(config.paths.results_dir, cell, experiment)
            if existing.is_file():  # a file in a shared results folder can run code
                check_torch_file(existing, trust)
            else:
                console.info(
                    f"{cell.key}: --resume found no checkpoint of these settings in experiment "
                    f"'{experiment}': it trains from the start"
                )
    if checkpoint is not None:  # a file that fits no cell stops here, before any work
        from bench.checkpoints import check_method, check_weight_set, read_checkpoint

        check_weight_set(weight_set)
        found = read_checkpoint(checkpoint, trust)
        for method in dict.fromkeys(cell.method for cell in cells):
            check_method(found, method)
    context = RunContext(
        tracking_uri=config.tracking_uri(),
        experiment=config.tracking.experiment,
        tracking_patience=config.tracking.retry_minutes * 60,
        parent_run_id=None,
        data_root=config.paths.data_root,
        user_datasets=config.paths.user_datasets,
        methods_from=methods_from,
        weights_dir=config.paths.weights_dir,
        results_dir=config.paths.results_dir,
        device=config.run.device,
        resume=resume,
        checkpoint=checkpoint,
        weight_set=weight_set,
        log_checkpoint=log_checkpoint,
        trust_checkpoint=trust,
        config=config.to_dict(),
    )
    return cells, context


def _render(config: Config, context: RunContext, result: GridResult) -> None:
    """The results table (or --json), the wall time and every warning a reader needs."""
    console.emit(_json_document(result, context), _results_table(config, result))
    _explain(result, context)
    rows = ([result.identity] if result.identity else []) + result.records
    unavailable = {k: v for r in rows for k, v in r.unavailable.items()}
    for name, reason in sorted(unavailable.items()):
        console.warn(f"{name} unavailable: {reason}")
    for record in result.failed:
        console.error(f"{record.cell.key} {record.status}: {record.error}")


def _shown_columns(rows: list[CellRecord]) -> dict[str, MetricKey]:
    """The logged metric keys the table shows, each protocol's own columns in its declared
    order (bench/conventions.py), with their parsed names."""
    parsed = {key: MetricKey.parse(key) for r in rows for key in r.metrics}
    parsed = {key: name for key, name in parsed.items() if name is not None}
    by_metric = {name.metric: key for key, name in parsed.items()}
    wanted = [
        key
        for protocol in sorted({name.protocol for name in parsed.values()})
        for key in printed_columns(protocol)
    ]
    return {by_metric[name]: parsed[by_metric[name]] for name in dict.fromkeys(wanted) if name in by_metric}  # fmt: skip


def _results_table(config: Config, result: GridResult) -> Any:
    """Identity first, then each cell: its metrics, its intervals against the input and the
    best cell of its seed, its flags and its time."""
    rows = ([result.identity] if result.identity else []) + result.records
    shown = _shown_columns(rows)
    protocols = sorted({name.protocol for name in shown.values()})
    subsets = sorted({r.subset for r in rows if r.subset})
    scope = (
        f" on a subset of the test split: the first {', '.join(subsets)} images" if subsets else ""
    )
    primary = _primary_metric(result)
    extra_columns = [] if primary is None else ["Δ input [95% CI]", "Δ best [95% CI]", "flags"]
    smoke = (
        f"; a pipeline check ({_iterations(result)} training iterations), not a reproduction"
        if config.run.profile == "smoke"
        else ""
    )
    header = ["method", "seed", "status", *(n.metric for n in shown.values()), *extra_columns, "seconds"]  # fmt: skip
    body = [
        [
            identity_label(r.cell.task) if r is result.identity else r.cell.method,
            "" if r is result.identity else r.cell.seed,
            r.status,
            *(_fmt(r.metrics.get(k)) for k in shown),
            *(_interval_cells(result, r, primary) if primary else []),
            f"{r.seconds:.1f}",
        ]
        for r in rows
    ]
    title = (
        f"{config.run.dataset}, {config.run.profile} profile, scored by protocol "
        f"{', '.join(protocols) or '–'}{scope}{smoke}"
    )
    return console.table(title, header, body)


def _json_document(result: GridResult, context: RunContext) -> dict[str, Any]:
    """What --json prints: every cell's metrics, intervals and flags, and the seed spreads."""
    return {
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
                "subset": r.subset,
                "comparisons": {
                    key: _comparison_document(c)
                    for key, c in result.comparisons.get(index, {}).items()
                },
            }
            for index, r in enumerate(result.records)
        ],
        "seed_spreads": {
            method: {key: spread.as_dict() for key, spread in spreads.items()}
            for method, spreads in result.seed_spreads.items()
        },
    }


def _comparison_document(comparison: Any) -> dict[str, Any]:
    c = comparison
    return {
        "value": c.estimate.value,
        "ci_low": c.estimate.ci_low,
        "ci_high": c.estimate.ci_high,
        "vs_identity": c.vs_identity and c.vs_identity.as_dict(),
        "vs_identity_p_holm": c.vs_identity_p_holm,
        "vs_best": c.vs_best and c.vs_best.as_dict(),
        "vs_best_p_holm": c.vs_best_p_holm,
        "flags": c.flags,
    }


def _explain(result: GridResult, context: RunContext) -> None:
    """After the table: the time, what to run next, where the samples are, how the
    intervals and flags were computed, and the warnings they raise."""
    from bench.tracking import FINISHED

    console.info(
        f"wall time {result.seconds:.1f} s, harness overhead {100 * result.overhead:.1f}% "
        f"(time outside network forward/backward)\n"
        f"next: [bold]bench report[/bold] for the paper tables, [bold]bench ui[/bold] to compare runs"
    )
    finished = [r for r in result.records if r.status == FINISHED and r.run_id]
    if finished:
        runs = context.results_dir / "runs"
        console.info(
            f"samples, per-image scores and sample grids: {runs}/<run id>/ (e.g. "
            f"{runs / finished[0].run_id / 'samples'}); [bold]bench score[/bold] re-scores a "
            "folder of them, [bold]bench compare RUN_A RUN_B[/bold] compares two runs"
        )
    primary = _primary_metric(result)
    if primary is not None:
        console.info(
            f"Δ input, Δ best: {primary} of the method minus the input's and minus the best "
            "method's of its seed, 95% paired bootstrap interval over images (BCa, 10,000 "
            "resamples); flags: 'worse than the input' when the whole "
            "interval is on the worse side; 'not significant' when the paired permutation "
            "p-value, Holm-adjusted across the methods of one seed, is 0.05 or more "
            "(docs/statistics.md; every metric's intervals: bench compare RUN_A RUN_B)"
        )
    _report_seed_spreads(result, primary)
    _warn_below_identity(result, primary)


def _primary_metric(result: GridResult) -> str | None:
    """The first headline metric with intervals: the one the table's interval columns show."""
    for comparisons in result.comparisons.values():
        return next(iter(comparisons), None)
    return None


def _iterations(result: GridResult) -> str:
    counts = sorted({r.cell.iterations for r in result.records})
    return ", ".join(map(str, counts)) or "0"


def _interval_cells(result: GridResult, record: CellRecord, primary: str) -> list[str]:
    """The record's differences from the input and from its seed's best, each with its
    interval, and its flags; blank for the identity row."""
    index = next((i for i, r in enumerate(result.records) if r is record), None)
    comparison = result.comparisons.get(index, {}).get(primary) if index is not None else None
    if comparison is None:
        return ["", "", ""]
    return [
        _difference(comparison.vs_identity),
        _difference(comparison.vs_best),
        ", ".join(comparison.flags),
    ]


def _difference(difference: PairedDifference | None) -> str:
    """``+1.23 [+0.80, +1.81]``: one precision for the three numbers, hundredths for dB."""
    from bench.statistics import format_difference

    if difference is None:
        return ""
    return format_difference(difference.mean_diff, difference.ci_low, difference.ci_high)


def _report_seed_spreads(result: GridResult, primary: str | None) -> None:
    """The primary metric's spread over seeds (every metric's: --json and the runs)."""
    for method, spreads in sorted(result.seed_spreads.items()):
        for key, spread in spreads.items():
            if key != primary:
                continue
            interval = (
                f"; 95% interval over seeds and images [{_fmt(spread.ci_low)}, "
                f"{_fmt(spread.ci_high)}]"
                if spread.ci_low is not None
                else ""
            )
            console.info(
                f"{method} {key} over {spread.n_seeds} seeds: {_fmt(spread.mean)} ± "
                f"{_fmt(spread.std)} (std of the seeds' means){interval}"
            )


def _warn_below_identity(result: GridResult, primary: str | None) -> None:
    """A method that does not beat the degraded input has learned nothing worth reading."""
    for index, record in enumerate(result.records):
        comparison = result.comparisons.get(index, {}).get(primary) if primary else None
        if comparison is None or comparison.vs_identity is None:
            continue
        difference = comparison.vs_identity
        if comparison.worse_than_input:
            console.warn(
                f"{record.cell.method} (seed {record.cell.seed}) is worse than the input: "
                f"{primary} {difference.mean_diff:+.2f} [{difference.ci_low:.2f}, "
                f"{difference.ci_high:.2f}] over {difference.n_images} images; train longer "
                "(--iters) before reading anything into its numbers"
            )
        elif "not significant vs input" in comparison.flags:
            console.warn(
                f"{record.cell.method} (seed {record.cell.seed}) is not distinguishable from "
                f"the input on {primary} ({difference.mean_diff:+.2f}, Holm-adjusted p "
                f"{comparison.vs_identity_p_holm:.2f}): train longer (--iters)"
            )


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
