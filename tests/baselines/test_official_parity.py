"""Samplers and conditioning against the official code as read (tests/official_reference.py):
the start state, the residual-first sampler of experiment 0, AOSA's reading at sampling time,
eta in conditioned sampling and Resfusion's mask channels (docs/official-code.md)."""

import math
import warnings

import official_reference as official
import pytest
import torch
from torch import nn

from baselines import build_method

SMALL = {"unet_dim": 8, "unet_mults": (1, 2)}
SHAPE = (2, 3, 8, 8)


class FakeNet(nn.Module):
    """A fixed, smooth, time-dependent function of the network input (float64)."""

    def __init__(self, in_channels: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(3, in_channels, generator=g, dtype=torch.float64))
        self.phase = nn.Parameter(torch.rand(3, generator=g, dtype=torch.float64))

    def forward(self, x, time):
        mixed = torch.einsum("oc,bchw->bohw", self.weight * 0.3, x)
        return (
            torch.tanh(mixed) + 0.2 * torch.sin(time[:, None] / 97.0 + self.phase)[..., None, None]
        )


def _input(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(SHAPE, generator=g, dtype=torch.float64) * 1.6 - 0.8


def _rddm(name, **options):
    method = build_method(name, **SMALL, **options).double()
    for key in method.nets:
        method.nets[key] = FakeNet(method.in_channels, seed=len(key))
    return method


def _outputs(method):
    """``outputs(x, t)`` for the reference: the same fake networks, fed as the code feeds them."""

    def outputs(x, t, i_in):
        inp = torch.cat([x, i_in], 1)
        time = torch.full((x.shape[0],), float(t), dtype=torch.float64)
        nets = method.nets
        if "aosa" in nets:
            out = nets["aosa"](inp, time)
            return out, out
        res = nets["res"](inp, time) if "res" in nets else None
        noise = nets["noise"](inp, time) if "noise" in nets else None
        return res, noise

    return outputs


def _reference(method, i_in, steps, seed, sum_scale, **kwargs):
    outputs = _outputs(method)
    return official.rddm_sample(
        lambda x, t: outputs(x, t, i_in),
        i_in,
        method.schedule.alpha_bar,
        method.schedule.beta2_bar,
        sum_scale,
        steps,
        torch.Generator().manual_seed(seed),
        **kwargs,
    )


def _ours(method, i_in, steps, seed, **kwargs):
    return method.sample(i_in, steps=steps, generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.mark.parametrize("sum_scale", [0.01, 1.0])
def test_start_state_is_input_plus_sqrt_sum_scale_noise(sum_scale):
    """With an eq.-17 schedule beta_bar_T^2 = 1 - gamma_T != sum_scale; the code starts at
    I_in + sqrt(sum_scale) eps all the same (before the fix: sqrt(beta_bar_T^2))."""
    method = _rddm("rddm", schedule="ddim-linear", sum_scale=sum_scale)
    i_in = _input()
    for steps in (2, 5):
        ref = _reference(method, i_in, steps, seed=3, sum_scale=sum_scale)
        torch.testing.assert_close(_ours(method, i_in, steps, seed=3), ref, rtol=0, atol=1e-10)


def test_paper_start_state_is_an_option():
    method = _rddm("rddm", schedule="ddim-linear", sum_scale=0.01, start_noise="beta-bar-T")
    i_in = _input()
    start = method.start_state(i_in, torch.Generator().manual_seed(4))
    eps = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    expected = i_in + math.sqrt(float(method.schedule.beta2_bar[-1])) * eps
    torch.testing.assert_close(start, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("time_condition", ["t", "coefficients"])
def test_residual_first_sampler_is_experiment_0s(time_condition):
    """Two loops over the grid, networks called at the grid time, loop 1 ends at clip(I_0^)."""
    method = _rddm("rddm", sampler="residual-first", sum_scale=1.0, time_condition=time_condition)
    i_in = _input(1)
    if time_condition == "coefficients":  # exp 0 feeds alpha_bar_t T and beta_bar_t T
        s = method.schedule
        fake_res, fake_noise = method.nets["res"], method.nets["noise"]

        def outputs(x, t):
            inp = torch.cat([x, i_in], 1)
            a = torch.full((2,), float(s.alpha_bar[t]) * 1000, dtype=torch.float64)
            b = torch.full((2,), float(s.beta2_bar[t]) ** 0.5 * 1000, dtype=torch.float64)
            return fake_res(inp, a), fake_noise(inp, b)

        ref = official.rddm_sample(
            outputs, i_in, s.alpha_bar, s.beta2_bar, 1.0, 4,
            torch.Generator().manual_seed(5), passes=("res", "noise"),
        )  # fmt: skip
    else:
        ref = _reference(method, i_in, 4, seed=5, sum_scale=1.0, passes=("res", "noise"))
    torch.testing.assert_close(_ours(method, i_in, 4, seed=5), ref, rtol=0, atol=1e-10)


def test_joint_sampler_matches_the_template():
    method = _rddm("rddm", sum_scale=0.01)
    i_in = _input(2)
    ref = _reference(method, i_in, 5, seed=6, sum_scale=0.01)
    torch.testing.assert_close(_ours(method, i_in, 5, seed=6), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("lam", "reading"), [(0.503, "res"), (0.497, "noise"), (0.5, "noise")])
def test_aosa_sampling_reads_one_objective_by_lambda(lam, reading):
    """Before the switch the official sampler reads the single output as residual when
    lambda > 0.5 and as noise otherwise; it never mixes the two readings."""
    method = _rddm("rddm-aosa", sum_scale=0.01)
    with torch.no_grad():
        method.aosa_lambda.fill_(lam)
    assert method.aosa_branch is None  # still before the switch
    i_in = _input(3)
    ref = _reference(method, i_in, 3, seed=7, sum_scale=0.01, reading=reading)
    torch.testing.assert_close(_ours(method, i_in, 3, seed=7), ref, rtol=0, atol=1e-10)


def test_eta_is_zero_in_conditioned_sampling_unless_honoured():
    method = _rddm("rddm", sum_scale=1.0)
    i_in = _input(4)
    deterministic = _ours(method, i_in, 5, seed=8)
    with pytest.warns(UserWarning, match="eta=1.0 ignored.*honour_eta=True"):
        ignored = _ours(method, i_in, 5, seed=8, eta=1.0)
    torch.testing.assert_close(ignored, deterministic, rtol=0, atol=0)
    honoured = _rddm("rddm", sum_scale=1.0, honour_eta=True)
    with pytest.warns(UserWarning, match="eta=1.0 applied"):
        stochastic = _ours(honoured, i_in, 5, seed=8, eta=1.0)
    assert (stochastic - deterministic).abs().max() > 1e-3
    generation = _rddm("rddm-sm-n", kind="generation", schedule="ddim-linear")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # generation honours eta silently, as the code does
        a = generation.sample(None, shape=SHAPE, steps=5, eta=1.0, generator=torch.Generator().manual_seed(1))  # fmt: skip
        b = generation.sample(None, shape=SHAPE, steps=5, eta=0.0, generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert (a - b).abs().max() > 1e-3


def test_resfusion_mask_channels_are_one_hot_of_the_mask():
    """one_hot(mask, 2) * 2 - 1: channel 0 is [mask == 0], channel 1 is [mask == 1]."""
    method = build_method("resfusion", mask_channels=1, **SMALL)
    seen = {}

    class Recorder(nn.Module):
        def forward(self, inp, time):
            seen["input"] = inp
            return torch.zeros_like(inp[:, :3])

    method.nets["denoiser"] = Recorder()
    mask = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    batch = {"input": torch.zeros(2, 3, 8, 8), "target": torch.zeros(2, 3, 8, 8), "mask": mask}
    method.loss(batch, torch.Generator().manual_seed(0))
    one_hot = torch.nn.functional.one_hot(mask[:, 0].long(), 2).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(seen["input"][:, 6:], one_hot * 2 - 1, rtol=0, atol=0)
