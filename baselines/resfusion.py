"""Resfusion (Shi et al., NeurIPS 2024; docs/methods.md §2).

With R = x^_0 - x_0 (x^_0 the degraded input; RDDM's I_res) the forward kernel is
q(x_t | x_{t-1}, R) = N(sqrt(a_t) x_{t-1} + (1 - sqrt(a_t)) R, b_t I), so (eq. 20)
x_t = sqrt(g_t) x_0 + (1 - sqrt(g_t)) R + sqrt(1 - g_t) eps: DDPM on y = x - R. On the
truncated schedule (linear or cosine) sqrt(g) is closest to 0.5 at index T' - 1 (eq. 27), where
x_t = 0.5 x^_0 + sqrt(0.75) eps involves no ground truth ("smooth equivalence"), so sampling
starts there (eq. 28) and takes T' steps; eqs. 27 and 28 are numbered as in the official
code's comments (the paper gives them no number).

Training (mode ``epsilon``) regresses the resnoise eps_R = eps + (1 - sqrt(a_t)) sqrt(1 - g_t)
/ b_t R (eq. 24); the reverse step (eq. 33) is x_{t-1} = (x_t - b_t / sqrt(1 - g_t) eps_theta)
/ sqrt(a_t) + sqrt(b~_t) z. Modes ``sample`` (predict x_0) and ``residual`` (predict R) use the
DDPM posterior on x - R instead (eq. 44), with the predicted x_0 clamped to [-1, 1]. As in the
official ``generate``, intermediate states are not clamped; the output is (``clip``).

Generation (``kind="generation"``, CIFAR-10) sets x^_0 = 0: R = -x_0, the start is
sqrt(0.75) eps and the network sees x_t alone, as the official ``resfusion_generate`` feeds it.
The network is RDDM's UNet (§5) or the DDPM CIFAR-10 UNet (``network="ddpm-cifar"``).
"""

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from baselines.base import Method, Progress, elementwise_loss, randint, randn
from baselines.ddpm_unet import DDPMUNet
from baselines.sampling import Prediction, sample_loop
from baselines.schedules import (
    DDPMMove,
    ResfusionSchedule,
    ddpm_posterior_mean,
    resfusion_schedule,
    resfusion_timesteps_for,
)
from baselines.unet import UNet

PREDICTIONS = ("epsilon", "sample", "residual")
NETWORKS = ("rddm-unet", "ddpm-cifar")
KINDS = ("restoration", "generation")


@dataclass(frozen=True)
class ResfusionSampling:
    """Resfusion's sampler schedule: the truncated schedule (eq. 27) and its T' moves, from
    index T' - 1 down to 0, with the posterior variance b~_t (no noise after index 0)."""

    schedule: ResfusionSchedule

    def path(self) -> list[DDPMMove]:
        s = self.schedule
        variance = s.posterior_variance
        return [
            DDPMMove(
                idx,
                float(s.gamma[idx]),
                float(s.gamma[idx - 1]) if idx > 0 else 1.0,
                float(s.betas[idx]),
                float(variance[idx]) ** 0.5 if idx > 0 else 0.0,
            )
            for idx in range(s.acc_steps - 1, -1, -1)
        ]


