"""The environment record attached to every tracked run (`bench env`)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from bench import _tvcompat

#: Packages whose versions decide numbers (metrics, counts) or tracking.
PACKAGES = (
    "bench",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pillow",
    "scikit-image",
    "lpips",
    "torch-fidelity",
    "thop",
    "mlflow",
    "pandas",
    "typer",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(folder: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding ``folder`` (default: this package)."""
    folder = folder or Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    # untracked files do not change what ran; modified tracked files do
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[dict[str, Any]]:
    if not torch.cuda.is_available():
        return []
    return [
        {
            "name": torch.cuda.get_device_name(i),
            "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
        }
        for i in range(torch.cuda.device_count())
    ]


#: CPU features that change which kernels torch runs, so the floating-point results
_CPU_FLAGS = (
    "fma", "avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
    "amx_int8", "asimd", "sve",
)  # fmt: skip


def cpu_flags() -> list[str]:
    """The CPU's flags among those that select torch's kernels (Linux; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in _CPU_FLAGS if flag in present]
    except OSError:
        pass
    return []


def onednn_version() -> str | None:
    """oneDNN (MKL-DNN) as torch was built with it: its convolutions on CPU."""
    for line in torch.__config__.show().splitlines():
        if "MKL-DNN" in line or "oneDNN" in line:
            return line.strip(" -")
    return None


def hardware() -> dict[str, Any]:
    """What decides the floating-point results of one seed: the same seed gives other numbers
    on another CPU (kernels chosen by its features) or another library build."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "cpu": cpu_model(),
        "cpu_flags": " ".join(cpu_flags()),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onednn": onednn_version(),
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "gpu": ", ".join(g["name"] for g in gpus()) or None,
    }


def environment() -> dict[str, Any]:
    """Everything needed to say where a number was measured."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": gpus(),
        "hardware": hardware(),
        "torchvision_shim": _tvcompat.REASON if _tvcompat.APPLIED else None,
        "packages": package_versions(),
        "git": git_state(),
    }
