"""Network sizes: true and THOP counts of the shared UNet (§5) and SR3's UNet (§3)."""

import copy

import pytest
import thop
import torch
from torch.utils.flop_counter import FlopCounterMode

from baselines.sr3_unet import SR3UNet
from baselines.unet import UNet


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _thop(model, *inputs):
    # thop adds buffers to every module it visits, so it runs on a copy
    macs, params = thop.profile(copy.deepcopy(model), inputs=inputs, verbose=False)
    return macs, params


@pytest.fixture(scope="module")
def unet6():
    torch.manual_seed(0)
    return UNet(in_channels=6, out_channels=3, dim=64, dim_mults=(1, 2, 4, 8))


def test_unet_parameter_counts_nine_channels():
    model = UNet(in_channels=9)
    assert _params(model) / 1e6 == pytest.approx(36.271, abs=5e-4)
    _, params = thop.profile(model, (torch.randn(1, 9, 8, 8), torch.tensor([3.0])), verbose=False)
    assert params / 1e6 == pytest.approx(7.747, abs=5e-4)


def test_unet_dim64_six_channels_true_and_thop_counts(unet6):
    assert _params(unet6) / 1e6 == pytest.approx(36.261, abs=5e-4)
    macs, params = _thop(unet6, torch.randn(1, 6, 64, 64), torch.tensor([999.0]))
    # thop skips the weight-standardised conv subclass and the norms: the papers' figures
    assert params / 1e6 == pytest.approx(7.738, abs=5e-4)
    assert macs / 1e9 == pytest.approx(2.06, abs=0.005)  # methods.md: 64^2 THOP 2.06 G


def test_unet_flop_counter_at_64(unet6):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet6(torch.randn(1, 6, 64, 64), torch.tensor([999.0]))
    macs = counter.get_total_flops() / 2
    assert macs / 1e9 == pytest.approx(7.44, abs=0.01)  # methods.md: FlopCounterMode 7.44 G


def test_unet_output_variants():
    x, t = torch.randn(2, 9, 16, 16), torch.tensor([0.0, 500.0])
    assert UNet(9, 6, dim=8, dim_mults=(1, 2)).forward(x, t).shape == (2, 6, 16, 16)
    res, noise = UNet(9, 3, dim=8, dim_mults=(1, 2), shared_encoder=True)(x, t)
    assert res.shape == noise.shape == (2, 3, 16, 16)


def test_shared_encoder_has_one_encoder_and_a_skipless_residual_decoder():
    plain = UNet(6, 3, dim=16, dim_mults=(1, 2, 4))
    shared = UNet(6, 3, dim=16, dim_mults=(1, 2, 4), shared_encoder=True)
    decoder = _params(plain.decoder)
    extra = _params(shared) - _params(plain)
    # the residual decoder takes no skip channels, so it is smaller than the noise decoder
    assert 0 < extra < decoder
    first = shared.residual_decoder.levels[0][0]
    assert first.conv1.in_channels == 16 * 4  # no concatenated skip


def test_sr3_unet_counts_seven_channels():
    model = SR3UNet(in_channels=7)  # throwaway model: thop may decorate it
    macs, params = thop.profile(
        model, (torch.randn(1, 7, 64, 64), torch.tensor([0.5])), verbose=False
    )
    assert params / 1e6 == pytest.approx(155.29, abs=0.005)  # Table 11(b)
    # convs scale with the pixel count (only the small noise MLP and Linear layers do not):
    # 155.28 G at 256^2 for 7 channels, 155.24 G for 6
    assert macs * 16 / 1e9 == pytest.approx(155.28, abs=0.02)


def test_standardised_filters_are_kept_until_the_weights_change():
    """Sampling reuses the standardised filters; any change of the weights (an optimizer
    step, load_state_dict) is seen at the next forward, and outputs equal recomputing."""
    from baselines.unet import WeightStandardizedConv2d, _standardise

    torch.manual_seed(0)
    conv = WeightStandardizedConv2d(4, 6, 3, padding=1)
    x = torch.randn(2, 4, 8, 8)

    def recomputed():
        return torch.nn.functional.conv2d(
            x, _standardise(conv.weight, x.dtype), conv.bias, padding=1
        )

    with torch.no_grad():
        first = conv(x)
        assert conv.standardised_weight(x.dtype) is conv.standardised_weight(x.dtype)  # kept
        assert torch.equal(first, recomputed())
    optimizer = torch.optim.SGD(conv.parameters(), lr=0.5)
    conv(x).square().mean().backward()  # with gradients: standardised on every forward
    optimizer.step()
    with torch.no_grad():
        stepped = conv(x)
        assert not torch.equal(stepped, first) and torch.equal(stepped, recomputed())
        conv.load_state_dict({"weight": torch.randn(6, 4, 3, 3), "bias": torch.zeros(6)})
        assert torch.equal(conv(x), recomputed())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert conv.standardised_weight(x.dtype).dtype == torch.bfloat16
        assert conv.standardised_weight(x.dtype).dtype == torch.float32
