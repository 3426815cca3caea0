"""Coefficient schedules and timestep grids (docs/methods.md §1.6, §1.9, §2, §4).

Everything here is float64 torch on CPU: the samplers read per-step coefficients as Python
floats, so the images keep their own dtype and device and no per-step gathering is needed.

Index conventions: RDDM and DDIM arrays are indexed by the code index k = t - 1 in 0..T-1
(paper t in 1..T). Resfusion and SR3 use the same 0-based index.
"""

import math
from dataclasses import dataclass

import torch

F64 = torch.float64

POWER_SHAPES = ("decreasing", "increasing", "mean")
DISCRETISATIONS = ("template", "linspace")
DDPM_BETA_SCHEDULES = ("linear", "scaled-linear", "squared-cosine")
ADJUST_MODES = (None, "alpha", "beta", "alpha+beta")
DDIM_SPACINGS = ("leading", "trailing", "linspace")


def _check(value, allowed, what: str):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(map(str, allowed))}")


def power_weights(
    timesteps: int, shape: str, power: float = 1.0, discretisation: str = "template"
) -> torch.Tensor:
    """Per-step weights of the normalised power function P(x, a) (eq. 18), summing to 1.

    ``increasing`` is P(x, a), ``decreasing`` is P(1 - x, a), ``mean`` is P(x, 0) = 1/T.
    ``template`` discretises at x = t/T for t = 1..T in float64 (the restoration template:
    alpha_t = (T+1-t)/(T(T+1)/2) for a = 1, no zero entries). ``linspace`` is the float32
    form of experiments 0/3/4/5/6: linspace(0, 1, T)^a, so the first increasing weight is 0.
    """
    _check(shape, POWER_SHAPES, "power-schedule shape")
    _check(discretisation, DISCRETISATIONS, "discretisation")
    if shape == "mean":
        return torch.full((timesteps,), 1.0 / timesteps, dtype=F64)
    if discretisation == "template":
        x = torch.arange(1, timesteps + 1, dtype=F64) / timesteps
    else:
        x = torch.linspace(0, 1, timesteps, dtype=torch.float32)
    y = x**power
    weights = (y / y.sum()).to(F64)
    return weights.flip(0) if shape == "decreasing" else weights


def ddpm_betas(
    kind: str, timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02
) -> torch.Tensor:
    """Per-step variances b_t of the DDPM family (docs/methods.md §1.6, §4).

    ``linear``: linspace(start, end); ``scaled-linear``: linspace(sqrt start, sqrt end)^2
    (the sources give no endpoints for it, so the linear ones are the default);
    ``squared-cosine``: the iDDPM cosine schedule, b <= 0.999.
    """
    _check(kind, DDPM_BETA_SCHEDULES, "DDPM beta schedule")
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, timesteps, dtype=F64)
    if kind == "scaled-linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, timesteps, dtype=F64) ** 2
    steps = torch.arange(timesteps + 1, dtype=F64) / timesteps
    f = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


@dataclass(frozen=True)
class RDDMSchedule:
    """Cumulative RDDM coefficients per code index k = t - 1.

    ``alpha_bar[k]`` = sum of alpha_i, ``beta2_bar[k]`` = sum of beta_i^2 (eq. 7), and
    ``gamma[k]``, the DDPM cumulative product the DDIM-consistent variance is defined on
    (eq. 51): the base schedule for eq.-17 conversions, 1 - beta2_bar otherwise.
    """

    alpha_bar: torch.Tensor
    beta2_bar: torch.Tensor
    gamma: torch.Tensor

    @property
    def timesteps(self) -> int:
        return self.alpha_bar.numel()


