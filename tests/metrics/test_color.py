"""BT.601 luma and CIE L*a*b* against reference values."""

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab

from bench.metrics import rgb_to_lab, rgb_to_y
from bench.metrics.color import round_half_up, to_uint8_matlab


def _pixel(*rgb: float) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1)


@pytest.mark.parametrize(
    ("rgb", "y"),
    [
        # BT.601 studio swing: black 16, white 235, 100% primaries R 81, G 145, B 41
        ((0, 0, 0), 16),
        ((255, 255, 255), 235),
        ((255, 0, 0), 81),
        ((0, 255, 0), 145),
        ((0, 0, 255), 41),
    ],
)
def test_y_matches_bt601_reference(rgb, y):
    assert rgb_to_y(_pixel(*rgb)).item() == y


def test_y_unrounded_is_the_float_formula():
    # 16 + 65.481 (R at 255), as BasicSR's to_y_channel leaves it
    assert rgb_to_y(_pixel(255, 0, 0), rounded=False).item() == pytest.approx(81.481)
    assert rgb_to_y(_pixel(255, 0, 0), rounded=True).item() == 81


def test_matlab_rounding_is_half_away_from_zero():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, 254.5, 300.0, -3.0], dtype=torch.float64)
    assert round_half_up(x).tolist() == [1, 2, 3, -1, 255, 300, -3]
    assert to_uint8_matlab(x).tolist() == [1, 2, 3, 0, 255, 255, 0]


@pytest.mark.parametrize(
    ("white", "expected"),
    [("d50", (54.29, 80.81, 69.89)), ("d65", (53.24, 80.09, 67.20))],
)
def test_lab_of_srgb_red(white, expected):
    lab = rgb_to_lab(_pixel(1, 0, 0), white).flatten()
    assert torch.allclose(lab, torch.tensor(expected, dtype=torch.float64), atol=0.006)


@pytest.mark.parametrize("white", ["d50", "d65"])
def test_lab_of_mid_grey_is_neutral(white):
    lab = rgb_to_lab(_pixel(0.5, 0.5, 0.5), white).flatten()
    assert lab[0].item() == pytest.approx(53.39, abs=0.005)
    assert abs(lab[1].item()) < 1e-3 and abs(lab[2].item()) < 1e-3


def test_d65_matches_skimage_rgb2lab(photos):
    rgb = photos.to(torch.float64) / 255
    ours = rgb_to_lab(rgb, "d65").permute(0, 2, 3, 1).numpy()
    reference = np.stack([rgb2lab(image) for image in rgb.permute(0, 2, 3, 1).numpy()])
    # skimage rounds its sRGB matrix to 6 digits; the difference stays far below 0.01
    assert np.max(np.abs(ours - reference)) < 5e-3


def test_d50_and_d65_differ_on_colour():
    red = _pixel(1, 0, 0)
    assert (rgb_to_lab(red, "d50") - rgb_to_lab(red, "d65")).abs().max() > 1.0
