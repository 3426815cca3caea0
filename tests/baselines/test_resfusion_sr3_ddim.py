"""Resfusion, SR3 and DDIM against closed forms and DDPM written out independently."""

import pytest
import torch
from torch import nn

from baselines import build_method
from baselines.ddim import DDIMMove, ddim_step
from baselines.resfusion import resfusion_step
from baselines.sampling import Prediction, sample_loop
from baselines.schedules import DDPMMove, ddim_timesteps
from baselines.sr3 import sr3_step

SMALL = {"unet_dim": 8, "unet_mults": (1, 2)}
SHAPE = (2, 3, 8, 8)


def _pair(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(SHAPE, generator=g, dtype=dtype) * 1.6 - 0.8
    return x0, (x0 * 0.5 - 0.3).clamp(-1, 1)


def test_resfusion_forward_marginal_moments():
    method = build_method("resfusion", timesteps=12, **SMALL)
    x0 = torch.full((6000, 3, 1, 1), 0.6)
    degraded = torch.full_like(x0, -0.2)
    captured = {}

    class Recorder(nn.Module):
        def forward(self, inp, time):
            captured.update(x=inp[:, :3], t=time.long())
            return torch.zeros_like(inp[:, :3])

    method.nets["denoiser"] = Recorder()
    method.loss({"target": x0, "input": degraded}, torch.Generator().manual_seed(1))
    t, x = captured["t"], captured["x"].double()
    assert set(t.tolist()) == set(range(5))  # t ~ U{0..T'-1}
    g = method.schedule.gamma[t][:, None, None, None]
    mean = g.sqrt() * 0.6 + (1 - g.sqrt()) * (-0.2 - 0.6)  # eq. 20 with R = x^_0 - x_0
    z = (x - mean) / (1 - g).sqrt()
    assert abs(z.mean().item()) < 0.04 and abs(z.std().item() - 1) < 0.03


def _ddpm_posterior_mean(y_t, y0, gamma, gamma_prev, beta):
    """DDPM's q(y_{t-1} | y_t, y_0) mean, written out on its own."""
    return (gamma_prev**0.5 * beta / (1 - gamma)) * y0 + (
        (1 - beta) ** 0.5 * (1 - gamma_prev) / (1 - gamma)
    ) * y_t


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "residual"])
def test_resfusion_reverse_step_is_ddpm_posterior_on_x_minus_R(prediction):
    method = build_method("resfusion", timesteps=12, prediction=prediction, **SMALL)
    x0, degraded = _pair()
    residual = degraded - x0
    eps = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for idx in range(1, 5):
        g = float(method.schedule.gamma[idx])
        g_prev = float(method.schedule.gamma[idx - 1])
        beta = float(method.schedule.betas[idx])
        x_t = g**0.5 * x0 + (1 - g**0.5) * residual + (1 - g) ** 0.5 * eps  # eq. 20
        # the true network output for each mode
        resnoise = eps + (1 - (1 - beta) ** 0.5) * (1 - g) ** 0.5 / beta * residual  # eq. 24
        out = {"epsilon": resnoise, "sample": x0, "residual": residual}[prediction]
        move = {m.index: m for m in method.sampling.path()}[idx]
        got = resfusion_step(method.read_output(out, degraded), move, x_t)
        expected = _ddpm_posterior_mean(x_t - residual, x0 - residual, g, g_prev, beta) + residual
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_resfusion_starts_from_smooth_equivalence_and_takes_T_prime_steps():
    method = build_method("resfusion", timesteps=12, **SMALL)
    _, degraded = _pair(torch.float32)
    first_inputs = []

    class Recorder(nn.Module):
        def forward(self, inp, time):
            first_inputs.append((inp[:, :3].clone(), int(time[0])))
            return torch.zeros_like(inp[:, :3])

    method.nets["denoiser"] = Recorder()
    method.sample(degraded, steps=5, generator=torch.Generator().manual_seed(8))
    start, t = first_inputs[0]
    eps = torch.randn(SHAPE, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(start, 0.5 * degraded + 0.75**0.5 * eps)  # no ground truth used
    assert [t for _, t in first_inputs] == [4, 3, 2, 1, 0]
    with pytest.raises(ValueError, match="timesteps=25"):
        method.sample(degraded, steps=10, generator=torch.Generator())


def test_resfusion_mask_is_a_two_channel_one_hot():
    method = build_method("resfusion", mask_channels=1, **SMALL)
    assert method.in_channels == 8
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2] = 1
    inp = method._inputs(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), mask)
    assert inp[:, 6:].unique().tolist() == [-1.0, 1.0]
    torch.testing.assert_close(inp[:, 6] + inp[:, 7], torch.zeros(1, 4, 4))


