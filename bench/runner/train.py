"""Training one cell: the RDDM template's loop (docs/methods.md §6), resumable bit for bit.

Adam with betas (0.9, 0.99), gradient-norm clip 1.0, gradient accumulation, EMA.
The batch order is a pure function of (seed, iteration), and every random stream
(Python, numpy, torch, the method's generator) is saved in each checkpoint, so a run
interrupted and resumed from its last checkpoint ends with exactly the weights of an
uninterrupted one. Under DistributedDataParallel each rank trains on its shard of every
global batch (bench.runner.distributed); rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench import console
from bench.errors import BenchError
from bench.files import atomic_write
from bench.runner.cells import Cell
from bench.runner.distributed import (
    LossFunction,
    World,
    gather,
    mean_over_ranks,
    rank_seed,
    shard,
)
from bench.runner.ema import EMA
from bench.runner.precision import autocast
from bench.runner.seeding import derived_seed, rng_state, seed_everything, set_rng_state
from bench.torch_files import load_torch_file

GRAD_CLIP = 1.0
ADAM_BETAS = (0.9, 0.99)


class NonFiniteLoss(BenchError):
    """The loss became NaN or inf; training stopped and the cell fails."""


class NetworkClock:
    """Time spent inside the networks' forward and backward passes.

    Forward time comes from hooks on the outermost network calls; backward time is
    measured around ``loss.backward()``. Everything else is harness overhead.
    """

    def __init__(self, networks: dict[str, nn.Module]) -> None:
        self.seconds = 0.0
        self._depth = 0
        self._started = 0.0
        self._handles = []
        for network in networks.values():
            self._handles.append(network.register_forward_pre_hook(self._enter))
            self._handles.append(network.register_forward_hook(self._leave))

    def _enter(self, *_: Any) -> None:
        if self._depth == 0:
            self._sync()
            self._started = time.perf_counter()
        self._depth += 1

    def _leave(self, *_: Any) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._sync()
            self.seconds += time.perf_counter() - self._started

    def _sync(self) -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def backward(self, loss: torch.Tensor) -> None:
        self._sync()
        started = time.perf_counter()
        loss.backward()
        self._sync()
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


@dataclass
class TrainResult:
    iterations: int
    losses: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    resumed_from: int = 0
    #: the tracked run that wrote the checkpoint resumed from (None: not resumed, or unknown)
    resumed_run: str | None = None
    seconds: float = 0.0

    def resume_at(self, state: dict) -> None:
        """Continue from a checkpoint's iteration and loss history."""
        self.iterations = self.resumed_from = state["iteration"]
        self.resumed_run = state.get("run_id")
        self.losses = state["losses"]


class BatchOrder:
    """Which samples form each batch: a fresh permutation per epoch, seeded by (seed, epoch)."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        if size == 0:
            raise BenchError("the training split is empty")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, batch_number: int) -> list[int]:
        out = []
        for k in range(batch_number * self.batch_size, (batch_number + 1) * self.batch_size):
            epoch, position = divmod(k, self.size)
            if epoch != self._epoch:
                generator = torch.Generator().manual_seed(derived_seed(self.seed, f"data/{epoch}"))
                self._epoch, self._perm = epoch, torch.randperm(self.size, generator=generator)
            out.append(int(self._perm[position]))
        return out


def collate(items: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        batch[key] = torch.stack(values).to(device) if torch.is_tensor(values[0]) else values
    return batch


def settings_difference(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """``key=saved (now current)`` for every setting that differs."""
    keys = sorted(set(saved) | set(current))
    return ", ".join(
        f"{k}={saved.get(k, '(unset)')} (now {current.get(k, '(unset)')})"
        for k in keys
        if saved.get(k) != current.get(k)
    )


def checkpoint_state(
    method: nn.Module, ema: EMA, optimizer, streams: list[dict[str, Any]], result: TrainResult
) -> dict:
    """``streams``: every rank's random streams, in rank order (one entry alone)."""
    return {
        "iteration": result.iterations,
        "model": method.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "streams": streams[0],
        "rank_streams": streams,
        "losses": result.losses,
    }


