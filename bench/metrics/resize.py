"""MATLAB-compatible ``imresize(x, [H W])`` with the bicubic kernel and antialiasing.

MATLAB (imresize.m) resizes one axis at a time, the axis with the smallest scale first.
Along an axis of length ``n_in`` resized to ``n_out`` (scale s = n_out / n_in):

* output pixel x (1-based) samples the input at u = x / s + (1 - 1/s) / 2;
* the kernel is Keys' cubic with a = -0.5; when s < 1 (downscaling, antialiasing on) it is
  stretched to h(t) = s * cubic(s * t), so its support grows from 4 to 4 / s pixels;
* taps outside the image are mirrored (symmetric padding, the edge pixel repeated) and the
  weights of each output pixel are normalised to sum to 1. Older MATLAB releases clamped
  them to the edge pixel instead (``edge="clamp"``), which many released low-resolution
  test sets were made with; the two rules differ only in a band of about 2 / s pixels at
  each border.

Each axis is one dense (n_out, n_in) matrix, so a resize is two batched matmuls. uint8
input follows MATLAB's uint8 path: every pass is rounded and saturated to uint8 (imresizemex
returns the input's class), which is what "imresize on uint8" means in docs/protocols.md §2.1.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from bench.metrics.color import to_uint8_matlab


def cubic(t: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB imresize's 'bicubic')."""
    a = t.abs()
    a2, a3 = a * a, a * a * a
    inner = 1.5 * a3 - 2.5 * a2 + 1
    outer = -0.5 * a3 + 2.5 * a2 - 4 * a + 2
    return torch.where(a <= 1, inner, torch.where(a <= 2, outer, torch.zeros_like(a)))


#: how taps outside the image are read: mirrored (today's imresize) or clamped (older ones)
EDGES = ("symmetric", "clamp")


@lru_cache(maxsize=64)
def resize_matrix(
    n_in: int, n_out: int, antialias: bool = True, edge: str = "symmetric"
) -> torch.Tensor:
    """The (n_out, n_in) float64 matrix of MATLAB's bicubic resize along one axis."""
    if edge not in EDGES:
        raise ValueError(f"unknown imresize edge {edge!r}; valid: {', '.join(EDGES)}")
    scale = n_out / n_in
    width = 4.0
    stretch = scale if (scale < 1 and antialias) else 1.0
    width /= stretch
    x = torch.arange(1, n_out + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    index = left.unsqueeze(1) + torch.arange(taps, dtype=torch.float64)  # 1-based
    weights = stretch * cubic(stretch * (u.unsqueeze(1) - index))
    weights = weights / weights.sum(dim=1, keepdim=True)
    if edge == "clamp":  # older releases: min(max(index, 1), n)
        source = index.long().clamp(1, n_in) - 1
    else:  # symmetric padding: 1..n, n..1 repeated, as MATLAB's aux = [1:n, n:-1:1] with mod
        mirror = torch.cat((torch.arange(n_in), torch.arange(n_in - 1, -1, -1)))
        source = mirror[torch.remainder(index.long() - 1, 2 * n_in)]
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    matrix.scatter_add_(1, source, weights)
    return matrix


def imresize(
    images: torch.Tensor, size: tuple[int, int], antialias: bool = True, edge: str = "symmetric"
) -> torch.Tensor:
    """Resize (N, C, H, W) images to ``size`` = (H', W') like MATLAB ``imresize(x, [H' W'])``.

    uint8 input gives uint8 output (rounded and saturated after each axis, as MATLAB);
    floating input gives float64 output, unclamped. ``edge``: ``"symmetric"`` as today's
    MATLAB, ``"clamp"`` as older releases (see the module docstring).
    """
    height, width = images.shape[-2:]
    if (height, width) == tuple(size):
        return images if images.dtype == torch.uint8 else images.to(torch.float64)
    is_uint8 = images.dtype == torch.uint8
    result = images.to(torch.float64)
    scales = {-2: size[0] / height, -1: size[1] / width}
    # MATLAB: [~, order] = sort(scale) -- the axis with the smaller scale goes first.
    for axis in sorted(scales, key=lambda a: (scales[a], a)):
        n_in, n_out = result.shape[axis], size[axis + 2]
        if n_in == n_out:
            continue
        matrix = resize_matrix(n_in, n_out, antialias, edge).to(result.device)
        result = result @ matrix.T if axis == -1 else matrix @ result
        if is_uint8:
            result = to_uint8_matlab(result)
    return result.to(torch.uint8) if is_uint8 else result
