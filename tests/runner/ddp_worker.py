"""A training rank for tests/runner/test_distributed.py (importable by spawned processes)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

import bench  # noqa: F401  (the torchvision guard, as in every process)
from baselines import build_method
from bench.runner.train import train

#: 16 px images, shadows on the left half (mask), a fixed set so every process sees the same
SIZE, COUNT = 16, 8


class Pairs(torch.utils.data.Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(7)
        self.target = torch.rand(COUNT, 3, SIZE, SIZE, generator=generator) * 2 - 1
        self.mask = torch.zeros(COUNT, 1, SIZE, SIZE)
        self.mask[..., : SIZE // 2] = 1
        self.input = self.target - 0.6 * self.mask

    def __len__(self) -> int:
        return COUNT

    def __getitem__(self, i: int) -> dict:
        return {"input": self.input[i], "target": self.target[i], "mask": self.mask[i]}


def method() -> torch.nn.Module:
    torch.manual_seed(0)  # the same initial weights in every process
    return build_method("rddm-sm-res", mask_channels=1, unet_dim=8, unet_mults=(1, 2))


def rank_main(rank: int, size: int, folder: str, port: int, cell) -> None:
    """Train ``cell`` as rank ``rank`` of ``size`` (gloo) and save the loss history."""
    torch.set_num_threads(1)
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        trained = method()
        result, _ = train(
            trained, Pairs(), cell, torch.device("cpu"), Path(folder) / f"rank{rank}.pt"
        )
        torch.save(
            {"losses": result.losses, "weights": trained.state_dict()},
            Path(folder) / f"result{rank}.pt",
        )
    finally:
        dist.destroy_process_group()
