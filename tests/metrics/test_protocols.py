"""Protocols: known answers, region normalisation, aggregation, interface and meta."""

import math

import numpy as np
import pytest
import torch
from conftest import degrade
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.errors import UsageError
from bench.metrics import region_abs_sums
from bench.protocols import PROTOCOLS, get_protocol

SIZE = 256  # ISTD's evaluation size: no resize happens, so answers are exact


def _grey(value: int, n: int = 1) -> torch.Tensor:
    return torch.full((n, 3, SIZE, SIZE), value, dtype=torch.uint8)


def _lightness(value: int) -> float:
    """CIE L* of an sRGB grey from the standard formulas (grey: Y = linear value)."""
    c = value / 255
    y = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    f = y ** (1 / 3) if y > (6 / 29) ** 3 else y / (3 * (6 / 29) ** 2) + 4 / 29
    return 116 * f - 16


def _half_mask(n: int = 1) -> torch.Tensor:
    mask = torch.zeros((n, 1, SIZE, SIZE), dtype=torch.uint8)
    mask[..., : SIZE // 2] = 255
    return mask


def test_every_protocol_is_named_documented_and_cites_a_table(tmp_path):
    assert set(PROTOCOLS.names()) >= {
        "istd",
        "lol",
        "sid",
        "raindrop",
        "gopro",
        "celeba",
        "cifar10",
        "rgb",
    }
    for name in PROTOCOLS.names():
        protocol = get_protocol(name, tmp_path)
        assert protocol.name == name and protocol.description and protocol.table
        assert type(protocol).__doc__


def test_unknown_protocol_lists_valid_names(tmp_path):
    with pytest.raises(UsageError, match="valid choices: .*istd"):
        get_protocol("matlab", tmp_path)


def test_istd_half_masked_grey_gives_region_mae(tmp_path):
    # Shadow half differs in grey level (50 vs 90); the non-shadow half is identical.
    target = _grey(90)
    pred = target.clone()
    pred[..., : SIZE // 2] = 50
    result = get_protocol("istd", tmp_path).evaluate(pred, target, _half_mask(), ["a"])
    delta = abs(_lightness(90) - _lightness(50))  # greys: a* = b* = 0
    s = result.summary
    assert s["mae_s_pi"] == pytest.approx(delta, abs=1e-6)
    assert s["mae_ns_pi"] == pytest.approx(0.0, abs=1e-9)
    # ALL divides the same sum by all pixels: half the shadow value.
    assert s["mae_all_pi"] == pytest.approx(delta / 2, abs=1e-6)
    assert math.isinf(s["psnr_ns"]) and s["ssim_ns"] == pytest.approx(1.0)
    # S scores the whole masked image: the zeroed half counts as a perfect match, MSE halves.
    mse_region = ((90 - 50) / 255) ** 2
    assert s["psnr_s"] == pytest.approx(10 * math.log10(1 / (mse_region / 2)), abs=1e-9)
    assert s["psnr_all"] == pytest.approx(s["psnr_s"], abs=1e-9)


def test_istd_per_image_and_per_pixel_aggregation_differ_as_defined(tmp_path):
    target = _grey(120, 2)
    pred = target.clone()
    mask = torch.zeros((2, 1, SIZE, SIZE), dtype=torch.uint8)
    mask[0, :, :, :64] = 255  # image 0: a quarter of the image in shadow
    mask[1, :, :, :192] = 255  # image 1: three quarters
    pred[0, :, :, :64] = 100  # |dL| = d0 over 1/4 of image 0
    pred[1, :, :, :192] = 60  # |dL| = d1 over 3/4 of image 1
    result = get_protocol("istd", tmp_path).evaluate(pred, target, mask, ["a", "b"])
    d0, d1 = abs(_lightness(120) - _lightness(100)), abs(_lightness(120) - _lightness(60))
    assert result.summary["mae_s_pi"] == pytest.approx((d0 + d1) / 2, abs=1e-6)
    assert result.summary["mae_s_pp"] == pytest.approx((d0 * 1 + d1 * 3) / 4, abs=1e-6)
    assert result.summary["mae_all_pi"] == pytest.approx((d0 / 4 + d1 * 3 / 4) / 2, abs=1e-6)
    assert list(result.per_image["name"]) == ["a", "b"]


def test_region_sums_count_pixels_not_channel_values():
    a = torch.zeros((1, 3, 2, 2), dtype=torch.float64)
    b = torch.ones((1, 3, 2, 2), dtype=torch.float64)
    region = torch.tensor([[[[True, False], [False, False]]]])
    sums, count = region_abs_sums(a, b, region)
    assert sums.item() == 3.0 and count.item() == 1.0  # 3 channels summed, divisor 1 pixel


def test_istd_without_mask_reports_regions_unavailable(tmp_path):
    result = get_protocol("istd", tmp_path).evaluate(_grey(80), _grey(80))
    assert {"psnr_all", "ssim_all", "mae_all_pi", "mae_all_pp"} <= set(result.summary)
    assert "mae_s_pi" in result.unavailable and "psnr_ns" in result.unavailable
    assert "mae_s_pi" not in result.summary


def test_istd_resizes_native_ground_truth_to_256(tmp_path, photos):
    target = torch.nn.functional.interpolate(photos.double(), (240, 320)).round().to(torch.uint8)
    pred = degrade(target, "noise")
    result = get_protocol("istd", tmp_path).evaluate(pred, target)
    assert result.meta["size"] == [256, 256] and 15 < result.summary["psnr_all"] < 40


def test_missing_lpips_weights_are_unavailable_not_zero(tmp_path):
    result = get_protocol("rgb", tmp_path / "empty").evaluate(_grey(10), _grey(20))
    assert "lpips" not in result.summary
    assert "bench weights fetch" in result.unavailable["lpips"]


def test_lol_is_y_channel_psnr_and_wang_ssim(tmp_path, photos):
    degraded = degrade(photos, "noise")
    result = get_protocol("lol", tmp_path).evaluate(degraded, photos)
    # Reference: MATLAB rgb2ycbcr on uint8 written out with numpy, then skimage.
    weights = np.array([65.481, 128.553, 24.966]) / 255

    def y(images, i):
        # term by term as imlincomb sums them (a BLAS matrix product sums in a CPU's own order)
        r, g, b = images[i].numpy().astype(np.float64)
        return np.floor(r * weights[0] + g * weights[1] + b * weights[2] + 16.5)

    for i in range(len(photos)):
        a, b = y(degraded, i), y(photos, i)
        row = result.per_image.iloc[i]
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-9)
        expected = structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert row["ssim"] == pytest.approx(expected, abs=1e-9)
    assert result.summary["psnr"] == pytest.approx(result.per_image["psnr"].mean())


def test_rgb_protocol_refuses_size_mismatch(tmp_path, photos):
    with pytest.raises(UsageError, match="does not resize"):
        get_protocol("rgb", tmp_path).evaluate(photos, photos[..., :-8])


def test_bad_tensors_are_usage_errors(tmp_path, photos):
    protocol = get_protocol("istd", tmp_path)
    with pytest.raises(UsageError, match="uint8"):
        protocol.evaluate(photos.float(), photos)
    with pytest.raises(UsageError, match="mask"):
        protocol.evaluate(photos, photos, torch.zeros((3, 3, 96, 112), dtype=torch.uint8))


def test_combining_batches_equals_one_evaluation(tmp_path, photos):
    protocol = get_protocol("istd", tmp_path)
    degraded = degrade(photos, "blur")
    mask = torch.zeros((3, 1, 96, 112), dtype=torch.uint8)
    mask[:, :, 20:60, 30:80] = 255
    whole = protocol.evaluate(degraded, photos, mask)
    parts = [
        protocol.evaluate(degraded[i : i + 2], photos[i : i + 2], mask[i : i + 2]) for i in (0, 2)
    ]
    combined = protocol.combine(parts)
    assert combined.summary == pytest.approx(whole.summary, rel=1e-12)


@pytest.mark.parametrize(
    "name", [name for name in PROTOCOLS.names() if not PROTOCOLS.get(name).set_metrics]
)
def test_measuring_in_chunks_equals_one_pass(tmp_path, photos, monkeypatch, name):
    from bench.protocols import base

    protocol = get_protocol(name, tmp_path)
    degraded = degrade(photos, "noise")
    mask = torch.zeros((3, 1, 96, 112), dtype=torch.uint8)
    mask[:, :, 20:60, 30:80] = 255
    chunked = protocol.evaluate(degraded, photos, mask).per_image
    monkeypatch.setattr(base, "CPU_MEASURE_IMAGES", 100)
    whole = protocol.evaluate(degraded, photos, mask).per_image
    assert list(chunked.columns) == list(whole.columns) and len(chunked) == 3
    # equal up to BLAS summation order, which depends on the number of rows
    np.testing.assert_allclose(
        chunked.drop(columns="name").to_numpy(), whole.drop(columns="name").to_numpy(), rtol=1e-12
    )


def test_gopro_resizes_ground_truth_to_the_output_size(tmp_path, photos):
    result = get_protocol("gopro", tmp_path).evaluate(photos[..., :64, :64], photos)
    assert result.meta["unverified"] == ["ssim_form matlab-volume"]
    assert 0 < result.summary["ssim"] < 1
