"""Run one cell: train or load, sample the test split, score, profile, track.

:func:`run_cell` is a plain function of picklable arguments that returns a
:class:`CellRecord`, so any executor (in process, subprocesses, Slurm) can call it.
A failure inside the cell is recorded (run status FAILED, with the error) and returned,
never raised; Ctrl-C marks the run KILLED, keeps the checkpoint and propagates.
In a process group (bench.runner.distributed) every rank trains; rank 0 alone tracks,
samples and scores, and a failure is raised on every rank after it is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from bench import console
from bench.conventions import logged
from bench.data.pipeline import cell_pipeline
from bench.errors import BenchError
from bench.files import atomic_write, write_image
from bench.runner.cells import Cell
from bench.runner.distributed import World
from bench.runner.precision import autocast, compile_networks, native_bf16
from bench.runner.seeding import derived_seed, seed_everything
from bench.runner.train import NetworkClock, settings_difference, train
from bench.scoring import NativeFiles, Samples, native_predictions, score_samples
from bench.torch_files import load_torch_file
from bench.tracking import FAILED, FINISHED, KILLED, Tracker

if TYPE_CHECKING:  # types only: the runner builds these through their registries
    from baselines.base import Method
    from bench.data import DataInUse
    from bench.data.loaders import _SplitDataset
    from bench.data.spec import DatasetSpec
    from bench.metrics.result import MetricResult

#: images per row in the logged sample grid (input / output / ground truth columns)
GRID_ROWS = 4


@dataclass(frozen=True)
class RunContext:
    """What every cell of one invocation shares (all picklable)."""

    tracking_uri: str
    experiment: str
    parent_run_id: str | None
    data_root: Path
    weights_dir: Path
    results_dir: Path
    device: str
    resume: bool = False
    #: the grid's datasets, resolved and checked against their locks once before any cell
    #: (bench.runner.grid.prepare_data); a cell run without them resolves its own
    datasets: dict[str, DataInUse] = field(default_factory=dict)
    #: seconds each tracking call waits for a store that stopped answering (tracking.retry_minutes)
    tracking_patience: float = 600.0
    #: the folder of the user's dataset manifests (a worker process reads them again)
    user_datasets: Path | None = None
    #: --methods-from files (a worker process imports them again)
    methods_from: tuple[Path, ...] = ()
    checkpoint: Path | None = None  # load these weights instead of training
    weight_set: str = "ema"  # which weight set of the checkpoint: "ema" or "online"
    log_checkpoint: bool = False
    #: --trust-checkpoint: unpickle --checkpoint and --resume files fully (they can run code)
    trust_checkpoint: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellRecord:
    cell: Cell
    status: str
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    network_seconds: float = 0.0
    #: "64/540" when a subset of the test split was scored, else None
    subset: str | None = None
    #: the protocol's per-image scores (restoration), for the intervals of the grid's table
    per_image: pd.DataFrame | None = None


class NoTracking:
    """A tracker for ranks other than 0: every call does nothing, nothing touches the store."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def open_tracker(context: RunContext, world: World) -> Any:
    """The store's tracker on rank 0; :class:`NoTracking` elsewhere."""
    from bench.tracking import Tracker

    if not world.is_main:
        return NoTracking()
    # a cell of a grid whose parent run exists: the store answered before, so it waits
    waits = context.parent_run_id is not None
    return Tracker.open(context.tracking_uri, context.experiment, context.tracking_patience, waits)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8, rounded (what is saved as PNG and scored)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


#: cell fields that do not change the trained weights (sampling, evaluation, I/O cadence;
#: compile applies to sampling only)
_NOT_TRAINING = (
    "steps", "eta", "eval_images", "eval_batch_size", "checkpoint_every", "protocol", "compile",
    "audit", "eval_every",
)  # fmt: skip


