"""Colour conversions used by the evaluation protocols, on (N, 3, H, W) tensors.

* BT.601 studio-swing luma as MATLAB's ``rgb2ycbcr`` computes it (docs/protocols.md §2.2 step 2).
* sRGB -> CIE L*a*b* with either the ICC D50 white (MATLAB ``makecform('srgb2lab')``, sRGB
  adapted from D65 with the Bradford transform) or the D65 white (scikit-image ``rgb2lab``).
"""

from __future__ import annotations

from typing import Literal

import torch

WhitePoint = Literal["d50", "d65"]

# BT.601 luma row of MATLAB's rgb2ycbcr for R, G, B in [0, 255]: Y = 16 + (65.481 R +
# 128.553 G + 24.966 B) / 255, i.e. 219 * (0.299, 0.587, 0.114) / 255 plus the offset 16.
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

# Linear sRGB -> XYZ (IEC 61966-2-1 primaries, D65). Its row sums are the D65 white.
_SRGB_TO_XYZ_D65 = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
# Bradford cone-response matrix (Lam 1985), used for the D65 -> D50 adaptation.
_BRADFORD = (
    (0.8951, 0.2664, -0.1614),
    (-0.7502, 1.7135, 0.0367),
    (0.0389, -0.0685, 1.0296),
)
# ICC profile connection space white (D50) and scikit-image's D65 reference white.
_WHITE_D50 = (0.96422, 1.0, 0.82521)
_WHITE_D65 = (0.95047, 1.0, 1.08883)


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's round (half away from zero); torch.round rounds half to even."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def to_uint8_matlab(x: torch.Tensor) -> torch.Tensor:
    """What MATLAB stores when a double result is cast to uint8: rounded, then saturated."""
    return round_half_up(x).clamp(0, 255)


def rgb_to_y(rgb255: torch.Tensor, rounded: bool = True) -> torch.Tensor:
    """BT.601 luma (N, 1, H, W) of RGB values in [0, 255] (float64 result).

    ``rounded=True`` reproduces MATLAB ``rgb2ycbcr`` on uint8 input, which rounds Y to
    uint8; ``rounded=False`` is BasicSR's unrounded float Y (docs/protocols.md §4).
    """
    r, g, b = rgb255.to(torch.float64).unbind(1)
    # term by term, left to right, as MATLAB's imlincomb sums them: a matrix product or einsum
    # may sum in another order (or fuse multiply-adds) by CPU, which moves a value at a
    # rounding boundary to the next integer
    y = r * (_Y_WEIGHTS[0] / 255.0) + g * (_Y_WEIGHTS[1] / 255.0) + b * (_Y_WEIGHTS[2] / 255.0)
    y = (y + _Y_OFFSET).unsqueeze(1)
    return to_uint8_matlab(y) if rounded else y


def y_or_grey(images: torch.Tensor) -> torch.Tensor:
    """What the Y-channel MATLAB scripts score, float64 (N, 1, H, W): the rounded BT.601 Y of
    RGB images (``rgb2ycbcr`` on uint8), the grey values themselves of one-channel images
    (their ``if size(im,3)==3`` guard)."""
    return images.to(torch.float64) if images.shape[1] == 1 else rgb_to_y(images)


def rgb_to_yiq_luma(rgb255: torch.Tensor) -> torch.Tensor:
    """Y of YIQ (N, 1, H, W), float64 in [0, 255]: 0.299 R + 0.587 G + 0.114 B, full range and
    unrounded (MATLAB ``rgb2ntsc``; scikit-image ``rgb2yiq``; pyiqa's default Y)."""
    weights = torch.tensor((0.299, 0.587, 0.114), dtype=torch.float64, device=rgb255.device)
    return torch.einsum("c,nchw->nhw", weights, rgb255.to(torch.float64)).unsqueeze(1)


def _srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve inverted (IEC 61966-2-1), for values in [0, 1]."""
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def srgb_to_xyz_matrix(white: WhitePoint) -> torch.Tensor:
    """Linear sRGB -> XYZ for the given white; D50 is derived by Bradford adaptation."""
    to_xyz = torch.tensor(_SRGB_TO_XYZ_D65, dtype=torch.float64)
    if white == "d65":
        return to_xyz
    bradford = torch.tensor(_BRADFORD, dtype=torch.float64)
    source = bradford @ to_xyz.sum(dim=1)  # cone response of the sRGB (D65) white
    target = bradford @ torch.tensor(_WHITE_D50, dtype=torch.float64)
    adapt = torch.linalg.inv(bradford) @ torch.diag(target / source) @ bradford
    return adapt @ to_xyz


def rgb_to_lab(rgb: torch.Tensor, white: WhitePoint = "d50") -> torch.Tensor:
    """CIE L*a*b* (N, 3, H, W), float64, of sRGB values in [0, 1].

    ``white="d50"`` matches MATLAB ``applycform(x, makecform('srgb2lab'))`` (ICC D50 white);
    ``white="d65"`` matches scikit-image ``rgb2lab`` with its default illuminant.
    """
    if white not in ("d50", "d65"):
        raise ValueError(f"white point must be 'd50' or 'd65', got {white!r}")
    linear = _srgb_to_linear(rgb.to(torch.float64))
    matrix = srgb_to_xyz_matrix(white).to(rgb.device)
    reference = torch.tensor(_WHITE_D50 if white == "d50" else _WHITE_D65, dtype=torch.float64)
    xyz = torch.einsum("ij,njhw->nihw", matrix, linear) / reference.to(rgb.device).view(1, 3, 1, 1)
    # CIE 1976 f(t): cube root above (6/29)^3, linear segment below.
    epsilon = (6.0 / 29.0) ** 3
    f = torch.where(
        xyz > epsilon, xyz.clamp_min(epsilon) ** (1.0 / 3.0), xyz / (3 * (6.0 / 29.0) ** 2) + 4 / 29
    )
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1)
