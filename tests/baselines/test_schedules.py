"""Schedules and grids against closed forms and the tables of methods.md."""

import math

import pytest
import torch

from baselines.schedules import (
    ddim_timesteps,
    ddpm_betas,
    power_weights,
    rddm_grid,
    rddm_schedule,
    resfusion_schedule,
    resfusion_timesteps_for,
)

T = 1000


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (2, [999, 499, -1]),
        (3, [999, 665, 332, -1]),
        (5, [999, 799, 599, 399, 199, -1]),
        (10, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99, -1]),
    ],
)
def test_rddm_grid_examples(steps, expected):
    pairs = rddm_grid(T, steps)
    assert [t for t, _ in pairs] + [pairs[-1][1]] == expected
    assert all(s == nxt for (_, s), (nxt, _) in zip(pairs, pairs[1:], strict=False))


def test_rddm_grid_full_steps_visits_every_index():
    assert [t for t, _ in rddm_grid(T, T)] == list(range(T - 1, -1, -1))


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [
        ("leading", [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]),
        ("trailing", [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),
        ("linspace", [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]),
    ],
)
def test_ddim_spacing_table(spacing, expected):
    assert ddim_timesteps(T, 10, spacing) == expected


def test_ddim_spacing_pitfall_cases_use_the_list():
    # §4: trailing with 13 steps lists 922 after 999 (diffusers' step() would use 923)
    assert ddim_timesteps(T, 13, "trailing")[:2] == [999, 922]
    assert ddim_timesteps(T, 10, "leading", offset=1)[0] == 901


def test_trailing_equals_rddm_grid_when_steps_divide_T():
    for steps in (2, 5, 10, 20):
        assert ddim_timesteps(T, steps, "trailing") == [t for t, _ in rddm_grid(T, steps)]
    # and differs by truncation otherwise (665 against 666 for S = 3)
    assert ddim_timesteps(T, 3, "trailing")[1] == 666
    assert rddm_grid(T, 3)[1][0] == 665


@pytest.mark.parametrize(
    ("timesteps", "acc"),
    [
        (6, 3),
        (8, 3),
        (9, 4),
        (11, 4),
        (12, 5),
        (13, 5),
        (25, 10),
        (26, 10),
        (27, 10),
        (53, 20),
        (54, 20),
        (134, 50),
        (137, 50),
        (271, 100),
        (272, 100),
        (273, 100),
    ],
)
def test_resfusion_acc_steps_table(timesteps, acc):
    assert resfusion_schedule(timesteps).acc_steps == acc


@pytest.mark.parametrize(("below", "above", "acc"), [(24, 28, 10), (52, 55, 20), (133, 138, 50)])
def test_resfusion_table_ranges_are_tight(below, above, acc):
    assert resfusion_schedule(below).acc_steps < acc < resfusion_schedule(above).acc_steps


def test_resfusion_T12_values_and_truncation():
    s = resfusion_schedule(12)
    expected = [0.9958, 0.9132, 0.7586, 0.5572, 0.5]
    assert torch.allclose(
        s.gamma[:5].sqrt(), torch.tensor(expected, dtype=torch.float64), atol=1e-4
    )
    assert s.gamma[4].item() == pytest.approx(0.25, abs=1e-15)  # shortened step hits 0.25
    # posterior variance (1 - g_{t-1})/(1 - g_t) b_t, g_{-1} := g_0
    g, b = s.gamma, s.betas
    assert s.posterior_variance[0] == pytest.approx(float(b[0]))
    assert s.posterior_variance[3] == pytest.approx(float((1 - g[2]) / (1 - g[3]) * b[3]))
    assert resfusion_timesteps_for(5) == 12 and resfusion_timesteps_for(100) == 271
    with pytest.raises(ValueError, match="T > 5"):
        resfusion_schedule(5)