def resumed_streams(state: dict, world: World) -> dict[str, Any]:
    """This rank's streams from a checkpoint; the number of processes must not change."""
    saved = state.get("rank_streams", [state["streams"]])
    if len(saved) != world.size:
        raise BenchError(
            f"the checkpoint was written by {len(saved)} training process(es), this run has "
            f"{world.size}; resume with --nproc {len(saved)}"
        )
    return saved[world.rank]


def random_streams(generator: torch.Generator) -> dict[str, Any]:
    """Every random stream training draws from, as of now."""
    return {"generator": generator.get_state(), "rng": rng_state()}


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_write(path) as handle:
        torch.save(state, handle)


@dataclass(frozen=True)
class Checkpoints:
    """Where training keeps its checkpoints (None: nowhere), whether this rank writes them,
    and what each one records besides the state (the settings, the run writing it)."""

    path: Path | None
    writes: bool
    record: dict[str, Any]

    def due(self, iteration: int, cell: Cell) -> bool:
        return self.path is not None and checkpoints_at(iteration, cell)

    def save(self, state: dict) -> None:
        if self.path is not None and self.writes:
            save_checkpoint(self.path, state | self.record)


def restore(
    state: dict,
    checkpoint: Path,
    settings: dict[str, Any] | None,
    key: str,
    trained: tuple[nn.Module, EMA, torch.optim.Optimizer, torch.Generator],
    world: World,
) -> None:
    """Load a checkpoint's weights, EMA, optimizer and random streams into ``trained``;
    one saved under other ``settings`` is refused with the differences named."""
    if settings is not None and state.get("settings") != settings:
        raise BenchError(
            f"--resume: {checkpoint} was trained under other settings: "
            f"{settings_difference(state.get('settings') or {}, settings)}; drop --resume "
            "to train afresh"
        )
    console.info(f"{key}: resuming from {checkpoint} at iteration {state['iteration']}")
    method, ema, optimizer, generator = trained
    method.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    streams = resumed_streams(state, world)
    generator.set_state(streams["generator"])
    set_rng_state(streams["rng"])


def accumulate_gradients(
    loss_function: LossFunction,
    batches: Iterable[dict[str, torch.Tensor]],
    generator: torch.Generator,
    cell: Cell,
    device: torch.device,
    clock: NetworkClock | None,
) -> dict[str, torch.Tensor]:
    """Backward through each of the iteration's ``cell.grad_accumulation`` micro-batches;
    the loss parts averaged over them."""
    parts_sum: dict[str, torch.Tensor] = {}
    for micro, batch in enumerate(batches):
        with loss_function.accumulating(last=micro == cell.grad_accumulation - 1):
            with autocast(cell.precision, device):
                parts = loss_function(batch, generator)
            loss = parts["loss"] / cell.grad_accumulation
            if clock is not None:
                clock.backward(loss)
            else:
                loss.backward()
        for name, value in parts.items():
            parts_sum[name] = parts_sum.get(name, 0.0) + value.detach() / cell.grad_accumulation
    return parts_sum


def check_finite(loss: float, key: str, iteration: int) -> None:
    if not math.isfinite(loss):
        raise NonFiniteLoss(
            f"{key}: loss became {loss} at iteration {iteration}; "
            "lower the learning rate or check the data"
        )


def evaluates_at(iteration: int, cell: Cell) -> bool:
    """A learning-curve point every ``eval_every`` iterations, before the last (the run's
    own scores end the curve)."""
    return bool(cell.eval_every) and iteration % cell.eval_every == 0 and iteration < cell.iterations  # fmt: skip


def checkpoints_at(iteration: int, cell: Cell) -> bool:
    return iteration % cell.checkpoint_every == 0 or iteration == cell.iterations


def iteration_batches(
    dataset: torch.utils.data.Dataset,
    order: BatchOrder,
    iteration: int,
    cell: Cell,
    world: World,
    device: torch.device,
) -> Iterator[dict[str, torch.Tensor]]:
    """The iteration's micro-batches, this rank's share of each, read as they are needed."""
    first = (iteration - 1) * cell.grad_accumulation
    for number in range(first, first + cell.grad_accumulation):
        yield collate([dataset[i] for i in shard(order.indices(number), world)], device)


