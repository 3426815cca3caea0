"""RDDM: residual denoising diffusion models (Liu et al., CVPR 2024; docs/methods.md §1).

Forward (eq. 7): I_t = I_0 + alpha_bar_t I_res + beta_bar_t eps, I_res = I_in - I_0, which by
eq. 16 is also I_in + (alpha_bar_t - 1) I_res + beta_bar_t eps.
Reverse (eq. 12), for a step t -> s of the sampling grid:
    I_s = I_t - (alpha_bar_t - alpha_bar_s) I_res^ - (beta_bar_t - sqrt(beta_bar_s^2 - sigma^2)) eps^
          + sigma z,
eq. 13 being sigma = 0. The variance is either the sum-constrained one of the paper and the
code, sigma^2 = eta (beta_bar_t^2 - beta_bar_s^2) beta_bar_s^2 / beta_bar_t^2 (eta scales
sigma^2), or Algorithm 1's DDIM-consistent one, sigma^2 = eta (1 - g_s)/(1 - g_t)(1 - g_t/g_s)
on the DDPM cumulative product g, which with eq. 17 reproduces DDIM. ``eta_scales="std"``
switches either to DDIM's convention (sigma proportional to eta); the two agree at eta 0 and 1.

Objectives (§1.3): SM-Res predicts I_res and derives eps by eq. 16, SM-N the reverse, SM-Res-N
predicts both with two UNets (the official restoration code), one UNet with 6 output channels
(Table 5, absent from the code) or a shared encoder with two decoders. AOSA (Algorithm 2,
eq. 53) learns which of SM-Res / SM-N to use. Time conditioning is the integer index t - 1
("t") or alpha_bar_t T and beta_bar_t T for the residual and noise nets ("coefficients", the
partially path-independent variant of §5.2). Samplers: the joint one on the official grid
(§1.9), the ancestral loop of eqs. 24-27 when S = T, and the decoupled ones of Fig. 6 (d2)
removing residuals first and (d3) removing noise first, each as two passes over the grid.

Where the official code and the paper differ, the code's behaviour is the default (the
published numbers came from it) and the paper's is an option (docs/official-code.md):
restoration starts at I_in + sqrt(sum_scale) eps (``start_noise="sum_scale"``; the paper's
I_in + beta_bar_T eps is ``"beta-bar-T"``, equal for power schedules), and conditioned
sampling is deterministic whatever ``eta`` is asked for unless ``honour_eta=True``.
"""

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from baselines.base import Method, Progress, elementwise_loss, randint, randn
from baselines.rddm_sampling import SAMPLERS, VARIANCES, RDDMMove, RDDMSampling, State
from baselines.sampling import Prediction, sample_loop
from baselines.schedules import RDDMSchedule, rddm_schedule
from baselines.settings import RESTORATION_TASKS
from baselines.unet import UNet

OBJECTIVES = ("res_noise", "res", "noise", "aosa")
NETWORKS = ("2net", "1net", "shared_encoder")
START_NOISE = ("sum_scale", "beta-bar-T")

# The code floors 1 - alpha_bar_T at 1e-6 before dividing by it; beta_bar can be exactly 0
# at t = 1 in the linspace discretisation, where its factor in the update is 0 as well.
_MIN_ONE_MINUS_ALPHA = 1e-6
_MIN_BETA = 1e-12


#: each option with a fixed set of values, and that set
_CHOICES = {
    "kind": ("restoration", "generation"), "objective": OBJECTIVES, "network": NETWORKS,
    "condition": ("input", "none"), "variance": VARIANCES, "eta_scales": ("variance", "std"),
    "time_condition": ("t", "coefficients"), "sampler": SAMPLERS, "start_noise": START_NOISE,
}  # fmt: skip