def test_template_power_schedule_closed_forms():
    s = 0.01
    sch = rddm_schedule(T, sum_scale=s)
    t = torch.arange(1, T + 1, dtype=torch.float64)
    assert torch.allclose(sch.alpha_bar, t * (2 * T + 1 - t) / (T * (T + 1)), rtol=1e-12)
    assert torch.allclose(sch.beta2_bar, s * t * (t + 1) / (T * (T + 1)), rtol=1e-12)
    assert sch.alpha_bar[-1] == pytest.approx(1.0) and sch.beta2_bar[-1] == pytest.approx(s)


@pytest.mark.parametrize("shape", ["decreasing", "increasing", "mean"])
@pytest.mark.parametrize("discretisation", ["template", "linspace"])
def test_power_weights_each_shape(shape, discretisation):
    w = power_weights(T, shape, 1.0, discretisation)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6)
    if shape == "mean":
        assert torch.allclose(w, torch.full_like(w, 1 / T))
    elif discretisation == "linspace":
        # exps 0/3/4/5/6: linspace(0, 1, T) gives an exact zero at one end
        assert (w[-1] if shape == "decreasing" else w[0]).item() == 0.0
        assert w.diff().sign().unique().tolist() == ([-1.0] if shape == "decreasing" else [1.0])
    else:
        t = torch.arange(1, T + 1, dtype=torch.float64)
        ref = (T + 1 - t if shape == "decreasing" else t) / (T * (T + 1) / 2)
        assert torch.allclose(w, ref, rtol=1e-12)


def test_power_exponent_and_shapes_reach_the_schedule():
    sch = rddm_schedule(T, alpha_shape="mean", beta_shape="decreasing", beta_power=2, sum_scale=1)
    assert sch.alpha_bar[499].item() == pytest.approx(0.5)
    t = torch.arange(1, T + 1, dtype=torch.float64)
    w = (T + 1 - t) ** 2
    assert torch.allclose(sch.beta2_bar, (w / w.sum()).cumsum(0), rtol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "scaled-linear", "squared-cosine"])
def test_ddim_schedules_converted_by_eq17(kind):
    sch = rddm_schedule(T, schedule=f"ddim-{kind}", sum_scale=1.0)
    betas = ddpm_betas(kind, T)
    gamma = torch.cumprod(1 - betas, 0)
    assert torch.allclose(sch.alpha_bar, 1 - gamma.sqrt())
    assert torch.allclose(sch.beta2_bar, 1 - gamma)
    if kind == "linear":
        assert gamma[-1].item() == pytest.approx(4.04e-5, rel=1e-2)
        assert sch.alpha_bar[-1].item() == pytest.approx(0.9936, abs=1e-4)
    if kind == "scaled-linear":
        ref = torch.linspace(1e-4**0.5, 0.02**0.5, T, dtype=torch.float64) ** 2
        assert torch.allclose(betas, ref)
    if kind == "squared-cosine":
        f = [math.cos(((k / T) + 0.008) / 1.008 * math.pi / 2) ** 2 for k in (0, 500)]
        assert gamma[499].item() == pytest.approx(f[1] / f[0], rel=1e-9)


@pytest.mark.parametrize("adjust", ["alpha", "beta", "alpha+beta"])
def test_algorithm1_adjust_modes(adjust):
    base = rddm_schedule(T, schedule="ddim-linear", sum_scale=0.5)
    sch = rddm_schedule(T, schedule="ddim-linear", sum_scale=0.5, adjust=adjust)
    power = rddm_schedule(T, sum_scale=0.5)
    alpha_adjusted = adjust in ("alpha", "alpha+beta")
    beta_adjusted = adjust in ("beta", "alpha+beta")
    assert torch.equal(sch.alpha_bar, power.alpha_bar if alpha_adjusted else base.alpha_bar)
    assert torch.equal(sch.beta2_bar, power.beta2_bar if beta_adjusted else base.beta2_bar)
    assert torch.equal(sch.gamma, base.gamma)  # the variance keeps the base schedule


