"""DDIM (Song et al., ICLR 2021; docs/methods.md §4) for epsilon-prediction generation.

x^_0 = (x_t - sqrt(1 - g_t) eps^) / sqrt(g_t);
x_s = sqrt(g_s) x^_0 + sqrt(1 - g_s - sigma^2) eps^ + sigma z,
sigma = eta sqrt((1 - g_s)/(1 - g_t)) sqrt(1 - g_t/g_s).
The previous timestep s is the next entry of the timestep list (leading, trailing or linspace
spacing), not t - T//N as diffusers' step() assumes; after the last entry g_s = 1
(``set_alpha_to_one``) or g_0. The paper does not clip x^_0; ``clip_sample`` replicates
diffusers' default. Training is DDPM's: t ~ U{0..T-1}, MSE on eps.
"""

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.base import Method, Progress, randint, randn
from baselines.sampling import Prediction, sample_loop
from baselines.schedules import ddim_timesteps, ddpm_betas
from baselines.unet import UNet


@dataclass(frozen=True)
class DDIMSampling:
    """DDIM's sampler schedule: the cumulative products g, the timestep list (``spacing``,
    ``steps_offset``) and what follows its last entry (g = 1 with ``set_alpha_to_one``,
    else g_0)."""

    gamma: Tensor
    spacing: str = "leading"
    steps_offset: int = 0
    set_alpha_to_one: bool = True

    def timestep_pairs(self, steps: int) -> list[tuple[int, int]]:
        """(t, s) pairs; s = -1 after the last listed timestep."""
        ts = ddim_timesteps(self.gamma.numel(), steps, self.spacing, self.steps_offset)
        return list(zip(ts, [*ts[1:], -1], strict=True))

    def path(self, steps: int, eta: float = 0.0) -> list["DDIMMove"]:
        """The moves t -> s of the timestep list, with sigma (eq. 16 of DDIM) for ``eta``."""
        final_gamma = 1.0 if self.set_alpha_to_one else float(self.gamma[0])
        moves = []
        for t, s in self.timestep_pairs(steps):
            g_t = float(self.gamma[t])
            g_s = float(self.gamma[s]) if s >= 0 else final_gamma
            sigma = eta * ((1 - g_s) / (1 - g_t)) ** 0.5 * (1 - g_t / g_s) ** 0.5
            moves.append(DDIMMove(t, g_t, g_s, sigma))
        return moves


class DDIM(Method):
    kind = "generation"

    def __init__(
        self,
        *,
        image_channels: int = 3,
        mask_channels: int = 0,
        unet_dim: int = 64,
        unet_mults: tuple[int, ...] = (1, 2, 4, 8),
        timesteps: int = 1000,
        beta_schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        spacing: str = "leading",
        steps_offset: int = 0,
        set_alpha_to_one: bool = True,
        clip_sample: bool = False,
    ):
        super().__init__(image_channels, mask_channels)
        if mask_channels:
            raise ValueError("ddim is unconditional generation and takes no mask")
        self.timesteps, self.clip_sample = timesteps, clip_sample
        betas = ddpm_betas(beta_schedule, timesteps, beta_start, beta_end)
        self.gamma = torch.cumprod(1 - betas, 0)
        #: the timestep list and each move's sigma: the sampler's schedule, apart from the net
        self.sampling = DDIMSampling(self.gamma, spacing, steps_offset, set_alpha_to_one)
        self.nets = nn.ModuleDict(
            {"eps": UNet(image_channels, image_channels, unet_dim, tuple(unet_mults))}
        )

    def networks(self) -> dict[str, nn.Module]:
        return dict(self.nets.items())

    def example_inputs(self, network: str, batch: int, size: int) -> tuple:
        p = self._param()
        x = torch.randn(batch, self.image_channels, size, size, device=p.device, dtype=p.dtype)
        return x, torch.full((batch,), float(self.timesteps - 1), device=p.device)

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None):
        x0 = batch["target"]
        t = randint(self.timesteps, x0.shape[0], generator, x0.device)
        eps = randn(x0.shape, generator, x0)
        g = self.gamma[t.cpu()].to(x0)[:, None, None, None]
        x_t = g.sqrt() * x0 + (1 - g).sqrt() * eps
        value = F.mse_loss(self.nets["eps"](x_t, t.to(x0.dtype)), eps)
        return {"loss": value, "loss_noise": value.detach()}

    @torch.no_grad()
    def sample(
        self,
        condition: Tensor | None,
        *,
        mask: Tensor | None = None,
        shape: tuple | None = None,
        steps: int,
        eta: float = 0.0,
        generator: torch.Generator,
        progress: Progress | None = None,
    ) -> Tensor:
        if condition is not None or mask is not None:
            raise ValueError("ddim generates unconditionally; pass condition=None and shape=")
        shape = self._generation_shape(shape)
        p = self._param()
        x = randn(shape, generator, torch.empty(0, device=p.device, dtype=p.dtype))

        def denoise(x: Tensor, move: DDIMMove) -> Prediction:
            """eps^ at t, and x^_0 = (x_t - sqrt(1 - g_t) eps^) / sqrt(g_t), clipped only with
            ``clip_sample``."""
            t = torch.full((shape[0],), float(move.t), device=x.device, dtype=x.dtype)
            eps = self.nets["eps"](x, t)
            x0 = (x - (1 - move.gamma) ** 0.5 * eps) / move.gamma**0.5
            return Prediction(x0=x0.clamp(-1, 1) if self.clip_sample else x0, noise=eps)

        return sample_loop(
            denoise, ddim_step, x, self.sampling.path(steps, eta), generator, progress
        )


@dataclass(frozen=True)
class DDIMMove:
    """One DDIM move from timestep ``t`` (cumulative product ``gamma``) to the next listed one
    (``gamma_next``); ``sigma`` is the standard deviation of the noise added after it."""

    t: int
    gamma: float
    gamma_next: float
    sigma: float

    @property
    def noise_std(self) -> float:
        return self.sigma


def ddim_step(prediction: Prediction, move: DDIMMove, x: Tensor) -> Tensor:
    """x_s = sqrt(g_s) x^_0 + sqrt(1 - g_s - sigma^2) eps^ (DDIM eq. 12 without its noise term,
    which the loop adds; pure)."""
    direction = max(1 - move.gamma_next - move.sigma**2, 0.0) ** 0.5
    return move.gamma_next**0.5 * prediction.x0 + direction * prediction.noise


def paper_settings(name: str, task: str) -> dict[str, Any]:
    """DDIM generates (Table 3(a), docs/methods.md §4): 10 steps by default."""
    if task != "generation":
        raise ValueError("ddim is an unconditional generator; only task 'generation' applies")
    return {
        "steps": 10,
        "options": {"spacing": "leading"},
        "notes": [
            "Table 3(a) uses a pretrained google/ddpm-celebahq-256 at 5-100 steps; "
            "training iterations and lr are not stated"
        ],
    }