def check_options(mask_channels: int, **options: str) -> None:
    """Refuse an unknown value, and the combinations the method cannot realise."""
    for what, value in options.items():
        if value not in _CHOICES[what]:
            allowed = ", ".join(_CHOICES[what])
            raise ValueError(f"unknown RDDM {what} {value!r}; valid: {allowed}")
    objective, network = options["objective"], options["network"]
    separate = network == "2net" and objective != "aosa"
    if network != "2net" and objective != "res_noise":
        raise ValueError(f"network={network!r} realises SM-Res-N; use objective='res_noise'")
    if options["time_condition"] == "coefficients" and not separate:
        raise ValueError(
            "time_condition='coefficients' feeds alpha_bar*T to the residual net and "
            "beta_bar*T to the noise net, so it needs separate networks (network='2net')"
        )
    if options["sampler"] != "joint" and (objective != "res_noise" or network != "2net"):
        raise ValueError("the decoupled samplers (Fig. 6 d2/d3) need SM-Res-N-2Net")
    if options["kind"] == "generation" and mask_channels:
        raise ValueError("RDDM generation takes no mask")


def heads(objective: str, network: str) -> list[str]:
    """The networks an objective trains: one per predicted quantity, or one joint network."""
    if objective != "res_noise":
        return [objective]
    return ["res", "noise"] if network == "2net" else ["joint"]