class Resfusion(Method):
    """See the module docstring (eqs. 20, 24, 27, 33, 44). ``unet_dim`` and ``unet_mults`` size
    the RDDM UNet; ``ddpm_channels`` and ``ddpm_mults`` size the DDPM CIFAR-10 UNet (paper:
    128 and (1, 2, 2, 2), 2 ResBlocks per level, attention at 16x16 of a 32x32 input).
    ``ddpm_channels`` left at None is twice ``unet_dim``: 128 at the paper profile's width 64,
    and proportionally narrower in a smaller run profile. ``dropout`` applies to the DDPM UNet
    only (the RDDM UNet has none)."""

    def __init__(
        self,
        *,
        image_channels: int = 3,
        mask_channels: int = 0,
        unet_dim: int = 64,
        unet_mults: tuple[int, ...] = (1, 2, 4, 8),
        kind: str = "restoration",
        timesteps: int = 12,
        schedule: str = "linear",
        network: str = "rddm-unet",
        ddpm_channels: int | None = None,
        ddpm_mults: tuple[int, ...] = (1, 2, 2, 2),
        dropout: float = 0.1,
        prediction: str = "epsilon",
        loss: str = "l2",
        clip: bool = True,
    ):
        super().__init__(image_channels, mask_channels)
        for value, allowed, what in [
            (kind, KINDS, "kind"),
            (network, NETWORKS, "network"),
            (prediction, PREDICTIONS, "prediction"),
        ]:
            if value not in allowed:
                raise ValueError(f"unknown Resfusion {what} {value!r}; valid: {', '.join(allowed)}")
        if kind == "generation" and mask_channels:
            raise ValueError("Resfusion generation takes no mask")
        self.kind = kind
        self.prediction, self.loss_type, self.clip = prediction, loss, clip
        self.schedule = resfusion_schedule(timesteps, schedule)
        self.timesteps, self.schedule_name = timesteps, schedule
        #: the T' reverse moves and their variance, apart from the network
        self.sampling = ResfusionSampling(self.schedule)
        # restoration input (x_t, x^_0[, mask one-hot]), the mask a 2-channel one-hot in
        # [-1, 1] ordered [1 - m, m]; generation feeds x_t alone (x^_0 = 0 carries nothing)
        if kind == "generation":
            self.in_channels = image_channels
        else:
            self.in_channels = 2 * image_channels + (2 if mask_channels else 0)
        if network == "ddpm-cifar":
            width = 2 * unet_dim if ddpm_channels is None else ddpm_channels
            denoiser = DDPMUNet(
                self.in_channels, image_channels, width, tuple(ddpm_mults), dropout=dropout
            )
        else:
            denoiser = UNet(self.in_channels, image_channels, unet_dim, tuple(unet_mults))
        self.nets = nn.ModuleDict({"denoiser": denoiser})

    @classmethod
    def check_steps(cls, steps: int, options: dict) -> None:
        """Resfusion samples in exactly T' steps (eq. 27), T' fixed by T and the schedule."""
        timesteps = options.get("timesteps", 12)
        schedule = options.get("schedule", "linear")
        acc_steps = resfusion_schedule(timesteps, schedule).acc_steps
        if steps == acc_steps:
            return
        try:
            hint = f"-o timesteps={resfusion_timesteps_for(steps, schedule)} samples in {steps}"
        except ValueError:
            hint = f"no {schedule} schedule samples in {steps} steps"
        raise ValueError(
            f"resfusion with timesteps={timesteps} samples in exactly T'={acc_steps} steps, "
            f"not {steps}: use --steps {acc_steps}, or {hint}"
        )

    @property
    def steps(self) -> int:
        """T' (eq. 27): the only number of reverse steps this schedule supports."""
        return self.schedule.acc_steps

    def networks(self) -> dict[str, nn.Module]:
        return dict(self.nets.items())

    def example_inputs(self, network: str, batch: int, size: int) -> tuple:
        p = self._param()
        x = torch.randn(batch, self.in_channels, size, size, device=p.device, dtype=p.dtype)
        return x, torch.full((batch,), float(self.steps - 1), device=p.device)

    def _inputs(self, x: Tensor, degraded: Tensor, mask: Tensor | None) -> Tensor:
        if self.kind == "generation":
            return x
        parts = [x, degraded]
        if mask is not None:
            # one_hot(mask, 2) * 2 - 1 in the official model: channel c is [mask == c], so the
            # shadow-free indicator 1 - m comes first (docs/official-code.md, "Resfusion mask")
            parts.append(torch.cat([1 - mask, mask], dim=1) * 2 - 1)
        return torch.cat(parts, dim=1)

    def _coefficients(self, idx: Tensor, like: Tensor):
        s = self.schedule
        gamma = s.gamma[idx.cpu()].to(like)[:, None, None, None]
        beta = s.betas[idx.cpu()].to(like)[:, None, None, None]
        return gamma, beta

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None):
        """MSE (or smooth-L1) between the network output and the resnoise of eq. 24 (or x_0, R),
        x_t drawn by eq. 20 with t ~ U{0..T'-1}. Generation uses x^_0 = 0 and needs no
        "input"; any "input" in the batch is ignored there, as RDDM's generation does."""
        x0 = batch["target"]
        if self.kind == "generation":
            degraded = torch.zeros_like(x0)
        elif "input" in batch:
            degraded = batch["input"]
        else:
            raise ValueError(
                "Resfusion restoration trains on (input, target) pairs; the batch has no "
                "'input' (build it with kind='generation' to train with x^_0 = 0)"
            )
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

    def read_output(self, out: Tensor, degraded: Tensor) -> Prediction:
        """The network output read in the trained parametrisation: the resnoise eps_R (eq. 24),
        or x_0 (given directly or as x^_0 - R) clamped when ``clip``, with its residual."""
        if self.prediction == "epsilon":
            return Prediction(noise=out)
        x0 = out if self.prediction == "sample" else degraded - out
        if self.clip:
            x0 = x0.clamp(-1, 1)
        return Prediction(x0=x0, residual=degraded - x0)

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
        """T' ancestral steps (eq. 33 / 44) from x_T' = 0.5 x^_0 + sqrt(0.75) eps (eq. 28).

        Generation, or ``condition=None`` with ``shape``, uses x^_0 = 0: the start is
        sqrt(0.75) eps. ``eta`` other than 0 is refused: the reverse step is DDPM's (posterior variance
        b~_t, no noise at index 0). The output is clamped to [-1, 1] when ``clip``."""
        self._refuse_eta(eta)
        self.check_steps(steps, {"timesteps": self.timesteps, "schedule": self.schedule_name})
        if self.kind == "generation" or condition is None:
            p = self._param()
            degraded = torch.zeros(self._generation_shape(shape), device=p.device, dtype=p.dtype)
        else:
            degraded = self._restoration_condition(condition)
        mask = self._check_mask(mask, degraded)
        gamma = float(self.schedule.gamma[self.steps - 1])
        x = gamma**0.5 * degraded + (1 - gamma) ** 0.5 * randn(degraded.shape, generator, degraded)
        batch = degraded.shape[0]

        def denoise(x: Tensor, move: DDPMMove) -> Prediction:
            t = torch.full((batch,), float(move.index), device=x.device)
            return self.read_output(
                self.nets["denoiser"](self._inputs(x, degraded, mask), t), degraded
            )

        x = sample_loop(denoise, resfusion_step, x, self.sampling.path(), generator, progress)
        return x.clamp(-1, 1) if self.clip else x


