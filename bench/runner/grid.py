"""Run a grid of cells under one MLflow parent run, with the identity baseline beside them."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench import console
from bench.config import Config
from bench.conventions import logged
from bench.data.verify import DataError
from bench.envinfo import environment
from bench.files import atomic_write
from bench.runner.cells import Cell
from bench.runner.distributed import World, gather, join, leave
from bench.runner.execute import (
    CellRecord,
    RunContext,
    finished_record,
    open_tracker,
    sample_split,
    score,
)
from bench.runner.executors import Executor, InProcess, settle_lost
from bench.tracking import FAILED, FINISHED, KILLED, Tracker

if TYPE_CHECKING:
    from bench.comparisons import CellComparison
    from bench.data import DataInUse
    from bench.statistics import SeedSpread

IDENTITY = "identity"


class Identity:
    """The degraded input scored as the output: the floor every method must beat."""

    kind = "restoration"
    name = "identity (input)"

    def eval(self) -> Identity:
        return self

    def sample(self, condition: torch.Tensor, **_: Any) -> torch.Tensor:
        return condition


@dataclass
class GridResult:
    parent_run_id: str
    records: list[CellRecord]
    identity: CellRecord | None
    seconds: float
    network_seconds: float = 0.0
    failed: list[CellRecord] = field(default_factory=list)
    #: per record (its index in ``records``), per headline metric: its intervals and its
    #: differences from the input and from the best cell of its seed
    comparisons: dict[int, dict[str, CellComparison]] = field(default_factory=dict)
    #: per method run with two seeds or more, per headline metric: the spread over seeds
    seed_spreads: dict[str, dict[str, SeedSpread]] = field(default_factory=dict)

    @property
    def overhead(self) -> float:
        """Share of wall time spent outside network forward and backward passes."""
        return 1 - self.network_seconds / self.seconds if self.seconds else 0.0


def score_identity(cell: Cell, context: RunContext) -> CellRecord:
    """Score the degraded input as the output; the record is logged by :func:`log_identity`.
    The scores are kept under ``<results>/identity/``, keyed by everything they depend on
    (:func:`identity_key`): a second run on the same data reads them instead of scoring
    again."""
    import pandas as pd

    from bench.data import open_split, use_dataset
    from bench.data.pipeline import dataset_pipeline

    started = time.perf_counter()
    record = CellRecord(cell, FAILED)
    try:
        data = context.datasets.get(cell.dataset) or use_dataset(cell.dataset, context.data_root)  # fmt: skip
        spec, root = data.spec, data.root
        key = identity_key(cell, spec, root, context)
        cached = context.results_dir / "identity" / f"{key}.json" if key else None
        if cached is not None and cached.is_file():
            kept = json.loads(cached.read_text())
            record.metrics, record.unavailable = kept["metrics"], kept["unavailable"]
            record.subset, record.per_image = kept["subset"], pd.DataFrame(kept["per_image"])
            record.status = FINISHED
            console.info(f"identity baseline: the scores kept in {cached}")
            record.seconds = time.perf_counter() - started
            return record
        console.info(f"scoring the identity baseline on {cell.dataset}")
        # the dataset's own test pipeline (its files' size for super-resolution)
        size, options = dataset_pipeline(dict(spec.preprocess)).test_options(cell.image_size)
        split = open_split(cell.dataset, root, spec.test_split, size, train=False, **options)
        samples = sample_split(Identity(), split, cell, torch.device("cpu"))
        subset = samples.subset_tags()
        record.subset = subset["eval_images"] if subset["eval_subset"] == "yes" else None
        scores = score(cell, samples, context.weights_dir, torch.device("cpu"), spec)
        record.metrics = logged(cell.protocol, scores.summary)
        record.unavailable = logged(cell.protocol, scores.unavailable)
        record.per_image = scores.per_image
        record.status = FINISHED
        if cached is not None:
            kept = {"metrics": record.metrics, "unavailable": record.unavailable,
                    "subset": record.subset, "per_image": scores.per_image.to_dict("list")}  # fmt: skip
            with atomic_write(cached, "w") as handle:
                json.dump(kept, handle)
    except Exception as error:
        record.error = f"{type(error).__name__}: {error}"
    record.seconds = time.perf_counter() - started
    return record


def identity_key(cell: Cell, spec: Any, root: Any, context: RunContext) -> str | None:
    """What the identity's scores depend on, hashed: the data (its lock's fingerprint) and
    manifest, the protocol, the size and number of images scored, the metric weights present
    and bench's own code. None for data never verified (nothing to key it by)."""
    from bench.data.verify import fingerprint

    data = fingerprint(root)
    if data is None:
        return None
    package = Path(__file__).resolve().parents[1]
    code = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        code.update(path.read_bytes())
    weights = context.weights_dir
    present = (
        sorted((p.name, p.stat().st_size) for p in weights.iterdir()) if weights.is_dir() else []
    )
    parts = {
        "dataset": cell.dataset,
        "fingerprint": data,
        "manifest": hashlib.sha256(spec.manifest.read_bytes()).hexdigest() if spec.manifest else "",
        "protocol": cell.protocol,
        "image_size": cell.image_size,
        "eval_images": cell.eval_images,
        "weights": present,
        "code": code.hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return f"{cell.dataset}-{cell.protocol}-{digest}"


def log_identity(record: CellRecord, context: RunContext, tracker: Tracker) -> None:
    cell = record.cell
    tags = {**context.tags, "method": IDENTITY, "dataset": cell.dataset, "run_kind": "identity"}
    tags |= {"protocol": cell.protocol, "profile": cell.profile, "task": cell.task}
    if record.subset:
        tags |= {"eval_images": record.subset, "eval_subset": "yes"}
    record.run_id = tracker.start(IDENTITY, tags, parent=context.parent_run_id)
    tracker.log_metrics(record.run_id, record.metrics)
    if record.per_image is not None:  # what `bench compare` pairs a cell's scores with
        path = context.results_dir / "runs" / record.run_id / "per_image.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as handle:
            record.per_image.to_csv(handle, index=False)
        tracker.log_file(record.run_id, path)
    if record.error:
        tracker.set_tags(record.run_id, {"error": record.error[:5000]})
    tracker.end(record.run_id, record.status)


def run_grid(
    config: Config, cells: list[Cell], context: RunContext, executor: Executor | None = None
) -> GridResult:
    """Run every cell (in order, or fanned out by ``executor``); failed cells are recorded
    and the rest still run. Under torchrun every rank calls this; rank 0 alone tracks."""
    started = time.perf_counter()
    world = World.current()
    # Opening a new store takes seconds (MLflow's imports and schema migrations): it runs
    # beside the data generation and the identity baseline, and is joined before any
    # training, so an unreachable store still stops the run before a cell starts.
    with ThreadPoolExecutor(max_workers=1) as pool:
        opening = pool.submit(open_tracker, context, world)
        try:
            context = dataclasses.replace(context, datasets=prepare_data(cells, context, world))
            identity = None
            if world.is_main and cells and _is_restoration(cells[0], context):
                identity = score_identity(cells[0], context)
        finally:
            tracker = opening.result()  # the store's error, if any, wins
    if world.is_main:
        settle_stale(tracker)
    context = start_parent(config, context, tracker, world)
    parent = context.parent_run_id
    records: list[CellRecord] = []
    try:
        if identity is not None:
            log_identity(identity, context, tracker)
        records = run_missing(cells, context, tracker, executor or InProcess(), world)
        if world.is_main:
            settle_lost(records, tracker, context)
    except KeyboardInterrupt:
        tracker.end(parent, KILLED)
        raise
    except Exception:  # a distributed cell failed on some rank: every rank stops
        tracker.end(parent, FAILED)
        raise
    seconds = time.perf_counter() - started
    result = GridResult(parent, records, identity, seconds)
    result.network_seconds = sum(r.network_seconds for r in records)
    result.failed = [r for r in records if r.status != FINISHED]
    if world.is_main:
        compare_cells(result, context, tracker)
    tracker.log_metrics(
        parent,
        {
            "harness/wall_seconds": seconds,
            "harness/network_seconds": result.network_seconds,
            "harness/overhead_fraction": result.overhead,
        },
    )
    tracker.end(parent, FAILED if result.failed else FINISHED)
    return result


def settle_stale(tracker: Tracker) -> None:
    stale = tracker.settle_stale()
    if stale:
        console.info(
            f"marked {len(stale)} run(s) FAILED whose process is gone: {', '.join(stale[:5])}"
        )


def start_parent(config: Config, context: RunContext, tracker: Tracker, world: World) -> RunContext:  # fmt: skip
    """The grid's parent run, with the code, hardware and package versions it ran on; the
    context its cells run in (their parent, the tags they share)."""
    env = environment()
    tags = {
        "git_commit": env["git"]["commit"] or "unknown",
        "git_dirty": env["git"]["dirty"],
        "device": context.device,
        "hardware": hardware(env, context.device),
        "profile": config.run.profile,
        "dataset": config.run.dataset,
        "run_kind": "grid",
        "world_size": world.size,
        **{f"version.{name}": version for name, version in env["packages"].items()},
        **{f"hardware.{key}": value for key, value in env["hardware"].items()},
    }
    parent = tracker.start(f"{config.run.dataset} {config.run.profile}", tags)
    tracker.log_params(parent, context.config)
    tracker.log_json(parent, context.config, "config.json")
    tracker.log_json(parent, env, "environment.json")
    child_tags = {k: v for k, v in tags.items() if k not in ("run_kind", "world_size")}
    return dataclasses.replace(context, parent_run_id=parent, tags=child_tags)


def run_missing(
    cells: list[Cell], context: RunContext, tracker: Tracker, executor: Executor, world: World
) -> list[CellRecord]:
    """Every cell's record, in order: with --resume, those the experiment finished already
    are read back (by rank 0, which tracks; every rank skips the same ones) and only the
    others run."""
    kept = finished_cells(cells, context, tracker) if context.resume and world.is_main else {}
    kept = gather(kept, world)[0]
    todo = [cell for index, cell in enumerate(cells) if index not in kept]
    done = iter(executor.run(todo, context) if todo else [])
    return [kept[index] if index in kept else next(done) for index in range(len(cells))]


def finished_cells(
    cells: list[Cell], context: RunContext, tracker: Tracker
) -> dict[int, CellRecord]:
    """--resume: the cells (by index) this experiment already finished under the same
    settings, as records read back from their runs, so only the missing cells run again."""
    kept = {}
    for index, cell in enumerate(cells):
        record = finished_record(cell, context, tracker)
        if record is not None:
            console.info(f"{cell.key}: finished in run {record.run_id}; --resume keeps it")
            kept[index] = record
    return kept


def compare_cells(result: GridResult, context: RunContext, tracker: Tracker) -> None:
    """Each finished cell against the identity baseline and the best cell of its seed, and
    each method's spread over seeds (bench.comparisons, docs/statistics.md); the intervals
    are logged on the cells' runs as ``interval/<protocol>/<metric>_vs_identity_ci_low`` and
    so on."""
    from bench.comparisons import compare_grid, seed_spreads
    from bench.protocols import get_protocol

    finished = {
        index: record
        for index, record in enumerate(result.records)
        if record.status == FINISHED and record.per_image is not None
    }
    if not finished:
        return
    protocol_name = next(iter(finished.values())).cell.protocol
    protocol = get_protocol(protocol_name, context.weights_dir)
    identity = result.identity.per_image if result.identity else None
    tables = {index: record.per_image for index, record in finished.items()}
    seeds = {index: record.cell.seed for index, record in finished.items()}
    console.info(f"intervals: {len(tables)} cell(s) against the input and their table's best")
    result.comparisons = compare_grid(tables, seeds, identity, protocol)
    methods = {index: record.cell.method for index, record in finished.items()}
    result.seed_spreads = seed_spreads(tables, methods, protocol)
    for index, record in finished.items():
        values = {}
        for comparison in result.comparisons.get(index, {}).values():
            values |= comparison.logged()
        for key, spread in result.seed_spreads.get(record.cell.method, {}).items():
            values |= spread.logged(key)
        if record.run_id and values:
            tracker.log_metrics(record.run_id, logged(protocol_name, values, "interval"))


def run_as_rank(
    config: Config,
    cells: list[Cell],
    context: RunContext,
    output: tuple[bool, bool],
    executor: Executor | None = None,
) -> GridResult | None:
    """This process's part of the grid: join the process group torchrun or ``--nproc``
    describes (alone: a world of one), silence every rank but 0, run the grid; rank 0's
    result, None on the other ranks."""
    world = join(context.device)
    console.state.quiet, console.state.json = output
    console.state.quiet |= not world.is_main
    result = run_grid(config, cells, context, executor)
    return result if world.is_main else None


def grid_worker(config: Config, cells: list[Cell], context: RunContext, output: tuple) -> Any:
    """One process of ``bench run --nproc N`` (``distributed.launch``): the whole grid,
    rank-aware; rank 0's result."""
    try:
        return run_as_rank(config, cells, context, output)
    finally:
        leave()


def prepare_data(cells: list[Cell], context: RunContext, world: World) -> dict[str, DataInUse]:
    """Each dataset of the grid resolved once (bench.data.use_dataset), on rank 0 and shared
    with the other ranks: missing synthetic suites generated before cells start side by side
    (parallel workers or ranks would race to write the same files), and the files checked
    against the lock once, so data changed since its lock stops the run before any
    training. A dataset that cannot be used is left out, for each cell to report."""
    from bench.data import use_dataset, use_user_datasets

    if context.user_datasets is not None:  # a --nproc worker reads the user's manifests again
        use_user_datasets(context.user_datasets)
    resolved = {}
    if world.is_main:
        for name in sorted({cell.dataset for cell in cells}):
            with contextlib.suppress(DataError):
                resolved[name] = use_dataset(name, context.data_root)
    return gather(resolved, world)[0]


def hardware(env: dict[str, Any], device: str) -> str:
    """The processor the numbers were measured on, for the report's Table 11."""
    if device in ("auto", "cuda") and env["gpus"]:
        return env["gpus"][0]["name"]
    return f"{env['cpu']} ({env['cpu_count']} cores)"


def _is_restoration(cell: Cell, context: RunContext) -> bool:
    from bench.data import get_dataset

    data = context.datasets.get(cell.dataset)
    return (data.spec if data else get_dataset(cell.dataset)).kind != "unpaired"