class RDDM(Method):
    """See the module docstring. Options are listed in the constructor signature."""

    def __init__(
        self,
        *,
        image_channels: int = 3,
        mask_channels: int = 0,
        unet_dim: int = 64,
        unet_mults: tuple[int, ...] = (1, 2, 4, 8),
        kind: str = "restoration",
        objective: str = "res_noise",
        network: str = "2net",
        condition: str = "input",
        timesteps: int = 1000,
        schedule: str = "power",
        sum_scale: float | None = None,
        alpha_shape: str = "decreasing",
        beta_shape: str = "increasing",
        alpha_power: float = 1.0,
        beta_power: float = 1.0,
        discretisation: str = "template",
        adjust: str | None = None,
        variance: str = "sum-constrained",
        eta_scales: str = "variance",
        time_condition: str = "t",
        sampler: str = "joint",
        loss: str | None = None,
        clip: bool = True,
        clip_residual: bool = True,
        ancestral_at_full_steps: bool = True,
        aosa_delta: float = 0.01,
        start_noise: str = "sum_scale",
        honour_eta: bool = False,
    ):
        super().__init__(image_channels, mask_channels)
        check_options(
            kind=kind, objective=objective, network=network, condition=condition,
            variance=variance, eta_scales=eta_scales, time_condition=time_condition,
            sampler=sampler, start_noise=start_noise, mask_channels=mask_channels,
        )  # fmt: skip
        if kind == "generation":
            condition = "none"  # I_in = 0: nothing to condition on
        self.kind = kind
        self.objective, self.network, self.condition = objective, network, condition
        self.time_condition = time_condition
        self.loss_type = loss or ("l1" if kind == "restoration" else "l2")
        self.clip, self.clip_residual = clip, clip_residual
        self.start_noise, self.honour_eta = start_noise, honour_eta
        # code default: 0.01 when conditioned on an input image, 1 for generation (§1.7)
        sum_scale = sum_scale if sum_scale is not None else (0.01 if kind == "restoration" else 1.0)
        self.sum_scale = sum_scale
        self.schedule: RDDMSchedule = rddm_schedule(
            timesteps,
            schedule=schedule,
            sum_scale=sum_scale,
            alpha_shape=alpha_shape,
            beta_shape=beta_shape,
            alpha_power=alpha_power,
            beta_power=beta_power,
            discretisation=discretisation,
            adjust=adjust,
        )
        self.timesteps = timesteps
        #: the grid, the moves and their variance: the sampler's schedule, apart from the nets
        self.sampling = RDDMSampling(self.schedule, variance, eta_scales, sampler, ancestral_at_full_steps)  # fmt: skip

        c = image_channels
        # RDDM reads the shadow mask as an RGB image, so it adds c channels (§5)
        self.in_channels = c + (c + (c if mask_channels else 0) if condition == "input" else 0)
        if condition == "none" and mask_channels:
            raise ValueError("condition='none' feeds x_t only; a mask would be ignored")
        self._unet_args = {"dim": unet_dim, "dim_mults": tuple(unet_mults)}
        self.nets = nn.ModuleDict({name: self._new_unet(name) for name in heads(objective, network)})  # fmt: skip

        self.aosa_delta = aosa_delta
        self.aosa_lambda = nn.Parameter(torch.tensor(0.5), requires_grad=objective == "aosa")
        # -1 while AOSA still trains both objectives; the iteration of the switch after it
        self.register_buffer("aosa_switch_iteration", torch.tensor(-1))
        self.aosa_history: list[tuple[int, float]] = []

    def _new_unet(self, name: str) -> UNet:
        out = self.image_channels * (2 if name == "joint" and self.network == "1net" else 1)
        return UNet(
            self.in_channels,
            out,
            shared_encoder=self.network == "shared_encoder",
            **self._unet_args,
        )

    # interface ------------------------------------------------------------------------------

    def networks(self) -> dict[str, nn.Module]:
        return dict(self.nets.items())

    def example_inputs(self, network: str, batch: int, size: int) -> tuple:
        p = self._param()
        x = torch.randn(batch, self.in_channels, size, size, device=p.device, dtype=p.dtype)
        return x, torch.full((batch,), float(self.timesteps - 1), device=p.device)

    @property
    def aosa_branch(self) -> str | None:
        """After the AOSA switch: "res" (SM-Res) or "noise" (SM-N); None before it."""
        if int(self.aosa_switch_iteration) < 0:
            return None
        return "res" if float(self.aosa_lambda) > 0.5 else "noise"

    def training_step_hook(self, iteration: int) -> None:
        """AOSA (Algorithm 2, lines 10-18): once |lambda - 0.5| >= delta, freeze lambda at 1
        (SM-Res) or 0 (SM-N) and re-initialise the network in place (the optimizer keeps its
        references; its moment estimates for the old weights are kept as they are)."""
        if self.objective != "aosa" or int(self.aosa_switch_iteration) >= 0:
            return
        lam = float(self.aosa_lambda.detach())
        self.aosa_history.append((iteration, lam))
        if abs(lam - 0.5) < self.aosa_delta:
            return
        with torch.no_grad():
            self.aosa_lambda.fill_(1.0 if lam > 0.5 else 0.0)
            fresh = self._new_unet("aosa").to(self._param())
            self.nets["aosa"].load_state_dict(fresh.state_dict())
        self.aosa_lambda.requires_grad_(False)
        self.aosa_switch_iteration.fill_(iteration)

    # network evaluation ---------------------------------------------------------------------

    def _inputs(self, x: Tensor, i_in: Tensor, mask: Tensor | None) -> Tensor:
        if self.condition == "none":
            return x
        parts = [x, i_in]
        if mask is not None:
            parts.append(mask.expand(-1, self.image_channels, -1, -1))
        return torch.cat(parts, dim=1)

    def _outputs(self, inp: Tensor, k: Tensor, a: Tensor, b: Tensor):
        """Raw network outputs (residual, noise); either may be None."""
        if self.time_condition == "t":
            t_res = t_noise = k.to(inp.dtype)
        else:  # §5.2: I_res^(I_t, alpha_bar_t T), eps^(I_t, beta_bar_t T)
            t_res, t_noise = a * self.timesteps, b * self.timesteps
        nets = self.nets
        if "joint" in nets:
            out = nets["joint"](inp, t_res)
            return out if isinstance(out, tuple) else out.chunk(2, dim=1)
        if "aosa" in nets:  # one output, read as residual or noise depending on lambda
            out = nets["aosa"](inp, t_res)
            return out, out
        res = nets["res"](inp, t_res) if "res" in nets else None
        noise = nets["noise"](inp, t_noise) if "noise" in nets else None
        return res, noise

    def _clip(self, x: Tensor) -> Tensor:
        return x.clamp(-1, 1) if self.clip else x

    def _clip_res(self, x: Tensor) -> Tensor:
        # the true residual lies in [-2, 2], but the code clamps it to [-1, 1] (§1.4)
        return x.clamp(-1, 1) if self.clip and self.clip_residual else x

    @staticmethod
    def noise_from_res(x: Tensor, i_in: Tensor, res: Tensor, a, b) -> Tensor:
        """Eq. 16: eps = (I_t - I_in - (alpha_bar_t - 1) I_res) / beta_bar_t."""
        return (x - i_in - (a - 1) * res) / _floor(b, _MIN_BETA)

    @staticmethod
    def x0_from_noise(x: Tensor, i_in: Tensor, noise: Tensor, a, b) -> Tensor:
        """Eq. 16: I_0 = (I_t - alpha_bar_t I_in - beta_bar_t eps) / (1 - alpha_bar_t)."""
        return (x - a * i_in - b * noise) / _floor(1 - a, _MIN_ONE_MINUS_ALPHA)

    def _mode(self) -> str:
        if self.objective == "aosa":
            return self.aosa_branch or "aosa"
        return self.objective

    def predictions(self, x: Tensor, i_in: Tensor, mask: Tensor | None, state: State) -> Prediction:
        """I_0^, eps^ and I_res^ at a sampling state, clipped as the official code does (§1.4).

        An AOSA network is read as SM-Res when lambda > 0.5 and as SM-N otherwise, before the
        switch as after it: the official sampler never mixes the two readings (Algorithm 2's
        mixture is a training loss only; docs/official-code.md, "AOSA sampling")."""
        batch = x.shape[0]
        k = torch.full((batch,), state.k, device=x.device)
        a, b = state.a, state.b2**0.5
        res_o, noise_o = self._outputs(
            self._inputs(x, i_in, mask),
            k,
            torch.full((batch,), a, device=x.device, dtype=x.dtype),
            torch.full((batch,), b, device=x.device, dtype=x.dtype),
        )
        mode = self._mode()
        if mode == "aosa":
            mode = "res" if float(self.aosa_lambda) > 0.5 else "noise"
        return self._combine(mode, x, i_in, res_o, noise_o, a, b)

    def _combine(self, mode: str, x, i_in, res_o, noise_o, a, b) -> Prediction:
        if mode == "res_noise":
            res = self._clip_res(res_o)
            return Prediction(self._clip(x - a * res - b * noise_o), noise_o, res)
        if mode == "res":
            res = self._clip_res(res_o)
            return Prediction(self._clip(i_in - res), self.noise_from_res(x, i_in, res, a, b), res)
        x0 = self._clip(self.x0_from_noise(x, i_in, noise_o, a, b))
        return Prediction(x0, noise_o, self._clip_res(i_in - x0))

    def _aosa_mix(self, x, i_in, out, a, b, lam):
        """I_res^ = lam o + (1-lam) f_eps->res(o), eps^ = lam f_res->eps(o) + (1-lam) o, with
        f_eps->res(o) = I_in - clip(I_0(o as noise)) as in the code."""
        res_from_eps = i_in - self.x0_from_noise(x, i_in, out, a, b).clamp(-1, 1)
        eps_from_res = self.noise_from_res(x, i_in, out, a, b)
        return lam * out + (1 - lam) * res_from_eps, lam * eps_from_res + (1 - lam) * out

    # training -------------------------------------------------------------------------------

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None):
        """L = lambda_res ||I_res - I_res^||  + lambda_eps ||eps - eps^|| (eq. 15; l1 for
        restoration, l2 otherwise), t ~ U{1..T}, I_t from eq. 7. AOSA uses eq. 53."""
        x0 = batch["target"]
        i_in = torch.zeros_like(x0) if self.kind == "generation" else batch["input"]
        mask = self._check_mask(batch.get("mask"), x0)
        k = randint(self.timesteps, x0.shape[0], generator, x0.device)
        eps = randn(x0.shape, generator, x0)
        res = i_in - x0
        a = self.schedule.alpha_bar[k.cpu()].to(x0)
        b = self.schedule.beta2_bar[k.cpu()].sqrt().to(x0)
        a4, b4 = a[:, None, None, None], b[:, None, None, None]
        x_t = x0 + a4 * res + b4 * eps
        res_o, noise_o = self._outputs(self._inputs(x_t, i_in, mask), k, a, b)
        parts = {}
        mode = self._mode()
        if mode == "aosa":
            lam = self.aosa_lambda
            res_hat, eps_hat = self._aosa_mix(x_t, i_in, res_o, a4, b4, lam)
            parts["loss_res"] = elementwise_loss(self.loss_type, res_hat, res)
            parts["loss_noise"] = elementwise_loss(self.loss_type, eps_hat, eps)
            total = lam * parts["loss_res"] + (1 - lam) * parts["loss_noise"]  # eq. 53
            parts["aosa_lambda"] = lam.detach().clone()
        else:
            if mode in ("res_noise", "res"):
                parts["loss_res"] = elementwise_loss(self.loss_type, res_o, res)
            if mode in ("res_noise", "noise"):
                parts["loss_noise"] = elementwise_loss(self.loss_type, noise_o, eps)
            total = sum(parts.values())
        return {"loss": total, **parts}

    # sampling -------------------------------------------------------------------------------

    def sampling_eta(self, eta: float) -> float:
        """The eta the sampler applies. The official code sets eta = 0 whenever it is
        conditioned on an input image, so restoration is deterministic given I_T; a non-zero
        eta there is honoured only with ``honour_eta=True``, and either way a warning says
        what happened (docs/official-code.md, "eta in restoration")."""
        if eta == 0 or self.condition != "input":
            return eta
        if not self.honour_eta:
            warnings.warn(
                f"eta={eta} ignored: the official RDDM code samples conditioned tasks with "
                "eta = 0; build the method with honour_eta=True (-o honour_eta=true) to apply it",
                stacklevel=3,
            )
            return 0.0
        warnings.warn(
            f"eta={eta} applied to conditioned sampling (honour_eta=True); the official code "
            "behind the published numbers uses eta = 0 there",
            stacklevel=3,
        )
        return eta

    def start_state(self, i_in: Tensor, generator: torch.Generator) -> Tensor:
        """I_T: N(0, I) for generation; for restoration I_in + sqrt(sum_scale) eps as the
        official samplers start (``start_noise="sum_scale"``), or eq. 7's I_in + beta_bar_T eps
        (``"beta-bar-T"``). They differ only where beta_bar_T^2 != sum_scale (eq.-17 schedules)."""
        eps = randn(i_in.shape, generator, i_in)
        if self.kind == "generation":
            return eps
        if self.start_noise == "sum_scale":
            return i_in + self.sum_scale**0.5 * eps
        return i_in + float(self.schedule.beta2_bar[-1]) ** 0.5 * eps

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
        """Eq. 12 over the official grid (§1.9), one pass per part of the sampler, or the
        ancestral chain when S = T (``RDDMSampling.path``), through the shared loop.

        Every move calls the networks at the grid state u of each pair (t, s) and ends with
        I <- clip(I_0^) at s = -1; the decoupled samplers apply only their pass's part of
        eq. 12 (the residual term, or the noise term) and start their second pass from the
        first pass's I_0^, as experiment 0 of the official code does (Fig. 6 d2)."""
        p = self._param()
        if self.kind == "generation":
            i_in = torch.zeros(self._generation_shape(shape), device=p.device, dtype=p.dtype)
        else:
            i_in = self._restoration_condition(condition)
        mask = self._check_mask(mask, i_in)
        eta = self.sampling_eta(eta)
        x = self.start_state(i_in, generator)

        def denoise(x: Tensor, move: RDDMMove) -> Prediction:
            return self.predictions(x, i_in, mask, move.u)

        return sample_loop(
            denoise, rddm_step, x, self.sampling.path(steps, eta), generator, progress
        )