def training_settings(cell: Cell) -> dict[str, Any]:
    """Everything of a cell that changes its trained weights, plus the harness version; a
    checkpoint is keyed by it and carries it (with the dataset fingerprint), so --resume
    never continues weights trained under other settings."""
    from bench import __version__

    settings = {k: v for k, v in cell.params().items() if k not in _NOT_TRAINING}
    return json.loads(json.dumps(settings | {"bench_version": __version__}, default=str))


def checkpoint_path(results_dir: Path, cell: Cell, experiment: str) -> Path:
    """``checkpoints/<experiment>/<dataset>/<method>/seed<seed>-<profile>-<settings hash>.pt``:
    --resume continues this experiment's grid, never a checkpoint another experiment left."""
    text = json.dumps(training_settings(cell), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    folder = results_dir / "checkpoints" / _folder_name(experiment) / cell.dataset / cell.method
    return folder / f"seed{cell.seed}-{cell.profile}-{digest}.pt"


def _folder_name(name: str) -> str:
    """An experiment name as one folder name (MLflow allows '/' and spaces in names)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def resume_problem(
    results_dir: Path, cell: Cell, experiment: str, trust: bool = False
) -> str | None:
    """Why --resume cannot continue ``cell``: only checkpoints trained under other settings
    exist for its dataset, method, seed and profile in this experiment. None when it can (or
    nothing exists). The checkpoints are read weights-only unless ``trust`` (results folders
    may be shared)."""
    path = checkpoint_path(results_dir, cell, experiment)
    if path.is_file():
        return None
    others = sorted(path.parent.glob(f"seed{cell.seed}-{cell.profile}-*.pt"))
    if not others:
        return None
    saved = load_torch_file(others[-1], trust=trust).get("settings") or {}
    # the data fingerprint is compared when the checkpoint is opened, after the data check
    current = training_settings(cell) | {"dataset_fingerprint": saved.get("dataset_fingerprint")}
    difference = settings_difference(saved, current) or "an older format"
    return (
        f"--resume: {cell.key} has a checkpoint ({others[-1]}) trained under other settings: "
        f"{difference}; drop --resume to train afresh, or resume with those settings"
    )


def build(cell: Cell, has_mask: bool, checkpoint: Any = None) -> Method:
    """The cell's method; with a checkpoint, its architecture and schedule as the file says
    (``bench.checkpoints.build_options``), which win over the profile and the paper settings."""
    from baselines import build_method

    settings = {
        "mask_channels": 1 if has_mask else 0,
        "unet_dim": cell.unet_dim,
        "unet_mults": cell.unet_mults,
        "image_size": cell.image_size,
        **cell.options,
    }
    if checkpoint is not None:
        from bench.checkpoints import build_options

        inferred = build_options(checkpoint, cell.image_size)
        if inferred.get("mask_channels", settings["mask_channels"]) != settings["mask_channels"]:
            raise BenchError(
                f"{checkpoint.path} was trained {'with' if inferred['mask_channels'] else 'without'}"
                f" a mask; dataset {cell.dataset} {'has' if has_mask else 'has no'} masks"
            )
        settings |= inferred
    return build_method(cell.method, **settings)


def apply_precision(method: Method, cell: Cell, device: torch.device) -> dict[str, str]:
    """Compile the networks when the cell asks for it (eager, with the reason, if that fails);
    return the tags every run records: precision, compilation, the hardware's bf16 support."""
    native = native_bf16(device)
    tags = {"precision": cell.precision, "native_bf16": native or "none", "compile": "no"}
    if cell.precision == "bf16" and native is None:
        console.warn(f"{device.type} has no native bf16 (AMX, AVX-512 BF16 or a GPU): bf16 "
                     "is emulated here and slower than fp32")  # fmt: skip
    if cell.compile:
        examples = {
            name: method.example_inputs(name, 1, cell.image_size) for name in method.networks()
        }
        with autocast(cell.precision, device):
            failure = compile_networks(method.networks(), examples)
        tags["compile"] = "yes" if failure is None else f"no: {failure}"
        if failure is not None:
            console.warn(f"torch.compile failed, running eager: {failure}")
    return tags


def sample_split(method: Method, split: _SplitDataset, cell: Cell, device: torch.device) -> Samples:
    """Sample every test image (the first ``cell.eval_images``), batched."""
    count = len(split) if cell.eval_images == 0 else min(cell.eval_images, len(split))
    generator = torch.Generator(device=device).manual_seed(derived_seed(cell.seed, "sampling"))
    outputs: dict[str, list] = {"pred": [], "input": [], "target": [], "mask": []}
    names: list[str] = []
    native = NativeFiles() if hasattr(split, "native") else None  # paired data: its files
    method.eval()
    with console.progress_bar(f"sampling {getattr(method, 'name', cell.method)}", count) as advance:
        for start in range(0, count, cell.eval_batch_size):
            items = [split[i] for i in range(start, min(start + cell.eval_batch_size, count))]
            batch = {role: _stacked(items, role) for role in ("target", "input", "mask")}
            with torch.no_grad(), autocast(cell.precision, device):
                pred = method.sample(
                    _on(batch["input"], device),
                    mask=_on(batch["mask"], device),
                    shape=tuple(batch["target"].shape),
                    steps=cell.steps,
                    eta=cell.eta,
                    generator=generator,
                )
            outputs["pred"].append(to_uint8(pred.cpu()))
            outputs["target"].append(to_uint8(batch["target"]))
            if batch["input"] is not None:
                outputs["input"].append(to_uint8(batch["input"]))
            if batch["mask"] is not None:
                outputs["mask"].append((batch["mask"] > 0.5).to(torch.uint8) * 255)
            names += [item["name"] for item in items]
            if native is not None:
                _read_native(split, range(start, start + len(items)), native)
            advance(len(items))
    batched = {key: torch.cat(value) if value else None for key, value in outputs.items()}
    return Samples(names=names, split_size=len(split), native=native, **batched)


def _stacked(items: list[dict[str, Any]], role: str) -> torch.Tensor | None:
    """The items' tensors of ``role`` as one batch; None when the data has no such role."""
    return torch.stack([item[role] for item in items]) if role in items[0] else None


def _on(tensor: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device)


def _read_native(split: _SplitDataset, indices: range, native: NativeFiles) -> None:
    """The images' ground truth, masks and (for the sample grid's rows) inputs as their
    files hold them, with the size the loader padded each to."""
    for index in indices:
        roles = ("target", "mask") + (("input",) if index < GRID_ROWS else ())
        files = split.native(index, roles)
        native.targets.append(torch.from_numpy(files["target"]).permute(2, 0, 1))
        if "mask" in files:
            native.masks.append(torch.from_numpy(files["mask"])[None])
        if "input" in files:
            native.inputs.append(torch.from_numpy(files["input"]).permute(2, 0, 1))
        native.padded.append(split.padded_shape(*files["target"].shape[:2]))


def score(
    cell: Cell, samples: Samples, weights_dir: Path, device: torch.device, spec: DatasetSpec
) -> MetricResult:
    """Score with the cell's protocol, set as the dataset sets it (a super-resolution
    scale): a restoration protocol image by image against the files at their own size, a
    generation protocol (FID / IS / KID) on the whole set."""
    from bench.protocols import get_protocol

    protocol = get_protocol(cell.protocol, weights_dir, str(device), **spec.protocol_options)
    return score_samples(protocol, samples)


def audit_metrics(
    cell: Cell,
    samples: Samples,
    scores: MetricResult,
    context: RunContext,
    device: torch.device,
    spec: DatasetSpec,
) -> dict[str, float]:
    """The protocol audit of a cell's outputs as logged: the rows (``audit/<protocol>/<title>``)
    and every value of each variant protocol (``audit/istd-origin/psnr_s``, ...), which the
    paper tables scored at another resolution or in another colour space read."""
    from bench.audit import audit_rows, to_metrics
    from bench.conventions import base_of
    from bench.protocols.audit_scoring import audit_summaries

    summaries, table = audit_summaries(
        cell.protocol, lambda protocol: score_samples(protocol, samples),
        context.weights_dir, str(device), known=scores, options=spec.protocol_options,
    )  # fmt: skip
    metrics = to_metrics(audit_rows(base_of(cell.protocol), summaries, table))
    for name, summary in summaries.items():
        if name != cell.protocol:
            metrics |= logged(name, summary, "audit")
    return metrics


def curve_metrics(cell: Cell, summary: dict[str, float]) -> dict[str, float]:
    """``curve/<protocol>/<metric>`` of the protocol's headline metrics (every summary value
    for a generation protocol's set metrics): one point of the learning curve."""
    from bench.conventions import HEADLINES, base_of

    keys = [spec.key for spec in HEADLINES.get(base_of(cell.protocol), ())] or list(summary)
    return logged(cell.protocol, {key: summary[key] for key in keys if key in summary}, "curve")


def grid_images(samples: Samples) -> dict[str, dict[str, np.ndarray]]:
    """The first GRID_ROWS test images by name: ``input``, ``output`` and ``target`` as
    (H, W, 3) uint8 at the files' size where the data has files (the loader's otherwise)."""
    count = min(GRID_ROWS, len(samples.names))
    native = samples.native
    outputs = native_predictions(samples) if native is not None else {}
    found: dict[str, dict[str, np.ndarray]] = {}
    for index, name in enumerate(samples.names[:count]):
        roles = {
            "input": native.inputs[index] if native is not None and native.inputs else (
                samples.input[index] if samples.input is not None else None),
            "output": outputs.get(name, samples.pred[index]),
            "target": native.targets[index] if native is not None else samples.target[index],
        }  # fmt: skip
        found[name] = {  # greyscale shown in three channels, beside the colour columns
            role: np.ascontiguousarray(image.expand(3, -1, -1).permute(1, 2, 0).numpy())
            for role, image in roles.items()
            if image is not None
        }
    return found


def sample_grid(
    images: dict[str, dict[str, np.ndarray]], protocol: str, per_image: pd.DataFrame, path: Path
) -> None:
    """Input | output | ground truth for the first test images, captioned with each image's
    name and its per-image headline score."""
    from bench.image_grid import Tile, labelled_grid, per_image_caption

    headers = {"input": "input", "output": "output", "target": "ground truth"}
    roles = [role for role in headers if any(role in found for found in images.values())]
    rows = []
    for name, found in images.items():
        score = per_image_caption(protocol, per_image, name)
        captions = {"input": name, "output": score if "input" in roles else f"{name} {score}"}
        rows.append([Tile(found.get(role), captions.get(role, "")) for role in roles])
    write_image(path, labelled_grid([headers[role] for role in roles], rows))


class Phases:
    """Wall time per phase of a cell (setup, train, sample, score, cost, log)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def metrics(self) -> dict[str, float]:
        return {f"harness/{name}_seconds": value for name, value in self.seconds.items()}


def run_name(cell: Cell) -> str:
    return f"{cell.method} seed{cell.seed}"


def cell_tags(cell: Cell, context: RunContext) -> dict[str, Any]:
    """The tags a cell's MLflow run carries (what `bench report` selects runs by)."""
    tags = {**context.tags, "cell": cell.key, "method": cell.method, "dataset": cell.dataset}
    tags |= {
        "seed": cell.seed,
        "profile": cell.profile,
        "protocol": cell.protocol,
        "task": cell.task,
    }
    tags |= {"cell_settings": cell_settings(cell, context)}
    return tags | {"device": context.device, "run_kind": "cell"}


def cell_settings(cell: Cell, context: RunContext) -> str:
    """Everything that decides a cell's numbers, hashed: its settings, the weights it loads
    and bench's version. A FINISHED run carrying the same digest is the cell done, which
    --resume keeps instead of running it again."""
    from bench import __version__

    loaded = {"checkpoint": str(context.checkpoint or ""), "weight_set": context.weight_set}
    parts = {"cell": cell.params(), "loaded": loaded, "bench_version": __version__}
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def finished_record(
    cell: Cell, context: RunContext, tracker: Tracker, parent: str | None = None
) -> CellRecord | None:
    """The latest FINISHED run of ``cell`` under the same settings (:func:`cell_settings`) in
    this experiment (under ``parent`` when given), read back as its record: its protocol's
    metrics, what was unavailable, and its per-image scores for the grid's intervals."""
    query = (
        f"tags.run_kind = 'cell' AND tags.cell_settings = '{cell_settings(cell, context)}' "
        "AND attributes.status = 'FINISHED'"
    )
    if parent is not None:
        query += f" AND tags.mlflow.parentRunId = '{parent}'"
    runs = tracker.client.search_runs(
        [tracker.experiment_id], query, max_results=1, order_by=["attributes.start_time DESC"]
    )
    if not runs:
        return None
    run = runs[0]
    record = CellRecord(cell, FINISHED, run.info.run_id)
    prefix = f"{cell.protocol}/"
    record.metrics = {k: v for k, v in run.data.metrics.items() if k.startswith(prefix)}
    record.unavailable = {
        k.removeprefix("unavailable."): v
        for k, v in run.data.tags.items()
        if k.startswith(f"unavailable.{prefix}")
    }
    if run.data.tags.get("eval_subset") == "yes":
        record.subset = run.data.tags.get("eval_images")
    record.per_image = tracker.read_csv(run.info.run_id, "per_image.csv")
    return record


def run_cell(cell: Cell, context: RunContext) -> CellRecord:
    """Train or load, sample, score, profile and log one cell; never raises on failure."""
    from baselines.registry import load_file
    from bench.audit import auditable
    from bench.conventions import base_of
    from bench.cost import cost_metrics, measure_cost
    from bench.data import open_split, use_dataset, use_user_datasets

    if context.user_datasets is not None:
        use_user_datasets(context.user_datasets)
    for path in context.methods_from:
        load_file(path)
    started = time.perf_counter()
    world = World.current()
    tracker = open_tracker(context, world)
    tags = cell_tags(cell, context) | {"world_size": world.size}
    run_id = tracker.start(run_name(cell), tags, parent=context.parent_run_id)
    record = CellRecord(cell, FAILED, run_id)
    phase = Phases()
    clock = None
    try:
        with phase("setup"):
            seed_everything(cell.seed)
            device = resolve_device(context.device)
            data = context.datasets.get(cell.dataset) or use_dataset(cell.dataset, context.data_root)  # fmt: skip
            spec, root, data_fingerprint = data.spec, data.root, data.fingerprint
            log_setup(tracker, run_id, cell, context, spec, root, data_fingerprint)
            method, loaded = built_method(cell, spec, context, tracker, run_id)
            method = method.to(device)
            clock = NetworkClock(method.networks())
            # scored at the end, and along the way with --eval-every: listed once
            pipeline = cell_pipeline(cell.pipeline, dict(spec.preprocess))
            test_size, test_options = pipeline.test_options(cell.image_size)
            test_split = open_split(
                cell.dataset, root, spec.test_split, test_size, train=False, **test_options
            )
        if loaded is None:
            with phase("train"):
                ema = train_cell(
                    method, cell, spec, root, test_split, device, clock, context, tracker,
                    run_id, data_fingerprint,
                )  # fmt: skip
            # sample with the EMA weights, as the papers do
            method.load_state_dict(ema.model.state_dict())
        if not world.is_main:  # rank 0 samples, scores and logs alone
            record.status = FINISHED
            return record
        with phase("compile"):  # after training: the EMA copies the eager networks
            tracker.set_tags(run_id, apply_precision(method, cell, device))
        with phase("sample"):
            samples = sample_split(method, test_split, cell, device)
            subset = samples.subset_tags()
            tracker.set_tags(run_id, subset)
            record.subset = subset["eval_images"] if subset["eval_subset"] == "yes" else None
        with phase("score"):
            scores = score(cell, samples, context.weights_dir, device, spec)
            keep_scores(record, scores)
            if cell.eval_every:  # the learning curve ends at the run's own numbers
                curve = curve_metrics(cell, scores.summary)
                tracker.log_metrics(run_id, curve, step=cell.iterations)
        if cell.audit and auditable(base_of(cell.protocol)):
            with phase("audit"):
                tracker.log_metrics(
                    run_id, audit_metrics(cell, samples, scores, context, device, spec)
                )
        with phase("cost"), autocast(cell.precision, device):
            cost = measure_cost(method, cell.image_size, cell.steps, device)
        with phase("log"):
            tracker.log_metrics(run_id, {**record.metrics, **cost_metrics(cost)})
            tracker.set_tags(run_id, {f"unavailable.{k}": v for k, v in record.unavailable.items()})
            log_outputs(tracker, run_id, context.results_dir / "runs" / run_id, samples, scores)
            tracker.log_json(run_id, cost, "cost.json")
        record.status = FINISHED
    except KeyboardInterrupt:
        record.status, record.error = KILLED, "interrupted (Ctrl-C); resume with --resume"
        tracker.set_tags(run_id, {"error": record.error})
        tracker.end(run_id, KILLED)
        raise
    except Exception as error:  # a failed cell must not stop the grid
        record.error = f"{type(error).__name__}: {error}"
        tracker.set_tags(
            run_id, {"error": record.error[:5000], "traceback": traceback.format_exc()[-5000:]}
        )
        if world.distributed:  # the other ranks cannot skip this cell in step: stop them all
            tracker.end(run_id, FAILED)
            raise
    finally:
        if clock is not None:
            clock.close()
            record.network_seconds = clock.seconds
        record.seconds = time.perf_counter() - started
    timing = {
        "harness/cell_seconds": record.seconds,
        "harness/network_seconds": record.network_seconds,
    }
    tracker.log_metrics(run_id, {**timing, **phase.metrics()})
    tracker.end(run_id, record.status)
    return record


def log_setup(
    tracker: Tracker,
    run_id: str,
    cell: Cell,
    context: RunContext,
    spec: Any,
    root: Path,
    data_fingerprint: str,
) -> None:
    """What a reader of the run needs before anything trains: the data and its fingerprint,
    the split rule, the settings, the data pipeline, whether checkpoints were unpickled."""
    tracker.set_tags(run_id, {"dataset_fingerprint": data_fingerprint})
    purpose = "evaluation" if context.checkpoint is not None else "training"
    tracker.log_dataset(run_id, cell.dataset, data_fingerprint, root, purpose)
    if context.trust_checkpoint:  # a reader must know this run unpickled fully
        tracker.set_tags(run_id, {"trust_checkpoint": "true"})
    if spec.split_rule is not None:
        tracker.set_tags(run_id, {"dataset_split_rule": spec.split_rule})
    tracker.log_params(run_id, {"cell": cell.params(), "config": context.config})
    # whose data pipeline trained and tested it (cell.pipeline.* has the settings)
    source = cell_pipeline(cell.pipeline, dict(spec.preprocess)).source
    tracker.set_tags(run_id, {"pipeline": source})


def built_method(
    cell: Cell, spec: Any, context: RunContext, tracker: Tracker, run_id: str
) -> tuple[Method, Any]:
    """The cell's method, with the --checkpoint's weights loaded (and named on the run) when
    one is given; the checkpoint read, or None when the method trains."""
    if context.checkpoint is None:
        return build(cell, spec.has_mask), None
    from bench.checkpoints import build_options, load_weights, read_checkpoint

    loaded = read_checkpoint(context.checkpoint, context.trust_checkpoint)
    method = build(cell, spec.has_mask, loaded)
    used = load_weights(method, loaded, context.weight_set)
    tracker.set_tags(
        run_id,
        {
            "weights": str(context.checkpoint),
            "weights.format": loaded.format,
            "weights.set": used,
            "weights.options": str(build_options(loaded, cell.image_size)),
        },
    )
    return method, loaded


def keep_scores(record: CellRecord, scores: MetricResult) -> None:
    """The record's logged metrics, unavailable ones, and per-image scores."""
    record.metrics = logged(record.cell.protocol, scores.summary)
    record.unavailable = logged(record.cell.protocol, scores.unavailable)
    record.per_image = scores.per_image


def train_cell(
    method, cell, spec, root, test_split, device, clock, context, tracker, run_id, data_fingerprint
):
    """Train with a progress bar; log the loss curves; return the EMA."""
    from bench.data import open_split

    pipeline = cell_pipeline(cell.pipeline, dict(spec.preprocess))
    train_size, train_options = pipeline.train_options(cell.image_size)
    train_split = open_split(
        cell.dataset, root, spec.train_split, train_size, train=True, **train_options
    )
    checkpoint = checkpoint_path(context.results_dir, cell, context.experiment)
    settings = training_settings(cell) | {"dataset_fingerprint": data_fingerprint}
    on_eval = None
    if cell.eval_every and World.current().is_main:

        def on_eval(iteration: int, ema: Any) -> None:
            with console.quiet():
                samples = sample_split(ema.model, test_split, cell, device)
                scores = score(cell, samples, context.weights_dir, device, spec)
            tracker.log_metrics(run_id, curve_metrics(cell, scores.summary), step=iteration)

    with console.progress_bar(f"training {cell.method}", cell.iterations) as advance:
        result, ema = train(
            method, train_split, cell, device, checkpoint, context.resume, clock,
            on_step=lambda iteration, parts: advance(loss=float(parts["loss"])),
            settings=settings, on_eval=on_eval, trust=context.trust_checkpoint, run_id=run_id,
        )  # fmt: skip
    for name in result.losses[0][1] if result.losses else ():
        tracker.log_history(run_id, f"train/{name}", [(i, p[name]) for i, p in result.losses])
    tracker.log_metrics(run_id, {"train/seconds": result.seconds})
    if result.resumed_from:
        resumed = {"resumed_from_iteration": result.resumed_from, "resumed_from": checkpoint}
        if result.resumed_run:  # the run that wrote the checkpoint (the report links it)
            resumed["resumed_from_run"] = result.resumed_run
        tracker.set_tags(run_id, resumed)
    if context.log_checkpoint:
        tracker.log_file(run_id, checkpoint, "checkpoint")
    return ema


def log_outputs(
    tracker: Tracker, run_id: str, folder: Path, samples: Samples, scores: MetricResult
) -> None:
    """Sample PNGs on disk, at the loader's size and at the files' (re-scorable with `bench
    score`, the audit included); CSV, grid and scoring record logged."""
    for image, name in zip(samples.pred, samples.names, strict=True):
        write_image(folder / "samples" / f"{name}.png", image.permute(1, 2, 0).numpy())
    tracker.set_tags(run_id, {"samples_dir": str(folder / "samples")})
    if samples.native is not None:  # the predictions at the files' size, as they were scored
        for name, image in native_predictions(samples).items():
            write_image(folder / "samples_native" / f"{name}.png", image.permute(1, 2, 0).numpy())
        tracker.set_tags(run_id, {"samples_native_dir": str(folder / "samples_native")})
    with atomic_write(folder / "per_image.csv", "w") as handle:
        scores.per_image.to_csv(handle, index=False)
    images = grid_images(samples)
    sample_grid(
        images, scores.meta.get("protocol", ""), scores.per_image, folder / "sample_grid.png"
    )
    for artifact in ("per_image.csv", "sample_grid.png"):
        tracker.log_file(run_id, folder / artifact)
    # the tiles `bench report` lays side by side, one column per method
    for name, found in images.items():
        for role, image in found.items():
            path = folder / "grid" / f"{name}__{role}.png"
            write_image(path, image)
            tracker.log_file(run_id, path, "grid")
    tracker.log_json(run_id, scores.meta, "scoring.json")
