"""Resfusion (Shi et al., NeurIPS 2024; methods.md §2).

With R = x^_0 - x_0 (x^_0 the degraded input; RDDM's I_res) the forward kernel is
q(x_t | x_{t-1}, R) = N(sqrt(a_t) x_{t-1} + (1 - sqrt(a_t)) R, b_t I), so (eq. 20)
x_t = sqrt(g_t) x_0 + (1 - sqrt(g_t)) R + sqrt(1 - g_t) eps: DDPM on y = x - R. On the
truncated schedule sqrt(g) reaches 0.5 at index T' - 1, where x_t = 0.5 x^_0 + sqrt(0.75) eps
involves no ground truth ("smooth equivalence"), so sampling starts there and takes T' steps.

Training (mode ``epsilon``) regresses the resnoise eps_R = eps + (1 - sqrt(a_t)) sqrt(1 - g_t)
/ b_t R (eq. 24); the reverse step (eq. 33) is x_{t-1} = (x_t - b_t / sqrt(1 - g_t) eps_theta)
/ sqrt(a_t) + sqrt(b~_t) z, clamped to [-1, 1]. Modes ``sample`` (predict x_0) and ``residual``
(predict R) use the DDPM posterior on x - R instead (eq. 44).
"""

import torch
from torch import Tensor, nn

from baselines.base import Method, Progress, elementwise_loss, randint, randn
from baselines.schedules import resfusion_schedule, resfusion_timesteps_for
from baselines.unet import UNet

PREDICTIONS = ("epsilon", "sample", "residual")


class Resfusion(Method):
    kind = "restoration"

    def __init__(
        self,
        *,
        image_channels: int = 3,
        mask_channels: int = 0,
        unet_dim: int = 64,
        unet_mults: tuple[int, ...] = (1, 2, 4, 8),
        timesteps: int = 12,
        prediction: str = "epsilon",
        loss: str = "l2",
        clip: bool = True,
    ):
        super().__init__(image_channels, mask_channels)
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown Resfusion prediction {prediction!r}; valid: {PREDICTIONS}")
        self.prediction, self.loss_type, self.clip = prediction, loss, clip
        self.schedule = resfusion_schedule(timesteps)
        self.timesteps = timesteps
        # input (x_t, x^_0[, mask one-hot]): the mask is a 2-channel one-hot in [-1, 1]
        self.in_channels = 2 * image_channels + (2 if mask_channels else 0)
        self.nets = nn.ModuleDict(
            {"denoiser": UNet(self.in_channels, image_channels, unet_dim, tuple(unet_mults))}
        )

    @property
    def steps(self) -> int:
        """T': the only number of reverse steps this schedule supports."""
        return self.schedule.acc_steps

    def networks(self) -> dict[str, nn.Module]:
        return dict(self.nets.items())

    def example_inputs(self, network: str, batch: int, size: int) -> tuple:
        p = self._param()
        x = torch.randn(batch, self.in_channels, size, size, device=p.device, dtype=p.dtype)
        return x, torch.full((batch,), float(self.steps - 1), device=p.device)

    def _inputs(self, x: Tensor, degraded: Tensor, mask: Tensor | None) -> Tensor:
        parts = [x, degraded]
        if mask is not None:
            parts.append(torch.cat([mask, 1 - mask], dim=1) * 2 - 1)
        return torch.cat(parts, dim=1)

    def _coefficients(self, idx: Tensor, like: Tensor):
        s = self.schedule
        gamma = s.gamma[idx.cpu()].to(like)[:, None, None, None]
        beta = s.betas[idx.cpu()].to(like)[:, None, None, None]
        return gamma, beta

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None):
        x0, degraded = batch["target"], batch["input"]
        mask = self._check_mask(batch.get("mask"), x0)
        idx = randint(self.steps, x0.shape[0], generator, x0.device)  # t ~ U{0..T'-1}
        eps = randn(x0.shape, generator, x0)
        residual = degraded - x0
        gamma, beta = self._coefficients(idx, x0)
        x_t = gamma.sqrt() * x0 + (1 - gamma.sqrt()) * residual + (1 - gamma).sqrt() * eps
        out = self.nets["denoiser"](self._inputs(x_t, degraded, mask), idx.to(x0.dtype))
        if self.prediction == "epsilon":  # resnoise, eq. 24
            target = eps + (1 - (1 - beta).sqrt()) * (1 - gamma).sqrt() / beta * residual
        else:
            target = x0 if self.prediction == "sample" else residual
        value = elementwise_loss(self.loss_type, out, target)
        return {"loss": value, f"loss_{self.prediction}": value.detach()}

    def reverse_step(self, x: Tensor, degraded: Tensor, out: Tensor, idx: int) -> Tensor:
        """Mean of one reverse step from index ``idx`` given the network output (no noise)."""
        s = self.schedule
        gamma, beta = float(s.gamma[idx]), float(s.betas[idx])
        if self.prediction == "epsilon":  # eq. 33
            return (x - beta / (1 - gamma) ** 0.5 * out) / (1 - beta) ** 0.5
        x0 = out if self.prediction == "sample" else degraded - out
        residual = degraded - x0
        gamma_prev = float(s.gamma[idx - 1]) if idx > 0 else 1.0
        coef_x0 = gamma_prev**0.5 * beta / (1 - gamma)
        coef_xt = (1 - beta) ** 0.5 * (1 - gamma_prev) / (1 - gamma)
        return coef_x0 * (x0 - residual) + coef_xt * (x - residual) + residual  # eq. 44 on x - R

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
        """T' ancestral steps from x_T' = 0.5 x^_0 + sqrt(0.75) eps. ``eta`` does not apply:
        the reverse step is DDPM's (posterior variance b~_t, no noise at index 0)."""
        if steps != self.steps:
            raise ValueError(
                f"resfusion with T={self.timesteps} samples in exactly T'={self.steps} steps; "
                f"build it with timesteps={resfusion_timesteps_for(steps)} for {steps} steps"
            )
        degraded = self._restoration_condition(condition)
        mask = self._check_mask(mask, degraded)
        s = self.schedule
        start = self.steps - 1
        gamma = float(s.gamma[start])
        x = gamma**0.5 * degraded + (1 - gamma) ** 0.5 * randn(degraded.shape, generator, degraded)
        variance = s.posterior_variance
        batch = degraded.shape[0]
        for i, idx in enumerate(range(start, -1, -1)):
            t = torch.full((batch,), float(idx), device=x.device)
            out = self.nets["denoiser"](self._inputs(x, degraded, mask), t)
            x = self.reverse_step(x, degraded, out, idx)
            if idx > 0:
                x = x + float(variance[idx]) ** 0.5 * randn(x.shape, generator, x)
            if self.clip:
                x = x.clamp(-1, 1)
            if progress is not None:
                progress(i + 1, self.steps)
        return x