def rddm_step(prediction: Prediction, move: RDDMMove, x: Tensor) -> Tensor:
    """The mean of I_s given I_t and the predictions (pure; the loop adds the noise).

    Into s = -1 it is clip(I_0^), as the code returns (eq. 12 with alpha_bar = beta_bar = 0
    gives I_0^ as well). Ancestral (S = T, eqs. 24-27): c1 I_t + c2 I_res^ + c3 I_0^ with
    c1 = beta_bar_{t-1}^2 / beta_bar_t^2, c3 = beta_t^2 / beta_bar_t^2 and
    c2 = (beta_t^2 alpha_bar_{t-1} - beta_bar_{t-1}^2 alpha_t) / beta_bar_t^2.
    Otherwise eq. 12: I_t - (alpha_bar_t - alpha_bar_s) I_res^
    - (beta_bar_t - sqrt(beta_bar_s^2 - sigma^2)) eps^, each term only if the move's parts
    name it (Fig. 6 d2/d3)."""
    u, v = move.u, move.v
    if v.k < 0:
        return prediction.x0
    if move.ancestral:
        beta2 = u.b2 - v.b2
        c1, c3 = v.b2 / u.b2, beta2 / u.b2
        c2 = (beta2 * v.a - v.b2 * (u.a - v.a)) / u.b2
        return c1 * x + c2 * prediction.residual + c3 * prediction.x0
    if "res" in move.parts:
        x = x - (u.a - v.a) * prediction.residual
    if "noise" in move.parts:
        x = x - (u.b2**0.5 - (v.b2 - move.sigma2) ** 0.5) * prediction.noise
    return x


