"""Seeds and RNG state: the same seed gives the same numbers, and a resumed run
continues every random stream exactly where the interrupted one stopped."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) for one cell."""
    random.seed(seed)
    # the legacy global state is what third-party code (augmentations, libraries) draws from
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global random stream, as tensors and primitive values only, so a checkpoint that
    holds it is read by torch's weights-only unpickler (bench.torch_files)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state = {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), position, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]  # keys: a list, or an array in older checkpoints
    np.random.set_state((kind, np.asarray(keys, np.uint32), *rest))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def derived_seed(seed: int, stream: str) -> int:
    """An independent, stable seed per purpose (data order, diffusion noise, sampling)."""
    digest = 0
    for char in f"{seed}/{stream}":
        digest = (digest * 1_000_003 + ord(char)) % 2**63
    return digest
