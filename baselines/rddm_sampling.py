"""RDDM's sampling schedule, apart from its networks (docs/methods.md §1): the time grid of
the official code (§1.9), the moves of one sampler over it, and each move's variance.

A move u -> v applies eq. 12 with variance sigma^2: the sum-constrained one of the paper and
the code, sigma^2 = eta (beta_bar_t^2 - beta_bar_s^2) beta_bar_s^2 / beta_bar_t^2, or
Algorithm 1's DDIM-consistent one, sigma^2 = eta (1 - g_s)/(1 - g_t)(1 - g_t/g_s) on the DDPM
cumulative product g (``eta_scales="std"``: sigma proportional to eta instead). With S = T
and the joint sampler the moves are the ancestral chain of eqs. 24-27; the decoupled
samplers of Fig. 6 (d2, d3) make two passes over the grid, each applying one part of eq. 12.
"""

from dataclasses import dataclass

from baselines.schedules import RDDMSchedule, rddm_grid

VARIANCES = ("sum-constrained", "ddim")
SAMPLERS = ("joint", "residual-first", "noise-first")
#: which parts of eq. 12 each pass of a sampler applies: the joint sampler moves both
#: coefficients at once, the decoupled ones (Fig. 6 d2/d3) one per pass over the grid
_PASSES = {
    "joint": (("res", "noise"),),
    "residual-first": (("res",), ("noise",)),
    "noise-first": (("noise",), ("res",)),
}


@dataclass(frozen=True)
class State:
    """A point on a sampling path: grid index k (-1 for the end), alpha_bar, beta_bar^2 and
    the DDPM cumulative product gamma used by the DDIM-consistent variance."""

    k: int
    a: float
    b2: float
    gamma: float


@dataclass(frozen=True)
class RDDMMove:
    """One move u -> v of RDDM's reverse process: eq. 12 with variance ``sigma2`` applying
    ``parts`` of it ("res", "noise"), or with ``ancestral`` the S = T step of eqs. 24-27."""

    u: State
    v: State
    sigma2: float = 0.0
    parts: tuple[str, ...] = ("res", "noise")
    ancestral: bool = False

    @property
    def noise_std(self) -> float:
        """sigma of eq. 12, or sqrt(beta_t^2 beta_bar_{t-1}^2 / beta_bar_t^2) (eq. 27); 0 into
        I_0."""
        u, v = self.u, self.v
        if v.k < 0:
            return 0.0
        if self.ancestral:
            beta2 = u.b2 - v.b2
            return (beta2 * v.b2 / u.b2) ** 0.5
        return self.sigma2**0.5 if self.sigma2 > 0 else 0.0


@dataclass(frozen=True)
class RDDMSampling:
    """The sampler's side of RDDM: the cumulative schedule, the variance rule, the sampler
    (joint or decoupled) and whether S = T takes the ancestral chain."""

    schedule: RDDMSchedule
    variance: str = "sum-constrained"
    eta_scales: str = "variance"
    sampler: str = "joint"
    ancestral_at_full_steps: bool = True

    def state(self, k: int) -> State:
        """The state of grid time k (-1: the end, alpha_bar = beta_bar = 0)."""
        s = self.schedule
        if k < 0:
            return State(-1, 0.0, 0.0, 1.0)
        return State(k, float(s.alpha_bar[k]), float(s.beta2_bar[k]), float(s.gamma[k]))

    def grid_states(self, steps: int) -> list[State]:
        """The grid states one pass visits, ending at I_0 (k = -1, alpha_bar = beta_bar = 0)."""
        times = [t for t, _ in rddm_grid(self.schedule.timesteps, steps)]
        return [self.state(t) for t in times] + [self.state(-1)]

    def path(self, steps: int, eta: float = 0.0) -> list[RDDMMove]:
        """The moves of a ``steps``-step sampler: S = T with the joint sampler is the
        ancestral chain of eqs. 24-27 (``ancestral_at_full_steps``); otherwise one pass of
        eq. 12 over the official grid (§1.9) per part of the sampler (Fig. 6 d2/d3 make two)."""
        timesteps = self.schedule.timesteps
        if steps == timesteps and self.ancestral_at_full_steps and self.sampler == "joint":
            states = [self.state(k) for k in range(timesteps - 1, -2, -1)]
            return [
                RDDMMove(u, v, ancestral=True) for u, v in zip(states[:-1], states[1:], strict=True)
            ]
        states = self.grid_states(steps)
        return [
            RDDMMove(u, v, self.sigma2(u, v, eta), parts)
            for parts in _PASSES[self.sampler]
            for u, v in zip(states[:-1], states[1:], strict=True)
        ]

    def sigma2(self, u: State, v: State, eta: float) -> float:
        """Variance of the move u -> v (eq. 12 / Algorithm 1), 0 into the final state."""
        if eta == 0 or v.b2 == 0:
            return 0.0
        scale = eta if self.eta_scales == "variance" else eta**2
        if self.variance == "sum-constrained":
            value = scale * (u.b2 - v.b2) * v.b2 / u.b2 if u.b2 > 0 else 0.0
        else:
            value = scale * (1 - v.gamma) / (1 - u.gamma) * (1 - u.gamma / v.gamma)
        return min(max(value, 0.0), v.b2)
