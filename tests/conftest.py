"""Shared test setup.

``import bench`` comes first: it applies the torchvision guard before any test imports
lpips or torch-fidelity. Weights and schema caches point at a temporary folder so no test reads
the user's cache or reaches the network.
"""

import os

import pytest
import torch

import bench  # noqa: F401  (applies the torchvision guard)

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.getbasetemp() / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    # one MLflow schema cache per session: the first new store migrates, the rest copy it
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "bench_cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