def train(
    method: nn.Module,
    dataset: torch.utils.data.Dataset,
    cell: Cell,
    device: torch.device,
    checkpoint: Path | None = None,
    resume: bool = False,
    clock: NetworkClock | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    world: World | None = None,
    settings: dict[str, Any] | None = None,
    on_eval: Callable[[int, EMA], None] | None = None,
    trust: bool = False,
    run_id: str | None = None,
) -> tuple[TrainResult, EMA]:
    """Train ``method`` for ``cell.iterations``; return the loss history and the EMA.

    In a process group (``world``, by default the initialised one) every rank calls this
    with the same arguments; the logged losses are those of the global batch. ``settings``
    (what the weights depend on) is saved in each checkpoint; resuming from one saved under
    other settings is refused with the differences named. ``on_eval(iteration, ema)`` is
    called every ``cell.eval_every`` iterations before the last (the learning curve).
    The checkpoint resumed from is read weights-only unless ``trust`` (``bench.torch_files``);
    each checkpoint records ``run_id``, the tracked run writing it, so a resumed run names
    the run it continued.
    """
    world = world or World.current()
    method.to(device).train()
    if world.distributed:
        seed_everything(rank_seed(cell.seed, "global", world))  # augmentations differ by rank
        shard([0] * cell.batch_size, world)  # refuse a batch that does not split, up front
    loss_function = LossFunction(method, world, device)  # DDP: rank 0's weights on every rank
    # fused: one kernel over all parameters; on CPU 3-4x faster than foreach for the smoke
    # UNets (1.6 against 6.0 ms per step), and every optimizer step is harness overhead
    parameters = list(method.parameters())  # once: the module walk costs ms per call
    optimizer = torch.optim.Adam(parameters, lr=cell.lr, betas=ADAM_BETAS, fused=True)
    ema = EMA(method, cell.ema_decay, cell.ema_every, cell.ema_start)
    generator = torch.Generator(device=device).manual_seed(rank_seed(cell.seed, "diffusion", world))
    order = BatchOrder(len(dataset), cell.batch_size, cell.seed)
    result = TrainResult(iterations=0)

    if resume and checkpoint is not None and checkpoint.is_file():
        state = load_torch_file(checkpoint, trust=trust, map_location=device)
        restore(state, checkpoint, settings, cell.key, (method, ema, optimizer, generator), world)
        result.resume_at(state)

    started = time.perf_counter()
    keeping = Checkpoints(checkpoint, world.is_main, {"settings": settings, "run_id": run_id})
    stepping = False  # True while weights are being updated: no consistent state to save
    streams = random_streams(generator)  # as of the end of the last whole iteration
    try:
        for iteration in range(result.iterations + 1, cell.iterations + 1):
            optimizer.zero_grad(set_to_none=True)
            batches = iteration_batches(dataset, order, iteration, cell, world, device)
            parts_sum = accumulate_gradients(loss_function, batches, generator, cell, device, clock)  # fmt: skip
            # the global batch's loss, the same on every rank, so all ranks stop together
            parts_mean = mean_over_ranks(parts_sum, world)
            check_finite(parts_mean["loss"], cell.key, iteration)
            stepping = True
            torch.nn.utils.clip_grad_norm_(parameters, GRAD_CLIP)
            optimizer.step()
            method.training_step_hook(iteration)
            ema.step(iteration)
            result.iterations = iteration
            result.losses.append((iteration, parts_mean))
            streams = random_streams(generator)
            stepping = False
            if on_step is not None:
                on_step(iteration, parts_mean)
            if on_eval is not None and evaluates_at(iteration, cell):
                on_eval(iteration, ema)
            if keeping.due(iteration, cell):
                every_rank = gather(random_streams(generator), world)
                keeping.save(checkpoint_state(method, ema, optimizer, every_rank, result))
    except KeyboardInterrupt:
        # Leave a resumable checkpoint at the last whole iteration, with the random streams
        # as they were then. Interrupted mid-update, the periodic checkpoint stays instead;
        # so it does under DDP, where the other ranks' streams cannot be gathered any more.
        whole = not world.distributed and not stepping
        if whole and result.iterations > result.resumed_from:
            keeping.save(checkpoint_state(method, ema, optimizer, [streams], result))
        raise
    result.seconds = time.perf_counter() - started
    return result, ema
