"""Fixtures for the metric tests: photographs, generated weights, a CLI config."""

import numpy as np
import pytest
import torch
from skimage import data
from weights_factory import write_random_alexnet, write_random_inception


def _photo(name: str) -> np.ndarray:
    return getattr(data, name)()[:96, :112].copy()


@pytest.fixture(scope="session")
def photos() -> torch.Tensor:
    """Real photographs from scikit-image, uint8 (3, 3, 96, 112)."""
    images = [_photo(name) for name in ("astronaut", "coffee", "chelsea")]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def degrade(images: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """Synthetic degradations that keep uint8: noise, blur, contrast change with clipping."""
    x = images.to(torch.float64)
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        x = x + 15 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    elif kind == "blur":
        x = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    elif kind == "contrast":
        x = 1.3 * (x - 128) + 140
    return x.round().clamp(0, 255).to(torch.uint8)


DEGRADATIONS = ("noise", "blur", "contrast")


@pytest.fixture(scope="session")
def alexnet_weights_dir(tmp_path_factory):
    """A weights folder holding a random AlexNet file (generated once per session)."""
    folder = tmp_path_factory.mktemp("weights_alexnet")
    write_random_alexnet(folder)
    return folder


@pytest.fixture(scope="session")
def inception_weights_dir(tmp_path_factory):
    """A weights folder holding a kaiming-initialised Inception (generated once per session)."""
    folder = tmp_path_factory.mktemp("weights_inception")
    write_random_inception(folder)
    return folder


@pytest.fixture
def cli_config(tmp_path, monkeypatch):
    """A bench.toml whose weights folder is empty; returns (config path, weights dir)."""
    weights = tmp_path / "weights"
    config = tmp_path / "bench.toml"
    config.write_text(f'[paths]\nweights_dir = "{weights}"\n')
    return config, weights
