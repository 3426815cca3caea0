"""Fixtures for the dataset tests: small generated suites and a config pointing at tmp."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.data import get_dataset
from bench.data.synth import generate


@pytest.fixture(scope="session")
def small_shadow(tmp_path_factory) -> Path:
    """A read-only synth-shadow suite (4 train, 2 test); copy it before changing anything."""
    out = tmp_path_factory.mktemp("suites") / "synth-shadow"
    overrides = {"train_count": 4, "test_count": 2, "patch": 48}
    return generate(get_dataset("synth-shadow"), out, seed=0, overrides=overrides)


@pytest.fixture
def shadow_copy(small_shadow, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(small_shadow, tmp_path / "synth-shadow"))


@pytest.fixture
def config_file(tmp_path, monkeypatch) -> Path:
    """A bench.toml whose data root is in tmp."""
    path = tmp_path / "bench.toml"
    path.write_text('[paths]\ndata_root = "data"\n')
    return path
