"""One cell trained by several processes with PyTorch's DistributedDataParallel.

Launch with ``bench run --nproc N ...`` (N workers on this machine through torch's
elastic launcher, the engine behind ``torchrun``) or with ``torchrun --nproc_per_node N
-m bench run ...`` (several nodes too). Every process runs the same grid, cell by cell:

* The profile's ``batch_size`` is the *global* batch. Each rank takes a contiguous 1/N
  shard of :class:`~bench.runner.train.BatchOrder`'s batch, so the union over ranks is
  the single-process batch; DDP averages the gradients, which equals the gradient of
  the mean loss over the global batch.
* Each rank draws its diffusion noise (and any augmentation) from its own stream,
  seeded by ``derived_seed(cell.seed, "<stream>/rank<r>")``; one process keeps the
  single-process streams, so ``--nproc 1`` is today's run bit for bit.
* Rank 0 alone opens the MLflow store, writes checkpoints (with every rank's random
  streams, gathered), samples the test split, scores and logs. The other ranks never
  touch the store; they leave a cell once training ends and wait for rank 0 in the next
  one. Sampling on one rank keeps a cell's metrics a function of its weights alone (the
  sampling stream does not depend on N); every test image is on rank 0 before scoring.
* A failure in a distributed cell stops the grid: the ranks cannot safely agree to skip
  it, so the exception leaves every process and the launcher stops the rest.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from bench.errors import BenchError
from bench.runner.seeding import derived_seed

#: How long ranks wait for each other. Between cells the other ranks wait while rank 0
#: samples and scores the test split alone, which can take long on paper settings.
WAIT = timedelta(hours=4)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes of a cell."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @classmethod
    def current(cls) -> World:
        """The initialised process group, or a world of one."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()


def join(device: str) -> World:
    """Join the process group that torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    Backend nccl when the cells run on CUDA, gloo on CPU. Alone (no WORLD_SIZE above 1)
    this does nothing and returns a world of one.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return World.current()
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=WAIT)
    return World.current()


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def shard(indices: list[int], world: World) -> list[int]:
    """This rank's contiguous part of a global batch (the parts' union is the batch)."""
    if len(indices) % world.size:
        raise BenchError(
            f"the global batch of {len(indices)} does not split over {world.size} processes; "
            f"set batch_size in the profile to a multiple of {world.size}"
        )
    size = len(indices) // world.size
    return indices[world.rank * size : (world.rank + 1) * size]


def rank_seed(seed: int, stream: str, world: World) -> int:
    """A seed per (purpose, rank); one process keeps the single-process seed."""
    return derived_seed(seed, stream if not world.distributed else f"{stream}/rank{world.rank}")


class _Loss(nn.Module):
    """``method.loss`` as a forward pass: DDP synchronises gradients of forward calls only."""

    def __init__(self, method: nn.Module) -> None:
        super().__init__()
        self.method = method

    def forward(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        return self.method.loss(batch, generator=generator)


class LossFunction:
    """Computes a method's loss; under DDP its backward averages gradients across ranks."""

    def __init__(self, method: nn.Module, world: World, device: torch.device) -> None:
        self.world = world
        if world.distributed:
            ids = None
            if device.type == "cuda":
                ids = [torch.cuda.current_device() if device.index is None else device.index]
            # find_unused_parameters: a method may stop training a parameter mid-run
            # (RDDM's AOSA freezes lambda once it has decided; Algorithm 2).
            self.module: nn.Module = nn.parallel.DistributedDataParallel(
                _Loss(method),
                device_ids=ids,
                find_unused_parameters=True,
            )
        else:
            self.module = _Loss(method)

    def __call__(self, batch: dict[str, Any], generator: torch.Generator | None):
        return self.module(batch, generator=generator)

    def accumulating(self, last: bool):
        """No gradient exchange before the last micro-batch of an optimizer step."""
        if self.world.distributed and not last:
            return self.module.no_sync()
        return nullcontext()


def mean_over_ranks(values: dict[str, torch.Tensor], world: World) -> dict[str, float]:
    """Scalars averaged over ranks (one all-reduce): the global batch's loss parts."""
    names = sorted(values)
    stacked = torch.stack([values[name].detach().float() for name in names])
    if world.distributed:
        dist.all_reduce(stacked)
        stacked /= world.size
    return dict(zip(names, stacked.tolist(), strict=True))


def gather(value: Any, world: World) -> list[Any]:
    """Every rank's ``value``, in rank order (a collective: all ranks must call it)."""
    if not world.distributed:
        return [value]
    values: list[Any] = [None] * world.size
    dist.all_gather_object(values, value)
    return values


def launch(nproc: int, function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` in ``nproc`` workers on this machine; return rank 0's value.

    The workers form one process group through torch's elastic launcher (what
    ``torchrun --standalone`` does). A worker that fails stops the others and raises here.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.2,
        start_method="spawn",
    )
    try:
        return elastic_launch(config, function)(*args)[0]  # by rank
    except ChildFailedError as error:
        failures = "; ".join(
            f"rank {rank}: {_reason(failure)}" for rank, failure in sorted(error.failures.items())
        )
        raise BenchError(f"a training process failed ({failures})") from None


def _reason(failure: Any) -> str:
    message = failure.message
    if isinstance(message, dict):  # the worker's error file: {"message": ..., "extraInfo": ...}
        message = message.get("message")
    return str(message or f"exit code {failure.exitcode}")
