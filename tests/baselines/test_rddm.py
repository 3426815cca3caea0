"""RDDM against closed forms, an independent DDIM sampler and oracle predictors."""

import pytest
import torch
from torch import nn

from baselines import build_method
from baselines.rddm import RDDM, rddm_step
from baselines.rddm_sampling import State
from baselines.sampling import Prediction, sample_loop

SMALL = {"unet_dim": 8, "unet_mults": (1, 2)}
SHAPE = (2, 3, 8, 8)


def _pair(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(SHAPE, generator=g, dtype=dtype) * 1.6 - 0.8
    i_in = (x0 * 0.6 + 0.2 * torch.rand(SHAPE, generator=g, dtype=dtype)).clamp(-1, 1)
    return x0, i_in


class FakeEps(nn.Module):
    """A fixed random noise predictor: a 1x1 mixing of x_t plus a timestep-dependent bias."""

    def __init__(self, in_channels: int, seed: int = 3):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(
            torch.randn(3, in_channels, generator=g, dtype=torch.float64) * 0.4
        )
        self.phase = nn.Parameter(torch.rand(3, generator=g, dtype=torch.float64))

    def forward(self, x, time):
        mixed = torch.einsum("oc,bchw->bohw", self.weight, x)
        return (
            torch.tanh(mixed) + torch.sin(time[:, None] / 97.0 + self.phase[None])[..., None, None]
        )


def ddim_reference(eps_net, shape, steps, eta, seed, T=1000, draw_dtype=torch.float64):
    """DDIM written from §4 alone: trailing timesteps, linear b, final gamma_prev = 1.
    Computes in float64; ``draw_dtype`` is the dtype the noise is drawn in."""
    b = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    gamma = torch.cumprod(1 - b, 0)
    ts = [T - 1 - i * (T // steps) for i in range(steps)]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=draw_dtype).double()
    for i, t in enumerate(ts):
        g_t = gamma[t]
        g_s = gamma[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, dtype=torch.float64)
        eps = eps_net(x, torch.full((shape[0],), float(t), dtype=torch.float64))
        x0 = (x - (1 - g_t).sqrt() * eps) / g_t.sqrt()
        sigma = eta * ((1 - g_s) / (1 - g_t)).sqrt() * (1 - g_t / g_s).sqrt()
        x = g_s.sqrt() * x0 + (1 - g_s - sigma**2).sqrt() * eps
        if sigma > 0:
            x = x + sigma * torch.randn(shape, generator=g, dtype=draw_dtype).double()
    return x


def _rddm_as_ddim(eta_scales="variance"):
    method = build_method(
        "rddm-sm-n",
        kind="generation",
        schedule="ddim-linear",
        variance="ddim",
        eta_scales=eta_scales,
        clip=False,
        **SMALL,
    ).double()
    method.nets["noise"] = FakeEps(3)
    return method


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps", [1, 10])
def test_rddm_eq17_reproduces_ddim(eta, steps):
    method = _rddm_as_ddim()
    got = method.sample(
        None, shape=SHAPE, steps=steps, eta=eta, generator=torch.Generator().manual_seed(5)
    )
    ref = ddim_reference(method.nets["noise"], SHAPE, steps, eta, seed=5)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_rddm_eq17_reproduces_ddim_in_float32(eta):
    method = _rddm_as_ddim().float()
    gen = torch.Generator().manual_seed(5)
    got = method.sample(None, shape=SHAPE, steps=10, eta=eta, generator=gen).double()
    ref = ddim_reference(method.nets["noise"].double(), SHAPE, 10, eta, 5, draw_dtype=torch.float32)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_ddim_module_matches_the_reference():
    method = build_method("ddim", spacing="trailing", **SMALL).double()
    method.nets["eps"] = FakeEps(3)
    for eta in (0.0, 1.0):
        got = method.sample(
            None, shape=SHAPE, steps=10, eta=eta, generator=torch.Generator().manual_seed(9)
        )
        ref = ddim_reference(method.nets["eps"], SHAPE, 10, eta, seed=9)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_eta_conventions_differ_between_0_and_1():
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    variance, std = _rddm_as_ddim("variance"), _rddm_as_ddim("std")
    std.nets["noise"] = variance.nets["noise"]
    a = variance.sample(None, shape=SHAPE, steps=10, eta=0.5, generator=g())
    b = std.sample(None, shape=SHAPE, steps=10, eta=0.5, generator=g())
    ref = ddim_reference(variance.nets["noise"], SHAPE, 10, 0.5, seed=5)  # eta scales sigma
    torch.testing.assert_close(b, ref, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(a, ref)


def test_sum_constrained_variance_ratio_eq50():
    """Under eq. 17 the native variance is gamma_{t-1} times DDIM's (eq. 50): 2.75e-4 at 999->899."""
    native = build_method("rddm-sm-n", kind="generation", schedule="ddim-linear", **SMALL)
    ddim = build_method(
        "rddm-sm-n", kind="generation", schedule="ddim-linear", variance="ddim", **SMALL
    )
    u, v = native.sampling.grid_states(10)[:2]
    ratio = native.sampling.sigma2(u, v, 1.0) / ddim.sampling.sigma2(u, v, 1.0)
    assert ratio == pytest.approx(float(native.schedule.gamma[899]), rel=1e-9)
    assert ratio == pytest.approx(2.75e-4, rel=0.01)
    # the sum of sum-constrained variances over the full chain stays below beta_bar_T^2 (eq. 52)
    path = native.sampling.grid_states(1000)
    total = sum(
        native.sampling.sigma2(a, b, 1.0) for a, b in zip(path[:-2], path[1:-1], strict=True)
    )
    assert total <= float(native.schedule.beta2_bar[-1])


@pytest.mark.parametrize("schedule", ["power", "ddim-linear"])
def test_forward_marginal_moments(schedule):
    """x_t drawn by the training loss has mean I_0 + alpha_bar_t I_res and std beta_bar_t (eq. 7)."""
    sum_scale = 0.5 if schedule == "power" else 1.0
    method = build_method("rddm", schedule=schedule, sum_scale=sum_scale, **SMALL)
    x0 = torch.full((6000, 3, 1, 1), 0.3)
    i_in = torch.full_like(x0, -0.5)
    captured = {}

    class Recorder(nn.Module):
        """Stands in for both UNets: records the network input and time, predicts zeros."""

        def forward(self, inp, time):
            captured.update(x=inp[:, :3], k=time.long())
            return torch.zeros_like(x0)

    method.nets["res"] = method.nets["noise"] = Recorder()
    method.loss({"target": x0, "input": i_in}, torch.Generator().manual_seed(0))
    k, x = captured["k"], captured["x"].double()
    a = method.schedule.alpha_bar[k][:, None, None, None]
    b = method.schedule.beta2_bar[k].sqrt()[:, None, None, None]
    z = (x - (0.3 + a * (-0.8))) / b  # standardised by the closed form
    assert abs(z.mean().item()) < 0.04 and abs(z.std().item() - 1) < 0.03
    assert k.unique().numel() > 900  # t ~ U{1..T}
    # at a fixed late t the sample mean and variance themselves match
    late = k >= 900
    mean = x[late].mean(dim=(1, 2, 3)) - (0.3 - 0.8 * a[late].flatten())
    assert abs(mean.mean().item()) < 3 * b[late].max().item() / late.sum().item() ** 0.5


def _oracle_predictions(x0, i_in):
    """True residual and the noise implied by the state (eq. 7 solved for eps)."""

    def predictions(x, state: State) -> Prediction:
        res = i_in - x0
        b = state.b2**0.5
        eps = (x - x0 - state.a * res) / b if b > 0 else torch.zeros_like(x)
        return Prediction(x - state.a * res - b * eps, eps, res)

    return predictions


def _sample_recording(method, predictions, i_in, steps, seed, eta=0.0):
    """Run the method's path through the shared loop with ``predictions(x, state)`` as the
    denoiser, from the method's own start state; return the output, the (image, state)
    pairs the denoiser saw, and the progress calls."""
    visited, seen = [], []

    def denoise(x, move):
        visited.append((x.clone(), move.u))
        return predictions(x, move.u)

    generator = torch.Generator().manual_seed(seed)
    out = sample_loop(
        denoise,
        rddm_step,
        method.start_state(i_in, generator),
        method.sampling.path(steps, eta),
        generator,
        progress=lambda i, n: seen.append((i, n)),
    )
    return out, visited, seen


class OracleNet(nn.Module):
    """Plays the network in t-conditioning: residual, noise, both as 6 channels, or a pair."""

    def __init__(self, schedule, x0, i_in, output):
        super().__init__()
        self.schedule, self.x0, self.i_in, self.output = schedule, x0, i_in, output

    def forward(self, inp, time):
        k = time.long()
        a = self.schedule.alpha_bar[k].to(inp)[:, None, None, None]
        b = self.schedule.beta2_bar[k].sqrt().to(inp)[:, None, None, None]
        res = self.i_in - self.x0
        eps = (inp[:, :3] - self.x0 - a * res) / b
        return {"res": res, "noise": eps, "six": torch.cat([res, eps], 1), "pair": (res, eps)}[
            self.output
        ]


@pytest.mark.parametrize(
    ("name", "nets"),
    [
        ("rddm-sm-res", {"res": "res"}),
        ("rddm-sm-n", {"noise": "noise"}),
        ("rddm", {"res": "res", "noise": "noise"}),
        ("rddm-1net", {"joint": "six"}),
        ("rddm-shared-encoder", {"joint": "pair"}),
    ],
)
def test_objectives_give_the_true_trajectory_with_oracles(name, nets):
    x0, i_in = _pair()
    # eq. 17's schedule keeps alpha_bar_T < 1: with alpha_bar_T = 1, I_T = I_in + beta_bar_T eps
    # says nothing about I_0 and SM-N's derived residual at t = T is 0/0
    method = build_method(name, clip=False, schedule="ddim-linear", **SMALL).double()
    for key, output in nets.items():
        method.nets[key] = OracleNet(method.schedule, x0, i_in, output)
    out, visited, seen = _sample_recording(
        method, lambda x, state: method.predictions(x, i_in, None, state), i_in, steps=5, seed=1
    )
    # the method's own sample() walks the same path to the same output
    torch.testing.assert_close(
        method.sample(i_in, steps=5, generator=torch.Generator().manual_seed(1)),
        out,
        rtol=0,
        atol=0,
    )
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-8)
    assert seen == [(i, 5) for i in range(1, 6)]
    # every objective walks the same path: the eq. 7 states of the noise implied by I_T (the
    # code starts at I_in + beta_bar_T eps although alpha_bar_T < 1 here), kept by eq. 13
    start, first = visited[0]
    eps = (start - x0 - first.a * (i_in - x0)) / first.b2**0.5
    assert [state.k for _, state in visited] == [999, 799, 599, 399, 199]
    for x, state in visited[1:]:
        expected = x0 + state.a * (i_in - x0) + state.b2**0.5 * eps
        torch.testing.assert_close(x, expected, rtol=0, atol=1e-8)


def test_last_step_formula_equals_x0_prediction():
    x0, i_in = _pair()
    for objective in ("res", "noise", "res_noise"):
        method = build_method("rddm", objective=objective, clip=False, **SMALL).double()
        torch.manual_seed(0)
        x = torch.randn(SHAPE, dtype=torch.float64)
        state = method.sampling.grid_states(5)[-2]
        pred_x0, eps, res = method.predictions(x, i_in, None, state)
        # eq. 12 into alpha_bar_{-1} = beta_bar_{-1} = 0 with sigma = 0
        formula = x - state.a * res - state.b2**0.5 * eps
        torch.testing.assert_close(formula, pred_x0, rtol=1e-9, atol=1e-9)


def test_eq16_conversions_are_inverse():
    x0, i_in = _pair()
    a, b = 0.37, 0.21
    eps = torch.randn(SHAPE, dtype=torch.float64)
    res = i_in - x0
    x = x0 + a * res + b * eps  # eq. 7
    torch.testing.assert_close(x, i_in + (a - 1) * res + b * eps)  # eq. 16 form
    torch.testing.assert_close(RDDM.noise_from_res(x, i_in, res, a, b), eps)
    torch.testing.assert_close(RDDM.x0_from_noise(x, i_in, eps, a, b), x0)
    # the residual the sampler reads from a noise prediction: I_in - I_0^
    back = i_in - RDDM.x0_from_noise(x, i_in, RDDM.noise_from_res(x, i_in, res, a, b), a, b)
    torch.testing.assert_close(back, res)


@pytest.mark.parametrize("sampler", ["residual-first", "noise-first"])
def test_decoupled_samplers_make_two_passes_over_the_grid(sampler):
    """Each pass visits the grid states and ends at I_0^ (Fig. 6 d2/d3 as experiment 0 runs
    d2; tests/baselines/test_official_parity.py compares d2 with the official loops)."""
    x0, i_in = _pair()
    method = build_method(
        "rddm", sampler=sampler, time_condition="coefficients", clip=False, sum_scale=1.0, **SMALL
    ).double()
    assert [s.k for s in method.sampling.grid_states(4)] == [999, 749, 499, 249, -1]
    oracle = _oracle_predictions(x0, i_in)
    out, visited, seen = _sample_recording(method, oracle, i_in, steps=4, seed=2)
    assert [state.k for _, state in visited] == [999, 749, 499, 249] * 2
    assert seen == [(i, 8) for i in range(1, 9)]
    torch.testing.assert_close(visited[4][0], x0, rtol=0, atol=1e-9)  # pass 1 ends at I_0^
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-9)


def test_coefficient_time_conditioning_feeds_alpha_and_beta_times_T():
    method = build_method("rddm", time_condition="coefficients", **SMALL)
    seen = {}

    class Recorder(nn.Module):
        def __init__(self, key):
            super().__init__()
            self.key = key

        def forward(self, inp, time):
            seen[self.key] = time
            return torch.zeros_like(inp[:, :3])

    method.nets["res"], method.nets["noise"] = Recorder("res"), Recorder("noise")
    method.sample(torch.zeros(SHAPE[:1] + (3, 8, 8)), steps=2, generator=torch.Generator())
    k = 499  # the last evaluation of S = 2
    torch.testing.assert_close(
        seen["res"], torch.full((2,), float(method.schedule.alpha_bar[k]) * 1000)
    )
    torch.testing.assert_close(
        seen["noise"], torch.full((2,), float(method.schedule.beta2_bar[k]) ** 0.5 * 1000)
    )
    plain = build_method("rddm", **SMALL)
    plain.nets["res"], plain.nets["noise"] = Recorder("res"), Recorder("noise")
    plain.sample(torch.zeros(2, 3, 8, 8), steps=2, generator=torch.Generator())
    assert seen["res"].tolist() == seen["noise"].tolist() == [499.0, 499.0]


def test_ancestral_loop_equals_eq12_with_eta_one():
    x0, i_in = _pair()
    kwargs = {"timesteps": 20, "clip": False, "sum_scale": 0.5, **SMALL}
    ancestral = build_method("rddm", **kwargs).double()
    stepped = build_method("rddm", ancestral_at_full_steps=False, **kwargs).double()
    oracle = _oracle_predictions(x0, i_in)
    assert all(move.ancestral for move in ancestral.sampling.path(20))
    assert not any(move.ancestral for move in stepped.sampling.path(20))
    a, _, _ = _sample_recording(ancestral, oracle, i_in, steps=20, seed=4, eta=1.0)
    b, _, _ = _sample_recording(stepped, oracle, i_in, steps=20, seed=4, eta=1.0)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_clipping_follows_the_official_table():
    x0, i_in = _pair()
    method = build_method("rddm", **SMALL).double()
    method.nets["res"] = OracleNet(method.schedule, x0 - 1.5, i_in, "res")  # residual beyond 1
    method.nets["noise"] = OracleNet(method.schedule, x0, i_in, "noise")
    state = method.sampling.grid_states(5)[0]
    x = torch.zeros(SHAPE, dtype=torch.float64)
    pred_x0, _, res = method.predictions(x, i_in, None, state)
    assert res.abs().max() <= 1 and pred_x0.abs().max() <= 1
    method.clip_residual = False
    _, _, res = method.predictions(x, i_in, None, state)
    assert res.abs().max() > 1
    method.clip = False
    pred_x0, _, _ = method.predictions(x, i_in, None, state)
    assert pred_x0.abs().max() > 1


def test_conditioning_channels():
    assert build_method("rddm", **SMALL).in_channels == 6
    assert build_method("rddm", mask_channels=1, **SMALL).in_channels == 9  # mask read as RGB
    assert build_method("rddm", condition="none", **SMALL).in_channels == 3
    assert build_method("rddm-sm-n", kind="generation", **SMALL).in_channels == 3
    with pytest.raises(ValueError, match="mask"):
        build_method("rddm", mask_channels=1, **SMALL).sample(
            torch.zeros(1, 3, 8, 8), steps=1, generator=torch.Generator()
        )


def test_aosa_switches_and_reinitialises():
    method = build_method("rddm-aosa", **SMALL)
    x0, i_in = (t.float() for t in _pair())
    batch = {"target": x0, "input": i_in}
    out = method.loss(batch, torch.Generator().manual_seed(0))
    assert {"loss", "loss_res", "loss_noise", "aosa_lambda"} <= out.keys()
    out["loss"].backward()
    assert method.aosa_lambda.grad is not None  # lambda is learned with the network
    before = {k: v.clone() for k, v in method.nets["aosa"].state_dict().items()}
    method.training_step_hook(1)
    assert method.aosa_branch is None  # lambda still 0.5
    with torch.no_grad():
        method.aosa_lambda.fill_(0.52)
    method.training_step_hook(2)
    assert method.aosa_branch == "res" and int(method.aosa_switch_iteration) == 2
    assert float(method.aosa_lambda) == 1.0 and not method.aosa_lambda.requires_grad
    after = method.nets["aosa"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert method.aosa_history == [(1, 0.5), (2, pytest.approx(0.52))]
    out = method.loss(batch, torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "loss_res"}
    noise_branch = build_method("rddm-aosa", **SMALL)
    with torch.no_grad():
        noise_branch.aosa_lambda.fill_(0.48)
    noise_branch.training_step_hook(7)
    assert noise_branch.aosa_branch == "noise"
    assert set(noise_branch.loss(batch, torch.Generator())) == {"loss", "loss_noise"}


@pytest.mark.parametrize("name", ["rddm", "rddm-1net", "rddm-aosa"])
def test_same_seed_gives_bitwise_identical_samples(name):
    torch.manual_seed(0)
    method = build_method(name, **SMALL)
    _, i_in = _pair(dtype=torch.float32)
    runs = [
        method.sample(i_in, steps=3, eta=1.0, generator=torch.Generator().manual_seed(11))
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    other = method.sample(i_in, steps=3, eta=1.0, generator=torch.Generator().manual_seed(12))
    assert not torch.equal(runs[0], other)
    losses = [
        method.loss({"target": i_in, "input": i_in.flip(-1)}, torch.Generator().manual_seed(3))[
            "loss"
        ]
        for _ in range(2)
    ]
    assert torch.equal(losses[0], losses[1])


def test_option_errors():
    with pytest.raises(ValueError, match="2net"):
        build_method("rddm-1net", time_condition="coefficients", **SMALL)
    with pytest.raises(ValueError, match="SM-Res-N-2Net"):
        build_method("rddm-sm-res", sampler="residual-first", **SMALL)
    with pytest.raises(ValueError, match="valid"):
        build_method("rddm", variance="ddpm", **SMALL)
