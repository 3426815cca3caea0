"""The DDPM CIFAR-10 UNet: its parameter count from the architecture, and its interface."""

import pytest
import torch

from baselines import build_method
from baselines.ddpm_unet import DDPMAttention, DDPMUNet
from baselines.unet import UNet


def conv(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def norm(c):
    return 2 * c


def linear(a, b):
    return a * b + b


def res(c_in, c_out, time_dim=512):
    shortcut = conv(1, c_in, c_out) if c_in != c_out else 0
    return (
        norm(c_in)
        + conv(3, c_in, c_out)
        + linear(time_dim, c_out)
        + norm(c_out)
        + (conv(3, c_out, c_out) + shortcut)
    )


def attention(c):
    return norm(c) + 4 * conv(1, c, c)  # q, k, v and the output projection


def ddpm_cifar_parameters(in_channels=3, out_channels=3):
    """Ho et al.'s CIFAR-10 network written out block by block: ch 128, widths 128/256/256/256 at
    32/16/8/4, two ResBlocks per level, attention at 16, a 3x3 conv per down/upsampling, and
    decoder ResBlocks taking one skip each (stem, every encoder block, every downsampling)."""
    time = linear(128, 512) + linear(512, 512)
    stem = conv(3, in_channels, 128)
    encoder = (
        2 * res(128, 128)  # 32x32
        + res(128, 256)
        + res(256, 256)
        + 2 * attention(256)  # 16x16
        + 4 * res(256, 256)  # 8x8 and 4x4
        + conv(3, 128, 128)
        + 2 * conv(3, 256, 256)  # downsamplings from 32, 16 and 8
    )
    middle = 2 * res(256, 256) + attention(256)
    decoder = (
        6 * res(512, 256)  # 4x4 and 8x8: skips of 256
        + 2 * res(512, 256)
        + res(384, 256)
        + 3 * attention(256)  # 16x16: 256, 256, then 128
        + res(384, 128)
        + 2 * res(256, 128)  # 32x32: skips of 128
        + 3 * conv(3, 256, 256)  # upsamplings
    )
    head = norm(128) + conv(3, 128, out_channels)
    return time + stem + encoder + middle + decoder + head


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_cifar_unet_has_the_ddpm_parameter_count():
    model = DDPMUNet(3, 3)
    # 35,746,307: the DDPM CIFAR-10 figure (35.7M) of the ermongroup / pytorch re-implementations
    assert _count(model) == ddpm_cifar_parameters() == 35_746_307
    assert sum(isinstance(m, DDPMAttention) for m in model.modules()) == 6  # 2 + 3 at 16, mid
    assert _count(DDPMUNet(6, 3)) == ddpm_cifar_parameters(in_channels=6)


def test_forward_signature_matches_the_shared_unet():
    torch.manual_seed(0)
    tiny = DDPMUNet(6, 3, ch=16, ch_mult=(1, 2), dropout=0.0).eval()
    x = torch.randn(2, 6, 16, 16)
    out = tiny(x, torch.tensor([0.0, 4.0]))
    assert out.shape == (2, 3, 16, 16)
    shared = UNet(6, 3, dim=8, dim_mults=(1, 2))
    assert shared(x, torch.tensor([0.0, 4.0])).shape == out.shape
    # the time embedding reaches the output; the batch items are independent
    moved = tiny(x, torch.tensor([0.0, 9.0]))
    torch.testing.assert_close(moved[0], out[0])
    assert not torch.allclose(moved[1], out[1])


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    net = DDPMUNet(3, 3, ch=16, ch_mult=(1, 2), dropout=0.5)
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([2.0])
    net.eval()
    torch.testing.assert_close(net(x, t), net(x, t))
    net.train()
    assert not torch.allclose(net(x, t), net(x, t))


def test_attention_is_single_head_softmax_over_positions():
    torch.manual_seed(0)
    block = DDPMAttention(32)
    x = torch.randn(2, 32, 4, 4)
    h = block.norm(x)
    q, k, v = (f(h).flatten(2).transpose(1, 2)[:, None] for f in (block.q, block.k, block.v))
    attended = torch.nn.functional.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(32)
    expected = x + block.proj(attended[:, 0].transpose(1, 2).reshape(2, 32, 4, 4))
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize(("kind", "channels"), [("generation", 3), ("restoration", 6)])
def test_resfusion_builds_the_ddpm_cifar_network(kind, channels):
    method = build_method(
        "resfusion", kind=kind, network="ddpm-cifar", ddpm_channels=32, ddpm_mults=(1, 2)
    )
    net = method.nets["denoiser"]
    assert isinstance(net, DDPMUNet) and net.in_channels == channels
    assert net.stem.in_channels == channels and net.time_mlp[1].in_features == 32
    assert isinstance(build_method("resfusion", unet_dim=8).nets["denoiser"], UNet)
    with pytest.raises(ValueError, match="valid: rddm-unet, ddpm-cifar"):
        build_method("resfusion", network="ddpm")
