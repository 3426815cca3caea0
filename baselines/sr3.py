"""SR3 as RDDM's conditional-DDPM baseline (Saharia et al.; Janspiry re-implementation;
docs/methods.md §3).

Training draws t ~ U{1..T} and then sqrt(g) ~ U(sqrt(g_{t-1}), sqrt(g_t)), forms
x = sqrt(g) x_0 + sqrt(1 - g) eps and regresses eps with an L1 loss (sum / (b c h w)); the
network sees (condition[, mask], x) concatenated, condition first, and the continuous noise
level sqrt(g). Sampling is ancestral with x^_0 clamped to [-1, 1] and the posterior variance
b~_t. Because the conditioning is continuous, a coarser schedule works: ``steps`` = N picks
the training g at N evenly spaced indices (the last one included) and re-derives the
per-step b from them, so N = T is the training schedule itself. RDDM compared at N = 100.
"""

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from baselines.base import Method, Progress, elementwise_loss, rand, randint, randn
from baselines.sampling import Prediction, sample_loop
from baselines.schedules import DDPMMove, ddpm_betas, ddpm_posterior_mean
from baselines.settings import RESTORATION_TASKS
from baselines.sr3_unet import SR3UNet


def paper_norm_groups(inner_channel: int) -> int:
    """GroupNorm groups that keep ``sr_sr3_64_512``'s 4 channels per group (64 in 16 groups).

    A narrower network must not keep the 16 groups: at width 16 that is one channel per group,
    i.e. instance norm, which strips each channel's mean and scale, the very quantities an
    epsilon predictor must reproduce; tiny SR3s built that way sampled 4-10 dB below the input.
    """
    return max(1, inner_channel // 4)


@dataclass(frozen=True)
class SR3Sampling:
    """SR3's sampler schedule: the training schedule's cumulative products g, respaced to the
    evaluation's number of steps, and the ancestral moves over it."""

    gamma: Tensor

    def gammas(self, steps: int) -> Tensor:
        """Cumulative products of the N-step evaluation schedule (index 0 = least noisy)."""
        timesteps = self.gamma.numel()
        if not 1 <= steps <= timesteps:
            raise ValueError(f"steps must be in 1..{timesteps}, got {steps}")
        idx = (torch.arange(1, steps + 1, dtype=torch.float64) * timesteps / steps).round()
        return self.gamma[idx.long() - 1]

    def path(self, steps: int) -> list[DDPMMove]:
        """The ``steps`` ancestral moves over the respaced schedule, noisiest first, with the
        posterior standard deviation sqrt(b_t (1 - g_{t-1}) / (1 - g_t)) (none after the last)."""
        gammas = [float(g) for g in self.gammas(steps)]
        moves = []
        for j in range(steps - 1, -1, -1):
            g, g_prev = gammas[j], (gammas[j - 1] if j > 0 else 1.0)
            beta = 1 - g / g_prev
            std = (beta * (1 - g_prev) / (1 - g)) ** 0.5 if j > 0 else 0.0
            moves.append(DDPMMove(j, g, g_prev, beta, std))
        return moves


class SR3(Method):
    kind = "restoration"

    def __init__(
        self,
        *,
        image_channels: int = 3,
        mask_channels: int = 0,
        unet_dim: int = 64,
        unet_mults: tuple[int, ...] = (1, 2, 4, 8, 16),
        res_blocks: int = 1,
        attn_res: tuple[int, ...] = (),
        image_size: int = 256,
        norm_groups: int | None = None,
        dropout: float = 0.0,
        timesteps: int = 2000,
        beta_start: float = 1e-6,
        beta_end: float = 1e-2,
        loss: str = "l1",
    ):
        super().__init__(image_channels, mask_channels)
        self.loss_type = loss
        self.timesteps = timesteps
        self.gamma = torch.cumprod(1 - ddpm_betas("linear", timesteps, beta_start, beta_end), 0)
        #: the respaced evaluation schedule and its moves, apart from the network
        self.sampling = SR3Sampling(self.gamma)
        # condition (c) + mask (1) + noisy image (c): 7 channels for RGB with a mask
        self.in_channels = 2 * image_channels + mask_channels
        self.nets = nn.ModuleDict(
            {
                "denoiser": SR3UNet(
                    self.in_channels,
                    image_channels,
                    inner_channel=unet_dim,
                    channel_mults=tuple(unet_mults),
                    res_blocks=res_blocks,
                    attn_res=tuple(attn_res),
                    norm_groups=paper_norm_groups(unet_dim) if norm_groups is None else norm_groups,
                    dropout=dropout,
                    image_size=image_size,
                )
            }
        )

    def networks(self) -> dict[str, nn.Module]:
        return dict(self.nets.items())

    def example_inputs(self, network: str, batch: int, size: int) -> tuple:
        p = self._param()
        x = torch.randn(batch, self.in_channels, size, size, device=p.device, dtype=p.dtype)
        return x, torch.full((batch,), 0.5, device=p.device)

    def _inputs(self, x: Tensor, condition: Tensor, mask: Tensor | None) -> Tensor:
        return torch.cat([condition, x] if mask is None else [condition, mask, x], dim=1)

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None):
        x0, condition = batch["target"], batch["input"]
        mask = self._check_mask(batch.get("mask"), x0)
        b = x0.shape[0]
        idx = randint(self.timesteps, b, generator, x0.device).cpu()
        sqrt_gamma = self.gamma.sqrt()
        upper = sqrt_gamma[idx].to(x0)
        lower = torch.where(idx > 0, sqrt_gamma[(idx - 1).clamp(min=0)], 1.0).to(x0)
        level = lower + (upper - lower) * rand(b, generator, x0)
        eps = randn(x0.shape, generator, x0)
        lv = level[:, None, None, None]
        noisy = lv * x0 + (1 - lv**2).sqrt() * eps
        out = self.nets["denoiser"](self._inputs(noisy, condition, mask), level)
        value = elementwise_loss(self.loss_type, out, eps)
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
        """Ancestral sampling in ``steps`` steps; ``eta`` other than 0 is refused (DDPM variance)."""
        self._refuse_eta(eta)
        condition = self._restoration_condition(condition)
        mask = self._check_mask(mask, condition)
        x = randn(condition.shape, generator, condition)
        batch = condition.shape[0]

        def denoise(x: Tensor, move: DDPMMove) -> Prediction:
            """eps^ at the continuous noise level sqrt(g), and x^_0 from it clamped to [-1, 1]."""
            level = torch.full((batch,), move.gamma**0.5, device=x.device, dtype=x.dtype)
            eps = self.nets["denoiser"](self._inputs(x, condition, mask), level)
            x0 = ((x - (1 - move.gamma) ** 0.5 * eps) / move.gamma**0.5).clamp(-1, 1)
            return Prediction(x0=x0, noise=eps)

        return sample_loop(denoise, sr3_step, x, self.sampling.path(steps), generator, progress)


