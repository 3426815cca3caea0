"""Full-reference metrics on batched tensors: PSNR, three SSIM forms, region LAB MAE.

All functions take (N, C, H, W) tensors on any device, compute in float64 and return one
value per image (shape (N,)), so a protocol aggregates them as its paper does.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

SsimForm = Literal["wang", "skimage", "matlab-volume"]
SSIM_FORMS: dict[str, str] = {
    "wang": "Wang et al. SSIM_index: 11x11 Gaussian (sigma 1.5), 'valid' region, "
    "population statistics; per-channel scores averaged",
    "skimage": "scikit-image structural_similarity defaults: 7x7 uniform window, "
    "sample covariance, 'valid' region; per-channel scores averaged",
    "matlab-volume": "MATLAB ssim on an HxWx3 array read as a volume: 11x11x11 Gaussian "
    "(sigma 1.5) with replicate padding, mean of the full map (UNVERIFIED against MATLAB)",
}
K1, K2 = 0.01, 0.03


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> torch.Tensor:
    """10 log10(peak^2 / MSE) per image, MSE over every element (MATLAB psnr, skimage).

    Identical images give +inf.
    """
    diff = pred.to(torch.float64) - target.to(torch.float64)
    mse = diff.pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def gaussian_taps(sigma: float = 1.5, radius: int = 5) -> torch.Tensor:
    """Normalised 1-D Gaussian, as fspecial('gaussian', 2r+1, sigma) factorises."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-(x**2) / (2 * sigma**2))
    return taps / taps.sum()


def _filter_2d_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of every channel of (B, C, H, W)."""
    channels = x.shape[1]
    k = taps.to(x)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def _filter_3d_replicate(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 'same' filtering of (B, D, H, W) volumes, replicate padding on all 3 axes."""
    r = taps.numel() // 2
    volume = F.pad(x.unsqueeze(1), (r, r, r, r, r, r), mode="replicate")
    k = taps.to(x)
    volume = F.conv3d(volume, k.view(1, 1, -1, 1, 1))
    volume = F.conv3d(volume, k.view(1, 1, 1, -1, 1))
    volume = F.conv3d(volume, k.view(1, 1, 1, 1, -1))
    return volume.squeeze(1)


def _ssim_map(x, y, data_range, local_mean, covariance_scale=1.0):
    """SSIM map from local means (Wang et al. 2004, eq. 13, with C3 = C2 / 2 folded in)."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = covariance_scale * (local_mean(x * x) - mu_x * mu_x)
    var_y = covariance_scale * (local_mean(y * y) - mu_y * mu_y)
    cov = covariance_scale * (local_mean(x * y) - mu_x * mu_y)
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def ssim(
    pred: torch.Tensor, target: torch.Tensor, data_range: float, form: SsimForm = "wang"
) -> torch.Tensor:
    """Mean SSIM per image for one of :data:`SSIM_FORMS`.

    ``wang`` equals skimage ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=...)``; ``skimage`` equals its defaults with
    ``data_range`` given. Both average the per-channel means (skimage ``channel_axis``).
    """
    x, y = pred.to(torch.float64), target.to(torch.float64)
    if form == "wang":
        taps = gaussian_taps(1.5, 5)
        ssim_map = _ssim_map(x, y, data_range, lambda t: _filter_2d_valid(t, taps))
    elif form == "skimage":
        taps = torch.full((7,), 1 / 7, dtype=torch.float64)
        points = taps.numel() ** 2
        ssim_map = _ssim_map(
            x, y, data_range, lambda t: _filter_2d_valid(t, taps), points / (points - 1)
        )
    elif form == "matlab-volume":
        # MATLAB ssim: filter size 2*ceil(3*sigma)+1 = 11 along rows, columns and channels.
        taps = gaussian_taps(1.5, math.ceil(3 * 1.5))
        ssim_map = _ssim_map(x, y, data_range, lambda t: _filter_3d_replicate(t, taps))
    else:
        raise ValueError(f"unknown SSIM form {form!r}; valid forms: {', '.join(SSIM_FORMS)}")
    if ssim_map.shape[-1] <= 0 or ssim_map.shape[-2] <= 0:
        raise ValueError(f"images of {tuple(pred.shape[-2:])} are smaller than the SSIM window")
    return ssim_map.flatten(1).mean(dim=1)


def region_abs_sums(
    pred_lab: torch.Tensor, target_lab: torch.Tensor, region: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of |dL| + |da| + |db| over a region, and the region's pixel count, per image.

    ``region`` is a boolean (N, 1, H, W) tensor or None for the whole image. The count is
    of pixels, not of channel values (protocols.md §2.1 step 2: the divisor is not x3).
    """
    distance = (pred_lab - target_lab).abs().sum(dim=1, keepdim=True)
    if region is None:
        region = torch.ones_like(distance, dtype=torch.bool)
    region = region.to(distance.device)
    sums = (distance * region).flatten(1).sum(dim=1)
    counts = region.flatten(1).sum(dim=1).to(torch.float64)
    return sums, counts