def rddm_schedule(
    timesteps: int = 1000,
    *,
    schedule: str = "power",
    sum_scale: float = 0.01,
    alpha_shape: str = "decreasing",
    beta_shape: str = "increasing",
    alpha_power: float = 1.0,
    beta_power: float = 1.0,
    discretisation: str = "template",
    adjust: str | None = None,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> RDDMSchedule:
    """Build RDDM's alpha/beta^2 schedules (§1.6, Algorithm 1).

    ``schedule="power"``: alpha from P(., alpha_power) with ``alpha_shape`` summing to 1, and
    beta^2 from P(., beta_power) with ``beta_shape`` summing to ``sum_scale`` (= beta_bar_T^2).
    The restoration default is alpha decreasing, beta^2 increasing (Table 4).

    ``schedule="ddim-linear" | "ddim-scaled-linear" | "ddim-squared-cosine"``: a DDPM schedule
    converted by eq. 17, alpha_bar = 1 - sqrt(gamma), beta_bar^2 = 1 - gamma. ``adjust``
    ("alpha", "beta", "alpha+beta") then replaces alpha by P(1-x, 1) and/or beta^2 by
    P(x, 1) * sum_scale (Algorithm 1, lines 13-22) while the variance keeps the base gamma.
    """
    if not 0 < sum_scale <= 1:
        raise ValueError(f"sum_scale (beta_bar_T^2) must be in (0, 1], got {sum_scale}")
    _check(adjust, ADJUST_MODES, "adjust mode")

    def cumulative(shape: str, power: float, scale: float) -> torch.Tensor:
        # the code clips the cumulative sums to [0, 1] against round-off
        return (
            (power_weights(timesteps, shape, power, discretisation) * scale).cumsum(0).clamp(0, 1)
        )

    if schedule == "power":
        if adjust is not None:
            raise ValueError("adjust modes apply to eq.-17 converted schedules (schedule='ddim-*')")
        alpha_bar = cumulative(alpha_shape, alpha_power, 1.0)
        beta2_bar = cumulative(beta_shape, beta_power, sum_scale)
        return RDDMSchedule(alpha_bar, beta2_bar, 1 - beta2_bar)
    if not schedule.startswith("ddim-"):
        raise ValueError(
            f"unknown RDDM schedule {schedule!r}; valid: power, "
            + ", ".join(f"ddim-{k}" for k in DDPM_BETA_SCHEDULES)
        )
    gamma = torch.cumprod(1 - ddpm_betas(schedule[5:], timesteps, beta_start, beta_end), 0)
    alpha_bar = 1 - gamma.sqrt()  # eq. 17
    beta2_bar = 1 - gamma  # eq. 17
    if adjust in ("alpha", "alpha+beta"):
        alpha_bar = cumulative("decreasing", 1.0, 1.0)
    if adjust in ("beta", "alpha+beta"):
        beta2_bar = cumulative("increasing", 1.0, sum_scale)
    return RDDMSchedule(alpha_bar, beta2_bar, gamma)


def rddm_grid(timesteps: int, steps: int) -> list[tuple[int, int]]:
    """The official sampling grid (§1.9): linspace(-1, T-1, S+1) in float32, truncated to int,
    reversed, taken as pairs (t, s). S = 10, T = 1000 gives 999 -> 899 -> ... -> 99 -> -1."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be in 1..{timesteps}, got {steps}")
    times = torch.linspace(-1, timesteps - 1, steps + 1, dtype=torch.float32).int().tolist()
    times.reverse()
    return list(zip(times[:-1], times[1:], strict=True))


def ddim_timesteps(timesteps: int, steps: int, spacing: str, offset: int = 0) -> list[int]:
    """DDIM timestep lists (§4): leading, trailing and linspace spacing, largest first."""
    _check(spacing, DDIM_SPACINGS, "timestep spacing")
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be in 1..{timesteps}, got {steps}")
    if spacing == "leading":
        ts = (torch.arange(steps, dtype=F64) * (timesteps // steps)).round() + offset
    elif spacing == "trailing":
        ts = torch.arange(timesteps, 0, -timesteps / steps, dtype=F64).round() - 1
        ts = ts.flip(0)
    else:
        ts = torch.linspace(0, timesteps - 1, steps, dtype=F64).round()
    return [int(t) for t in ts.flip(0).tolist()]


RESFUSION_SCHEDULES = ("linear", "cosine")


@dataclass(frozen=True)
class ResfusionSchedule:
    """Resfusion's truncated schedule (docs/methods.md §2), indexed 0..T-1.

    ``acc_steps`` is T' = argmin_t |sqrt(gamma_t) - 0.5| + 1 (eq. 27), the number of reverse
    steps; entries after index T' - 1 are never used."""

    betas: torch.Tensor
    gamma: torch.Tensor
    acc_steps: int

    @property
    def posterior_variance(self) -> torch.Tensor:
        """b~_t = (1 - gamma_{t-1}) / (1 - gamma_t) * b_t with gamma_{-1} := gamma_0."""
        gamma_prev = torch.cat([self.gamma[:1], self.gamma[:-1]])
        return (1 - gamma_prev) / (1 - self.gamma) * self.betas


def resfusion_schedule(timesteps: int, schedule: str = "linear") -> ResfusionSchedule:
    """Resfusion's truncated ``linear`` (``LinearProScheduler``, the paper's runs) or ``cosine``
    (``CosineProScheduler``) schedule; both end where sqrt(gamma) reaches 0.5 (eq. 27).

    ``linear``: b = linspace(1e-4 * 1000/T, 0.02 * 1000/T, T); T <= 5 is invalid (b > 1).
    ``cosine``: the iDDPM cosine b_t = min(1 - f((t+1)/T) / f(t/T), 0.999) with
    f(s) = cos((s + 0.008)/1.008 * pi/2)^2, so gamma_t = f((t+1)/T) / f(0); T >= 2.
    Truncation, shared by both: at the first index where sqrt(gamma) falls to 0.5 or below,
    if it is more than 0.01 below, that step is shortened so that gamma = 0.25 exactly; T' is
    computed afterwards.
    """
    _check(schedule, RESFUSION_SCHEDULES, "Resfusion schedule")
    if schedule == "linear":
        if timesteps <= 5:
            raise ValueError(
                f"Resfusion needs T > 5 (T <= 5 makes b_t > 1 early), got T={timesteps}"
            )
        scale = 1000 / timesteps
        betas = torch.linspace(1e-4 * scale, 0.02 * scale, timesteps, dtype=F64)
    else:
        if timesteps < 2:
            raise ValueError(f"the cosine Resfusion schedule needs T >= 2, got T={timesteps}")
        betas = ddpm_betas("squared-cosine", timesteps)
    return _truncate_at_half(betas)


def _truncate_at_half(betas: torch.Tensor) -> ResfusionSchedule:
    """Shorten the step that crosses sqrt(gamma) = 0.5 and locate T' (docs/methods.md §2)."""
    alphas = 1 - betas
    gamma = torch.cumprod(alphas, 0)
    # compare gamma with 0.25 rather than sqrt(gamma) with 0.5: for small linear T the late
    # b_t exceed 1 and gamma turns negative, which still counts as "below" (cut anyway)
    below = (gamma <= 0.25).nonzero()
    last = betas.numel() - 1
    if below.numel():
        last = int(below[0])
        if last > 0 and gamma[last] < (0.5 - 0.01) ** 2:
            alphas[last] = 0.25 / gamma[last - 1]
            betas = 1 - alphas
            gamma = torch.cumprod(alphas, 0)
    acc_steps = int((gamma[: last + 1].sqrt() - 0.5).abs().argmin()) + 1
    return ResfusionSchedule(betas, gamma, acc_steps)


def resfusion_timesteps_for(steps: int, schedule: str = "linear", search_up_to: int = 5000) -> int:
    """The smallest T whose truncated ``schedule`` samples in exactly ``steps`` steps."""
    first = 6 if schedule == "linear" else 2
    for timesteps in range(first, search_up_to):
        if resfusion_schedule(timesteps, schedule).acc_steps == steps:
            return timesteps
    raise ValueError(f"no T <= {search_up_to} gives a {schedule} Resfusion schedule T' = {steps}")


@dataclass(frozen=True)
class DDPMMove:
    """One ancestral DDPM move from code index ``index`` (docs/methods.md §2, §3): gamma_t,
    gamma_{t-1} (1 after the last index), b_t, and the posterior standard deviation of the
    noise added after it (0 at the last move)."""

    index: int
    gamma: float
    gamma_prev: float
    beta: float
    noise_std: float


def ddpm_posterior_mean(
    x0: torch.Tensor, xt: torch.Tensor, gamma: float, gamma_prev: float, beta: float
) -> torch.Tensor:
    """Mean of the DDPM posterior q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6-7), with
    ``gamma`` = gamma_t, ``gamma_prev`` = gamma_{t-1} (1 at the last step) and ``beta`` = b_t:
    sqrt(gamma_prev) b_t / (1 - gamma_t) x_0 + sqrt(a_t) (1 - gamma_prev) / (1 - gamma_t) x_t."""
    coef_x0 = gamma_prev**0.5 * beta / (1 - gamma)
    coef_xt = (1 - beta) ** 0.5 * (1 - gamma_prev) / (1 - gamma)
    return coef_x0 * x0 + coef_xt * xt
