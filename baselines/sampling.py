"""The one sampling loop every method runs (docs/methods.md §8).

A sampler is three things, in the shape of diffusers' schedulers and k-diffusion's samplers:
- a **path**: the list of moves a method's schedule makes for a number of steps, each a frozen
  record of the coefficients it needs and the standard deviation of the noise added after it
  (``noise_std``, 0 for a deterministic move);
- a **denoiser** ``denoise(x, move) -> Prediction``: the network evaluated at the move's time,
  with the method's conversions and clipping (the only place a network runs);
- a **step** ``step(prediction, move, x) -> x``: the paper's update as a pure function of its
  arguments (no network, no randomness), so each equation is testable with exact predictions.

``sample_loop`` walks the path: denoise, step, then add ``noise_std * z`` with z drawn from
the caller's generator only when ``noise_std > 0``. Every method's ``sample`` sets up its
start state and calls it; nothing else loops over time.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol, TypeVar

import torch
from torch import Tensor

from baselines.base import Progress, randn


class Prediction(NamedTuple):
    """What a denoiser estimates at one move, each in the method's own parametrisation; a
    field a method does not estimate is None.

    ``x0``: the clean image (I_0^, x^_0); ``noise``: the noise of the method's forward process
    (RDDM's eps^, DDPM's eps^, Resfusion's resnoise eps_R of its eq. 24); ``residual``: the
    degradation residual (RDDM's I_res^, Resfusion's R = x^_0 - x_0)."""

    x0: Tensor | None = None
    noise: Tensor | None = None
    residual: Tensor | None = None


class Move(Protocol):
    """What the loop reads of a move; each method's move type carries its own coefficients."""

    @property
    def noise_std(self) -> float: ...


M = TypeVar("M", bound=Move)


def sample_loop(
    denoise: Callable[[Tensor, M], Prediction],
    step: Callable[[Prediction, M, Tensor], Tensor],
    x: Tensor,
    path: Sequence[M],
    generator: torch.Generator | None,
    progress: Progress | None = None,
) -> Tensor:
    """Run ``path`` from ``x``: x <- step(denoise(x, move), move, x) + noise_std z per move.

    The noise is drawn after the update, and only for moves with ``noise_std > 0``, so a
    deterministic sampler consumes nothing from ``generator`` after its start state."""
    total = len(path)
    for i, move in enumerate(path):
        x = step(denoise(x, move), move, x)
        if move.noise_std > 0:
            x = x + move.noise_std * randn(x.shape, generator, x)
        if progress is not None:
            progress(i + 1, total)
    return x
