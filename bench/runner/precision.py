"""Numeric precision and compilation of a cell's networks (profile keys ``precision`` and
``compile``; ``bench run --precision bf16 --compile``).

bf16 runs the networks under ``torch.autocast`` (matmuls and convolutions in bfloat16, the
sampler's arithmetic and the losses in float32). It pays on GPUs and on CPUs with native
bf16 instructions (AVX-512 BF16, AMX); elsewhere it is emulated and slower, which
:func:`native_bf16` lets a run say once and record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16")


def native_bf16(device: torch.device) -> str | None:
    """What runs bf16 natively on ``device``: the GPU, "amx" or "avx512_bf16"; None if
    bf16 would be emulated."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device) if torch.cuda.is_bf16_supported() else None
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return None
    for flag in ("amx_bf16", "avx512_bf16"):
        if flag in flags:
            return flag.removesuffix("_bf16") if flag == "amx_bf16" else flag
    return None


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """The networks' precision for the enclosed forward passes."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield


def compile_networks(networks: dict[str, nn.Module], example: dict[str, tuple]) -> str | None:
    """``torch.compile`` each network in place (its state dict keeps its keys) and run one
    example forward so a compiler failure shows here, not mid-run. Returns None when every
    network compiled, else the reason, with every network left eager."""
    compiled = []
    try:
        for name, net in networks.items():
            net.compile()
            compiled.append(net)
            with torch.no_grad():
                net(*example[name])
    except Exception as error:  # inductor raises many types; all mean "run eager"
        for net in compiled:
            net._compiled_call_impl = None  # back to the eager forward
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        return f"{type(error).__name__}: {first}"
    return None
