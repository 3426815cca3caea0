"""PSNR and SSIM against scikit-image configured the same way, and known answers."""

import math

import numpy as np
import pytest
import torch
from conftest import DEGRADATIONS, degrade
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.metrics import psnr, rgb_to_y, ssim

TOLERANCE = 1e-6  # the brief's bound; measured differences are ~1e-14


def _hwc(images: torch.Tensor, index: int) -> np.ndarray:
    return images[index].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("kind", DEGRADATIONS)
def test_psnr_matches_skimage(photos, kind):
    degraded = degrade(photos, kind)
    ours = psnr(degraded, photos, 255.0)
    reference = [
        peak_signal_noise_ratio(_hwc(photos, i), _hwc(degraded, i), data_range=255)
        for i in range(len(photos))
    ]
    assert np.max(np.abs(ours.numpy() - reference)) < TOLERANCE


@pytest.mark.parametrize("kind", DEGRADATIONS)
def test_wang_ssim_matches_skimage_gaussian_settings(photos, kind):
    degraded = degrade(photos, kind)
    ours = ssim(degraded, photos, 255.0, "wang").numpy()
    reference = [
        structural_similarity(
            _hwc(degraded, i),
            _hwc(photos, i),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1,
        )
        for i in range(len(photos))
    ]
    assert np.max(np.abs(ours - reference)) < TOLERANCE


@pytest.mark.parametrize("kind", DEGRADATIONS)
def test_skimage_form_matches_skimage_defaults(photos, kind):
    degraded = degrade(photos, kind)
    ours = ssim(degraded, photos, 255.0, "skimage").numpy()
    reference = [
        structural_similarity(_hwc(degraded, i), _hwc(photos, i), data_range=255, channel_axis=-1)
        for i in range(len(photos))
    ]
    assert np.max(np.abs(ours - reference)) < TOLERANCE


def test_float_data_range_one_matches_skimage(photos):
    degraded = degrade(photos, "noise").to(torch.float64) / 255
    clean = photos.to(torch.float64) / 255
    ours_psnr, ours_ssim = psnr(degraded, clean, 1.0), ssim(degraded, clean, 1.0)
    a, b = _hwc(degraded, 0), _hwc(clean, 0)
    assert abs(ours_psnr[0].item() - peak_signal_noise_ratio(b, a, data_range=1.0)) < TOLERANCE
    reference = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
        channel_axis=-1,
    )  # fmt: skip
    assert abs(ours_ssim[0].item() - reference) < TOLERANCE


def test_y_channel_ssim_matches_skimage(photos):
    degraded = degrade(photos, "blur")
    y_ours, y_ref = rgb_to_y(degraded), rgb_to_y(photos)
    ours = ssim(y_ours, y_ref, 255.0).numpy()
    reference = [
        structural_similarity(
            y_ours[i, 0].numpy(),
            y_ref[i, 0].numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )  # fmt: skip
        for i in range(len(photos))
    ]
    assert np.max(np.abs(ours - reference)) < TOLERANCE


def _volume_ssim_reference(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """An independent reading of MATLAB's volumetric ssim with scipy: 3-D Gaussian (sigma 1.5,
    radius 5) with 'nearest' (replicate) borders over H x W x 3, mean of the full map."""

    def blur(v):
        return ndimage.gaussian_filter(v, sigma=1.5, radius=5, mode="nearest")

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def test_matlab_volume_form_matches_a_scipy_reading(photos):
    degraded = degrade(photos, "noise")
    ours = ssim(degraded, photos, 255.0, "matlab-volume").numpy()
    reference = [
        _volume_ssim_reference(
            _hwc(degraded, i).astype(np.float64), _hwc(photos, i).astype(np.float64), 255.0
        )
        for i in range(len(photos))
    ]
    assert np.max(np.abs(ours - reference)) < TOLERANCE
    # The volume reading differs from the per-channel average: the forms are distinct.
    assert np.all(np.abs(ours - ssim(degraded, photos, 255.0, "wang").numpy()) > 1e-4)


@pytest.mark.parametrize("form", ["wang", "skimage", "matlab-volume"])
def test_identical_images_give_infinite_psnr_and_unit_ssim(photos, form):
    assert torch.isinf(psnr(photos, photos, 255.0)).all()
    assert torch.allclose(ssim(photos, photos, 255.0, form), torch.ones(3, dtype=torch.float64))


def test_constant_offset_gives_analytic_psnr(photos):
    # Keep values away from 0 and 255 so the offset is not clipped: MSE = d^2 exactly.
    base = (photos.to(torch.int16) // 2 + 40).to(torch.uint8)
    for offset in (1, 5, 17):
        shifted = base + offset
        expected = 20 * math.log10(255 / offset)
        assert torch.allclose(
            psnr(shifted, base, 255.0), torch.tensor(expected, dtype=torch.float64)
        )


def test_ssim_is_symmetric_and_drops_with_noise(photos):
    mild, strong = degrade(photos, "noise"), degrade(degrade(photos, "noise"), "noise", seed=1)
    assert torch.allclose(ssim(mild, photos, 255.0), ssim(photos, mild, 255.0))
    assert (ssim(strong, photos, 255.0) < ssim(mild, photos, 255.0)).all()


def test_unknown_ssim_form_is_refused(photos):
    with pytest.raises(ValueError, match="valid forms"):
        ssim(photos, photos, 255.0, "gaussian")


@pytest.mark.parametrize("form", ["wang", "skimage", "matlab-volume"])
def test_inside_outside_ssim_equals_scoring_each_masked_pair(form):
    """ISTD's S and NS SSIM from one extra filtering (the complement's moments are the whole
    image's minus the inside's) equal scoring each masked pair on its own."""
    from bench.metrics.fullref import ssim, ssim_inside_outside

    g = torch.Generator().manual_seed(3)
    target = torch.rand(2, 3, 40, 48, generator=g, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn(target.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    inside = torch.zeros(2, 1, 40, 48, dtype=torch.bool)
    inside[0, :, 5:30, 10:40] = True
    inside[1, :, 20:, :17] = True
    found = ssim_inside_outside(pred, target, inside, 1.0, form)
    expected = (
        ssim(pred, target, 1.0, form),
        ssim(pred * inside, target * inside, 1.0, form),
        ssim(pred * ~inside, target * ~inside, 1.0, form),
    )
    for ours, reference in zip(found, expected, strict=True):
        assert torch.allclose(ours, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("data_range", "scale"), [(1.0, 1.0), (255.0, 49 / 48)])
def test_ssim_map_is_bitwise_the_textbook_order(data_range, scale):
    """The in-place SSIM map computes each value by the same floating-point operations as
    Wang et al.'s eq. 13 written out, so it is equal to the last bit, not just close."""
    from bench.metrics.fullref import K1, K2, _moments, _ssim_from, _window

    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 40, 48, generator=g, dtype=torch.float64) * data_range
    y = (x + torch.randn(x.shape, generator=g, dtype=torch.float64) * 0.1 * data_range).clamp(0, data_range)  # fmt: skip
    mu_x, mu_y, xx, yy, xy = filtered = _window("matlab-volume")[0](_moments(x, y))
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    var_x, var_y = scale * (xx - mu_x * mu_x), scale * (yy - mu_y * mu_y)
    cov = scale * (xy - mu_x * mu_y)
    textbook = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    assert torch.equal(_ssim_from(filtered, data_range, scale), textbook)