def test_resfusion_loss_types():
    x0, degraded = _pair(torch.float32)
    for loss in ("l2", "smooth-l1"):
        out = build_method("resfusion", loss=loss, **SMALL).loss({"target": x0, "input": degraded})
        assert out["loss"].ndim == 0 and out["loss"] > 0


def test_resfusion_path_is_the_truncated_chain_with_posterior_noise():
    method = build_method("resfusion", timesteps=12, **SMALL)
    path = method.sampling.path()
    assert [m.index for m in path] == [4, 3, 2, 1, 0]  # T' = 5 moves from index T' - 1
    variance = method.schedule.posterior_variance
    assert [m.noise_std for m in path] == [float(variance[i]) ** 0.5 for i in (4, 3, 2, 1)] + [0.0]
    assert path[-1].gamma_prev == 1.0


def test_sr3_step_is_the_ddpm_posterior_mean_and_the_path_its_respaced_chain():
    method = build_method("sr3", unet_dim=16, unet_mults=(1, 2))
    path = method.sampling.path(100)
    gammas = method.gamma[19::20]
    assert [m.gamma for m in path] == gammas.flip(0).tolist()
    x0, _ = _pair()
    x_t = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for move in (path[0], path[50], path[-1]):
        beta = 1 - move.gamma / move.gamma_prev  # b_t re-derived from the respaced gammas
        expected = _ddpm_posterior_mean(x_t, x0, move.gamma, move.gamma_prev, beta)
        torch.testing.assert_close(sr3_step(Prediction(x0=x0), move, x_t), expected)
        std = (beta * (1 - move.gamma_prev) / (1 - move.gamma)) ** 0.5 if move.index else 0.0
        assert move.noise_std == pytest.approx(std, rel=1e-12, abs=0)
    torch.testing.assert_close(sr3_step(Prediction(x0=x0), path[-1], x_t), x0)  # last: x^_0


def test_ddim_step_keeps_the_forward_marginal_of_exact_predictions():
    """With the true x_0 and eps, eta = 0 moves x_t = sqrt(g_t) x_0 + sqrt(1 - g_t) eps to the
    same expression at s (DDIM eq. 12), and eta > 0 only shrinks the eps term by sigma."""
    x0, _ = _pair()
    eps = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    g_t, g_s = 0.3, 0.7
    x_t = g_t**0.5 * x0 + (1 - g_t) ** 0.5 * eps
    got = ddim_step(Prediction(x0=x0, noise=eps), DDIMMove(500, g_t, g_s, 0.0), x_t)
    torch.testing.assert_close(got, g_s**0.5 * x0 + (1 - g_s) ** 0.5 * eps)
    noisy = ddim_step(Prediction(x0=x0, noise=eps), DDIMMove(500, g_t, g_s, 0.2), x_t)
    torch.testing.assert_close(noisy, g_s**0.5 * x0 + (1 - g_s - 0.04) ** 0.5 * eps)


def test_ddim_path_sigma_follows_eta():
    method = build_method("ddim", **SMALL)
    assert all(m.noise_std == 0 for m in method.sampling.path(10))
    moves = method.sampling.path(10, eta=1.0)
    assert [m.t for m in moves] == ddim_timesteps(1000, 10, "leading")
    first = moves[0]
    sigma = (
        (1 - first.gamma_next) / (1 - first.gamma) * (1 - first.gamma / first.gamma_next)
    ) ** 0.5
    assert first.noise_std == pytest.approx(sigma, rel=1e-12)


def test_sample_loop_draws_noise_only_for_noisy_moves():
    """The loop adds noise_std * z after each step, z from the caller's generator, and draws
    nothing for a deterministic move (so such a sampler leaves the generator untouched)."""
    moves = [DDPMMove(1, 0.5, 0.9, 0.1, 0.25), DDPMMove(0, 0.9, 1.0, 0.1, 0.0)]
    steps_seen, progress = [], []

    def step(prediction, move, x):
        steps_seen.append(move.index)
        return x + prediction.x0

    generator = torch.Generator().manual_seed(7)
    x = torch.zeros(SHAPE, dtype=torch.float64)
    out = sample_loop(
        lambda x, move: Prediction(x0=torch.ones_like(x)),
        step,
        x,
        moves,
        generator,
        lambda i, n: progress.append((i, n)),
    )
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(out, (1 + 0.25 * z) + 1, rtol=0, atol=0)
    assert steps_seen == [1, 0] and progress == [(1, 2), (2, 2)]
    after = torch.Generator().manual_seed(7)
    after.set_state(generator.get_state())
    reference = torch.Generator().manual_seed(7)
    torch.randn(SHAPE, generator=reference, dtype=torch.float64)
    assert torch.equal(torch.rand(3, generator=after), torch.rand(3, generator=reference))