def test_schedule_option_errors():
    with pytest.raises(ValueError, match="sum_scale"):
        rddm_schedule(T, sum_scale=0)
    with pytest.raises(ValueError, match="adjust"):
        rddm_schedule(T, adjust="alpha")
    with pytest.raises(ValueError, match="valid"):
        rddm_schedule(T, schedule="cosine")
    with pytest.raises(ValueError, match="valid"):
        ddim_timesteps(T, 10, "uniform")


def _cosine_gamma(timesteps: int) -> list[float]:
    """The official CosineProScheduler's gamma before truncation, in closed form:
    b_t = 1 - f((t+1)/T) / f(t/T) telescopes to gamma_t = f((t+1)/T) / f(0)."""

    def f(s):
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    return [f((i + 1) / timesteps) / f(0) for i in range(timesteps)]


def _cosine_first_crossing_and_acc_steps(timesteps: int) -> tuple[int, bool, int]:
    """(first index with sqrt(gamma) <= 0.5, whether that step is shortened, T'), plain Python."""
    gamma = _cosine_gamma(timesteps)
    first = next(i for i, g in enumerate(gamma) if math.sqrt(g) <= 0.5)
    shortened = 0.5 - math.sqrt(gamma[first]) > 0.01
    if shortened:
        gamma[first] = 0.25
    distance = [abs(math.sqrt(g) - 0.5) for g in gamma[: first + 1]]
    return first, shortened, distance.index(min(distance)) + 1


# T' here also follows from f(s) = 0.25 f(0) at s = 0.664: T' is about 2T/3
@pytest.mark.parametrize(
    ("timesteps", "acc"), [(2, 2), (3, 2), (10, 7), (12, 8), (50, 34), (150, 100), (1000, 664)]
)
def test_resfusion_cosine_matches_the_closed_form_and_truncates(timesteps, acc):
    s = resfusion_schedule(timesteps, "cosine")
    first, shortened, expected_acc = _cosine_first_crossing_and_acc_steps(timesteps)
    assert s.acc_steps == expected_acc == acc
    closed = torch.tensor(_cosine_gamma(timesteps), dtype=torch.float64)
    torch.testing.assert_close(s.gamma[:first], closed[:first], rtol=1e-12, atol=0)
    if shortened:  # the crossing step is cut so that gamma = 0.25 exactly
        assert s.gamma[first].item() == pytest.approx(0.25, abs=1e-15)
        assert s.acc_steps == first + 1
    else:  # within 0.01 of 0.5: kept as it is
        assert s.gamma[first].item() == pytest.approx(closed[first].item(), rel=1e-12)
    torch.testing.assert_close(
        s.betas, 1 - s.gamma / torch.cat([s.gamma.new_ones(1), s.gamma[:-1]])
    )


def test_resfusion_cosine_covers_both_truncation_branches():
    branches = {_cosine_first_crossing_and_acc_steps(t)[1] for t in (10, 12)}
    assert branches == {True, False}


@pytest.mark.parametrize(("steps", "expected"), [(5, 7), (10, 14), (100, 150)])
def test_resfusion_timesteps_for_cosine(steps, expected):
    timesteps = resfusion_timesteps_for(steps, "cosine")
    assert timesteps == expected
    assert _cosine_first_crossing_and_acc_steps(timesteps)[2] == steps
    assert all(_cosine_first_crossing_and_acc_steps(t)[2] != steps for t in range(2, timesteps))


def test_resfusion_schedule_options_are_checked():
    with pytest.raises(ValueError, match="valid: linear, cosine"):
        resfusion_schedule(12, "sigmoid")
    with pytest.raises(ValueError, match="T >= 2"):
        resfusion_schedule(1, "cosine")
    assert resfusion_schedule(12, "linear").acc_steps == resfusion_schedule(12).acc_steps == 5