def resfusion_step(prediction: Prediction, move: DDPMMove, x: Tensor) -> Tensor:
    """The mean of x_{t-1} (pure; the loop adds the noise). From the resnoise, eq. 33:
    (x_t - b_t / sqrt(1 - g_t) eps_R) / sqrt(a_t); from x_0 and R, eq. 44: the DDPM posterior
    mean on y = x - R, plus R."""
    if prediction.noise is not None:  # eq. 33
        return (x - move.beta / (1 - move.gamma) ** 0.5 * prediction.noise) / (1 - move.beta) ** 0.5
    residual = prediction.residual
    mean = ddpm_posterior_mean(
        prediction.x0 - residual, x - residual, move.gamma, move.gamma_prev, move.beta
    )
    return mean + residual  # eq. 44


def paper_settings(name: str, task: str) -> dict[str, Any]:
    """Resfusion's settings for ``task`` (docs/methods.md §2): 5 steps (T = 12) for ISTD, LOL
    and RainDrop; the CIFAR-10 generation setup."""
    # lr = 8.8e-4 x effective batch / 256; ISTD 4x8, LOL 16x2, Raindrop 4x8 -> 32 each
    # super-resolution is no paper experiment: its restoration settings, noted below
    table = {"shadow-removal": 32, "low-light": 32, "deraining": 32, "super-resolution": 32}
    if task == "generation":  # CIFAR-10: T = 273 -> T' = 100, DDPM CIFAR UNet, x^_0 = 0
        return {
            "steps": 100,
            "lr": 4e-4,
            "epochs": 3000,
            "options": {"timesteps": 273, "network": "ddpm-cifar", "kind": "generation"},
            "notes": [
                "iterations not stated (3000 epochs, batch 128)",
                "the official script scales its base lr 4e-4 by batch/256 (128/256 -> 2e-4, "
                "equal to its min_lr); the 4e-4 here is the base value",
                "the DDPM CIFAR UNet is 2 x unet_dim wide (128 at the paper profile's 64) "
                "with mults (1, 2, 2, 2); the profile's unet_mults do not apply to it",
            ],
        }
    if task not in table:
        raise ValueError(f"the Resfusion paper reports no {task} experiment")
    return {
        "steps": 5,
        "lr": 8.8e-4 * table[task] / 256,
        "epochs": 5000,
        "options": {"timesteps": 12, "loss": "l2"},
        # datamodule/{ISTD,LOL,Raindrop}.py: RandomCrop(256) and HorizontalFlip(p=0.5) for
        # training; the test transform only normalises (the files' size); no equalisation
        "data": {
            "train_crop": "random",
            "train_flip": "random",
            "equalize_input": False,
            "test_size": "native",
        },
        "notes": ["iterations not stated: 5000 epochs, AdamW (amsgrad), cosine decay to 3e-5"]
        + (
            [
                "the paper runs no super-resolution: its restoration settings, with the "
                "upsampled LR as the degraded input"
            ]
            if task == "super-resolution"
            else []
        ),  # fmt: skip
    }