def _floor(value, minimum: float):
    if isinstance(value, Tensor):
        return value.clamp_min(minimum)
    return max(value, minimum)


# The paper's settings per task (Table 4 and docs/methods.md §6): beta_bar_T^2, steps, loss, objective, iterations
PAPER_TABLE: dict[str, dict[str, Any]] = {
    "shadow-removal": {"sum_scale": 0.01, "steps": 5, "objective": "res_noise", "it": 80_000},
    "low-light": {"sum_scale": 1.0, "steps": 2, "objective": "res", "it": 80_000},
    "deblurring": {"sum_scale": 0.01, "steps": 2, "objective": "res_noise", "it": 400_000},
    "deraining": {"sum_scale": 1.0, "steps": 5, "objective": "res_noise", "it": 120_000},
    # not in the paper: its shadow-removal row, the restoration template with the least noise
    "super-resolution": {"sum_scale": 0.01, "steps": 5, "objective": "res_noise", "it": 80_000},
    "generation": {"sum_scale": 1.0, "steps": 10, "objective": "noise", "it": 100_000},
    "inpainting": {"sum_scale": 1.0, "steps": 10, "objective": "res_noise", "it": 100_000},
    "translation": {"sum_scale": 1.0, "steps": 10, "objective": "res_noise", "it": 100_000},
}