def test_sr3_respacing_and_ancestral_step():
    method = build_method("sr3", unet_dim=16, unet_mults=(1, 2))
    full = method.sampling.gammas(2000)
    torch.testing.assert_close(full, method.gamma)  # N = T is the training schedule
    coarse = method.sampling.gammas(100)
    torch.testing.assert_close(coarse, method.gamma[19::20])
    gamma = torch.cumprod(1 - torch.linspace(1e-6, 1e-2, 2000, dtype=torch.float64), 0)
    torch.testing.assert_close(method.gamma, gamma)


def test_sr3_continuous_noise_level_and_condition_first():
    method = build_method("sr3", mask_channels=1, unet_dim=16, unet_mults=(1, 2))
    assert method.in_channels == 7
    x0, condition = _pair(torch.float32)
    mask = torch.ones(2, 1, 8, 8)
    captured = {}

    class Recorder(nn.Module):
        def forward(self, inp, level):
            captured.update(inp=inp, level=level)
            return torch.zeros_like(inp[:, :3])

    method.nets["denoiser"] = Recorder()
    method.loss({"target": x0, "input": condition, "mask": mask}, torch.Generator().manual_seed(0))
    torch.testing.assert_close(captured["inp"][:, :3], condition)  # condition first
    torch.testing.assert_close(captured["inp"][:, 3:4], mask)
    levels = captured["level"]
    assert ((levels > 0) & (levels <= 1)).all()
    assert len(set(levels.tolist())) == 2  # continuous draws, not grid values


def test_sr3_sampler_with_oracle_recovers_the_target():
    method = build_method("sr3", unet_dim=16, unet_mults=(1, 2)).double()
    x0, condition = _pair()
    state = {}

    class Oracle(nn.Module):
        def forward(self, inp, level):
            x = inp[:, 3:]
            g = level[:, None, None, None] ** 2
            state["last"] = level
            return (x - g.sqrt() * x0) / (1 - g).sqrt()

    method.nets["denoiser"] = Oracle()
    out = method.sample(condition, steps=20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-8)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_ddim_steps_follow_the_list(spacing):
    method = build_method("ddim", spacing=spacing, **SMALL)
    pairs = method.sampling.timestep_pairs(13)
    listed = ddim_timesteps(1000, 13, spacing)
    assert [t for t, _ in pairs] == listed
    assert [s for _, s in pairs] == [*listed[1:], -1]


def test_ddim_options_final_gamma_and_clip():
    x_shape = (1, 3, 8, 8)

    class Constant(nn.Module):
        def forward(self, x, t):
            return torch.full_like(x, 0.9)

    results = {}
    for one, clip in ((True, False), (False, False), (True, True)):
        m = build_method("ddim", set_alpha_to_one=one, clip_sample=clip, **SMALL).double()
        m.nets["eps"] = Constant()
        results[one, clip] = m.sample(
            None, shape=x_shape, steps=2, generator=torch.Generator().manual_seed(0)
        )
    assert not torch.equal(results[True, False], results[False, False])
    assert results[True, True].abs().max() <= 1 < results[True, False].abs().max()


@pytest.mark.parametrize(("dim", "groups"), [(64, 16), (16, 4), (8, 2)])
def test_sr3_group_norm_keeps_the_paper_channels_per_group(dim, groups):
    # sr_sr3_64_512: inner 64 with GroupNorm(16); narrower nets keep 4 channels per group
    method = build_method("sr3", unet_dim=dim, unet_mults=(1, 2))
    assert {m.num_groups for m in method.modules() if isinstance(m, nn.GroupNorm)} == {groups}
    explicit = build_method("sr3", unet_dim=dim, unet_mults=(1, 2), norm_groups=1)
    assert {m.num_groups for m in explicit.modules() if isinstance(m, nn.GroupNorm)} == {1}


@pytest.mark.parametrize("name", ["resfusion", "sr3"])
def test_ddpm_samplers_refuse_eta_instead_of_ignoring_it(name):
    from baselines import build_method

    method = build_method(name, unet_dim=8, unet_mults=(1, 2), image_size=16)
    condition = torch.zeros(1, 3, 16, 16)
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="eta does not apply"):
        method.sample(condition, steps=2 if name == "sr3" else 5, eta=0.5, generator=generator)
    method.sample(condition, steps=2 if name == "sr3" else 5, eta=0.0, generator=generator)