def sr3_step(prediction: Prediction, move: DDPMMove, x: Tensor) -> Tensor:
    """The DDPM posterior mean of x_{t-1} given x_t and x^_0 (pure; the loop adds the noise)."""
    return ddpm_posterior_mean(prediction.x0, x, move.gamma, move.gamma_prev, move.beta)


def paper_settings(name: str, task: str) -> dict[str, Any]:
    """SR3's own task as its official configs run it (``config/sr_sr3_16_128.json``: the
    2000-step validation schedule, Adam 1e-4, 1M iterations, L1), or SR3 as RDDM's restoration
    baseline (docs/methods.md §3): 100 sampling steps."""
    if task == "super-resolution":
        return {
            "steps": 2000,
            "iterations": 1_000_000,
            "lr": 1e-4,
            "options": {"loss": "l1"},
            "notes": [
                "config/sr_sr3_16_128.json (batch 4); sr_sr3_64_512.json trains at lr 3e-6, batch 2",
                "official networks: 16->128 mults 1,2,4,8,8, attention at 16, 2 res blocks, "
                "dropout 0.2; 64->512 mults 1,2,4,8,16, 1 res block, 16 GroupNorm groups",
            ],
        }
    if task not in RESTORATION_TASKS:
        raise ValueError(f"SR3 is RDDM's restoration baseline; the sources give no {task} run")
    return {
        "steps": 100,
        "lr": 1e-4,
        "options": {"loss": "l1"},
        "notes": ["iterations not stated: the sources do not confirm Table 11's 80k/500k/1000k"],
    }