def paper_settings(name: str, task: str) -> dict[str, Any]:
    """The paper's settings of RDDM variant ``name`` for ``task`` (Table 4, docs/methods.md §6);
    the options the variant's name fixes are left out."""
    from baselines.registry import fixed_options

    row = PAPER_TABLE[task]
    restoration = task in RESTORATION_TASKS
    options: dict[str, Any] = {"sum_scale": row["sum_scale"], "objective": row["objective"]}
    if restoration:
        options["loss"] = "l1"
        lr = 8e-5  # Adam, both UNets jointly, effective batch 2 in the template
        notes = ["restoration: Adam(8e-5, betas (0.9, 0.99)), batch 1 x 2 accumulation, 256^2"]
    else:
        options["loss"] = "l2"
        options["kind"] = "generation" if task == "generation" else "restoration"
        lr = 2e-4  # RAdam, one optimizer per UNet
        notes = ["RAdam(2e-4), one optimizer per UNet"]
        if task in ("generation", "translation"):
            options["schedule"] = "ddim-linear"  # eq. 17
        if task in ("inpainting", "translation"):
            options["condition"] = "none"  # exps 4/5 feed x_t only
    for key in fixed_options(name):
        options.pop(key, None)
    # the template's dataset (datasets/base.py): Augmentor's flip_left_right(1) mirrors every
    # training image (augment_flip is on by default); LOL (experiment 3) equalises the input;
    # generation and translation keep the dataset's defaults
    data: dict[str, Any] = {"train_flip": "always"} if restoration else {}
    if restoration:
        data["equalize_input"] = task == "low-light"
    if task == "inpainting":  # datasets/inpaint/dataset.py: torchvision Resize((64, 64)), no flip
        data = {"train_flip": "none", "resize_filter": "bilinear"}
    if task == "super-resolution":
        notes.append("the paper runs no super-resolution: its shadow-removal settings (Table 4) "
                     "with the upsampled LR as the degraded input")  # fmt: skip
    if name == "rddm-aosa":
        notes.append("AOSA iterations are the objective-selection phase plus the paper's budget")
    return {
        "steps": row["steps"],
        "iterations": row["it"],
        "lr": lr,
        "options": options,
        "data": data,
        "notes": notes,
    }
