"""Resfusion generation (x^_0 = 0; methods.md §2 "CIFAR-10") and its cosine-schedule option."""

import pytest
import torch
from torch import nn

from baselines import build_method, paper_settings
from baselines.ddpm_unet import DDPMUNet
from baselines.resfusion import resfusion_step

TINY = {"kind": "generation", "network": "ddpm-cifar", "ddpm_channels": 8, "ddpm_mults": (1, 2)}
SHAPE = (2, 3, 8, 8)


class Recorder(nn.Module):
    """A network that predicts zero and keeps what it was given."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, inp, time):
        self.calls.append((inp.clone(), time.clone()))
        return torch.zeros_like(inp[:, :3])


def test_generation_sampling_is_seeded():
    torch.manual_seed(0)
    method = build_method("resfusion", timesteps=12, **TINY).eval()

    def sample(seed):
        g = torch.Generator().manual_seed(seed)
        return method.sample(None, shape=SHAPE, steps=5, generator=g)

    out = sample(0)
    assert out.shape == SHAPE and out.abs().max() <= 1
    assert torch.equal(out, sample(0)) and not torch.equal(out, sample(1))


def test_generation_starts_from_sqrt_075_eps_and_steps_by_eq_33():
    method = build_method("resfusion", timesteps=12, **TINY).double()
    method.nets["denoiser"] = recorder = Recorder()
    method.sample(None, shape=SHAPE, steps=5, generator=torch.Generator().manual_seed(4))
    draws = torch.randn(
        (3, *SHAPE), generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    (first, t_first), (second, t_second) = recorder.calls[:2]
    assert first.shape == SHAPE  # x_t alone, as the official generate feeds it
    torch.testing.assert_close(first, 0.75**0.5 * draws[0], rtol=1e-12, atol=1e-12)
    assert t_first.tolist() == [4.0, 4.0] and t_second.tolist() == [3.0, 3.0]
    # eq. 33 with eps_theta = 0: x_{t-1} = x_t / sqrt(a_t) + sqrt(b~_t) z, at t = T' - 1 = 4
    gamma, betas = method.schedule.gamma, method.schedule.betas
    a, posterior = 1 - float(betas[4]), (1 - float(gamma[3])) / (1 - float(gamma[4])) * betas[4]
    expected = first / a**0.5 + float(posterior) ** 0.5 * draws[1]
    torch.testing.assert_close(second, expected, rtol=1e-12, atol=1e-12)
    assert second.abs().max() > 1  # intermediate states are not clamped (official generate)


def test_generation_forward_process_drifts_to_minus_x0():
    method = build_method("resfusion", timesteps=12, **TINY)
    method.nets["denoiser"] = recorder = Recorder()
    x0 = torch.full((6000, 3, 1, 1), 0.6)
    method.loss({"target": x0}, torch.Generator().manual_seed(1))  # no "input" needed
    inp, t = recorder.calls[0]
    g = method.schedule.gamma[t.long()][:, None, None, None]
    mean = (2 * g.sqrt() - 1) * 0.6  # eq. 20 with R = 0 - x_0
    z = (inp.double() - mean) / (1 - g).sqrt()
    assert abs(z.mean().item()) < 0.04 and abs(z.std().item() - 1) < 0.03
    with pytest.raises(ValueError, match="no 'input'"):
        build_method("resfusion", unet_dim=8, unet_mults=(1, 2)).loss({"target": x0})
    with pytest.raises(ValueError, match="no mask"):
        build_method("resfusion", mask_channels=1, **TINY)


def test_restoration_model_without_condition_uses_a_zero_input():
    method = build_method("resfusion", unet_dim=8, unet_mults=(1, 2))
    method.nets["denoiser"] = recorder = Recorder()
    method.sample(None, shape=SHAPE, steps=5, generator=torch.Generator().manual_seed(0))
    inp, _ = recorder.calls[0]
    assert inp.shape[1] == 6 and torch.equal(inp[:, 3:], torch.zeros(SHAPE))


def test_sample_mode_clamps_the_x0_prediction_before_the_posterior():
    method = build_method("resfusion", prediction="sample", unet_dim=8, unet_mults=(1, 2)).double()
    x = torch.full(SHAPE, 0.3, dtype=torch.float64)
    degraded = torch.zeros(SHAPE, dtype=torch.float64)
    moves = {m.index: m for m in method.sampling.path()}

    def step(out, idx):
        return resfusion_step(method.read_output(out, degraded), moves[idx], x)

    far = step(torch.full(SHAPE, 3.0, dtype=torch.float64), 2)
    edge = step(torch.ones(SHAPE, dtype=torch.float64), 2)
    torch.testing.assert_close(far, edge)
    assert torch.equal(step(x, 0), x)  # index 0 returns x_0


@pytest.mark.slow
def test_a_tiny_generation_model_learns_one_image():
    torch.manual_seed(0)
    method = build_method("resfusion", timesteps=12, dropout=0.0, **TINY)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 8), torch.linspace(-1, 1, 8), indexing="ij")
    image = torch.stack([0.8 * xx, 0.6 * yy, 0.5 - 0.5 * xx * yy])[None]

    def sample_error():
        g = torch.Generator().manual_seed(1)
        out = method.sample(None, shape=(8, 3, 8, 8), steps=5, generator=g)
        return ((out - image) ** 2).mean().item()

    before = sample_error()
    optimizer = torch.optim.Adam(method.parameters(), lr=4e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        loss = method.loss({"target": image.repeat(4, 1, 1, 1)}, generator)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # observed: loss 0.74 -> 0.15, sample MSE to the image 1.02 -> 0.13
    assert sum(losses[-20:]) < 0.4 * sum(losses[:20])
    assert sample_error() < 0.3 * before


def test_paper_generation_settings_build_the_cifar_model():
    settings = paper_settings("resfusion", "generation")
    method = build_method("resfusion", **settings["options"])
    assert method.kind == "generation" and method.steps == settings["steps"] == 100
    net = method.nets["denoiser"]
    assert isinstance(net, DDPMUNet) and net.in_channels == 3
    assert sum(p.numel() for p in net.parameters()) == 35_746_307
    assert not any("not built" in note for note in settings["notes"])


def test_cosine_schedule_option():
    method = build_method("resfusion", schedule="cosine", timesteps=150, unet_dim=8)
    assert method.steps == 100
    with pytest.raises(ValueError, match="-o timesteps=14 samples in 10"):
        method.sample(None, shape=SHAPE, steps=10, generator=torch.Generator())


def test_ddpm_unet_width_follows_the_profile_width_unless_given():
    narrow = build_method("resfusion", kind="generation", network="ddpm-cifar", unet_dim=16)
    assert narrow.nets["denoiser"].stem.out_channels == 32
    given = build_method(
        "resfusion", kind="generation", network="ddpm-cifar", unet_dim=16, ddpm_channels=8
    )
    assert given.nets["denoiser"].stem.out_channels == 8
