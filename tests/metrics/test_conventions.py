"""Named protocol variants against independent references (scikit-image, closed forms, a
numpy rewrite of LLFlow's GT-mean), and the protocol audit built from them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import degrade
from skimage.color import rgb2lab, rgb2ycbcr, rgb2yiq
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.audit import audit_rows, markdown, rows_from_metrics, to_metrics
from bench.conventions import CONVENTIONS, HEADLINES, VARIANTS, MetricKey, conventions_for, logged
from bench.metrics.resize import imresize
from bench.protocols import PROTOCOLS, get_protocol
from bench.protocols.audit_scoring import audit_images

WANG = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def hwc(images: torch.Tensor, index: int = 0) -> np.ndarray:
    return images[index].permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def pair(photos):
    return degrade(photos, "contrast"), photos


def test_every_convention_that_scores_differently_is_a_registered_protocol(tmp_path):
    for convention in CONVENTIONS:
        assert (convention.name in PROTOCOLS) == convention.is_protocol
    protocol = get_protocol("lol-gtmean", tmp_path)
    assert protocol.gt_mean and protocol.name == "lol-gtmean"
    meta = protocol.evaluate(*[torch.zeros(1, 3, 16, 16, dtype=torch.uint8) + 9] * 2).meta
    assert meta["variant"]["of"] == "lol" and "LLFlow" in meta["variant"]["used_by"]
    assert meta["gt_mean"].startswith("LLFlow")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_variant_is_its_base_with_the_documented_options(tmp_path, pair, name):
    """The registered protocol applies exactly the options bench/conventions.py lists (each
    option is checked against an independent reference in the tests below)."""
    pred, target = pair
    mask = torch.zeros((3, 1, 96, 112), dtype=torch.uint8)
    mask[..., 10:50, 20:70] = 255
    convention = VARIANTS[name]
    base = get_protocol(convention.base, tmp_path, **convention.options)
    variant = get_protocol(name, tmp_path)
    given = mask if base.uses_mask else None
    assert (
        variant.evaluate(pred, target, given).summary == base.evaluate(pred, target, given).summary
    )
    assert variant.conventions() == base.conventions()


@pytest.mark.parametrize("name", ["lol-native", "sid-native", "raindrop-native", "gopro-native"])
def test_native_variants_resize_the_prediction_not_the_ground_truth(tmp_path, pair, name):
    pred, target = pair
    small = imresize(pred, (48, 56))
    base = VARIANTS[name].base
    native = get_protocol(name, tmp_path).evaluate(small, target).summary["psnr"]
    upsampled = get_protocol(base, tmp_path).evaluate(imresize(small, (96, 112)), target)
    assert native == pytest.approx(upsampled.summary["psnr"], abs=1e-12)
    assert native != get_protocol(base, tmp_path).evaluate(small, target).summary["psnr"]


def test_istd_d65_mae_is_skimage_rgb2lab(tmp_path, pair):
    pred, target = pair
    result = get_protocol("istd-d65", tmp_path, size=None).evaluate(pred, target)
    lab = [np.abs(rgb2lab(hwc(pred, i)) - rgb2lab(hwc(target, i))).sum(-1).mean() for i in range(3)]
    assert result.summary["mae_all_pi"] == pytest.approx(np.mean(lab), abs=1e-4)
    d50 = get_protocol("istd", tmp_path, size=None).evaluate(pred, target)
    assert abs(d50.summary["mae_all_pi"] - np.mean(lab)) > 1e-2  # D50 is not skimage's


def test_istd_origin_scores_at_native_size_like_skimage(tmp_path, pair):
    pred, target = pair
    result = get_protocol("istd-origin", tmp_path, white="d65").evaluate(pred, target)
    for i in range(len(pred)):  # no imresize: the 96x112 images as they are
        p, t = hwc(pred, i) / 255, hwc(target, i) / 255
        expected = peak_signal_noise_ratio(t, p, data_range=1)
        assert result.per_image["psnr_all"].iloc[i] == pytest.approx(expected, abs=1e-10)
    lab = [np.abs(rgb2lab(hwc(pred, i)) - rgb2lab(hwc(target, i))).sum(-1).mean() for i in range(3)]
    # skimage rounds its sRGB matrix to 6 digits (tests/metrics/test_color.py): 1e-4 in Lab
    assert result.summary["mae_all_pi"] == pytest.approx(np.mean(lab), abs=1e-4)


def test_istd_fu_resizes_uint8_before_psnr(tmp_path, pair):
    pred, target = pair
    fu = get_protocol("istd-fu", tmp_path).evaluate(pred, target).summary["psnr_all"]
    zhu = get_protocol("istd", tmp_path).evaluate(pred, target).summary["psnr_all"]
    p8, t8 = imresize(pred, (256, 256)), imresize(target, (256, 256))
    expected = np.mean(
        [
            peak_signal_noise_ratio(hwc(t8, i) / 255, hwc(p8, i) / 255, data_range=1)
            for i in range(3)
        ]
    )
    assert fu == pytest.approx(expected, abs=1e-10) and fu != zhu


def test_istd_mask_half_counts_only_strong_mask_pixels(tmp_path):
    target = torch.full((1, 3, 32, 32), 120, dtype=torch.uint8)
    pred = target.clone()
    mask = torch.zeros((1, 1, 32, 32), dtype=torch.uint8)
    mask[..., :8] = 255  # 256 strong pixels
    mask[..., 8:12] = 100  # 128 faint ones: shadow only under "any non-zero"
    counts = {}
    for name in ("istd", "istd-mask-half"):
        result = get_protocol(name, tmp_path, size=None).evaluate(pred, target, mask)
        counts[name] = result.per_image["pixels_s"].iloc[0]
    assert counts == {"istd": 384, "istd-mask-half": 256}


def test_ssim_per_channel_variants_equal_skimage_wang(tmp_path, pair):
    pred, target = pair
    istd = get_protocol("istd-ssim-channels", tmp_path, size=None).evaluate(pred, target)
    gopro = get_protocol("gopro-ssim-channels", tmp_path).evaluate(pred, target)
    for i in range(3):
        p, t = hwc(pred, i), hwc(target, i)
        ours = istd.per_image["ssim_all"].iloc[i]
        assert ours == pytest.approx(
            structural_similarity(t / 255, p / 255, data_range=1, channel_axis=-1, **WANG), abs=1e-9
        )
        assert gopro.per_image["ssim"].iloc[i] == pytest.approx(
            structural_similarity(t, p, data_range=255, channel_axis=-1, **WANG), abs=1e-9
        )


def test_y_channel_variants_equal_skimage(tmp_path, pair):
    pred, target = pair
    in_rgb = get_protocol("lol-in-rgb", tmp_path).evaluate(pred, target).per_image
    yiq = get_protocol("raindrop-yiq", tmp_path).evaluate(pred, target).per_image
    rgb_y = get_protocol("rgb-y", tmp_path).evaluate(pred, target).per_image
    skimage_ssim = get_protocol("rgb-skimage-ssim", tmp_path).evaluate(pred, target).per_image
    for i in range(3):
        p, t = hwc(pred, i), hwc(target, i)
        assert in_rgb["psnr"].iloc[i] == pytest.approx(peak_signal_noise_ratio(t, p), abs=1e-10)
        rgb_ssim = structural_similarity(t, p, data_range=255, channel_axis=-1)
        assert in_rgb["ssim"].iloc[i] == pytest.approx(rgb_ssim, abs=1e-9)
        assert skimage_ssim["ssim"].iloc[i] == pytest.approx(rgb_ssim, abs=1e-9)
        y_p, y_t = rgb2yiq(p)[..., 0] * 255, rgb2yiq(t)[..., 0] * 255
        assert yiq["psnr"].iloc[i] == pytest.approx(
            peak_signal_noise_ratio(y_t, y_p, data_range=255), abs=1e-8
        )
        # MATLAB rgb2ycbcr on uint8 rounds Y half away from zero
        y_p, y_t = (np.floor(rgb2ycbcr(x)[..., 0] + 0.5) for x in (p, t))
        assert rgb_y["psnr"].iloc[i] == pytest.approx(
            peak_signal_noise_ratio(y_t, y_p, data_range=255), abs=1e-10
        )


def llflow_gt_mean(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """LLFlow test.py, rewritten from its description: mean of the output over all values
    in [0, 1]; grey mean of the ground truth by OpenCV's BGR2GRAY weights applied to the RGB
    array (channel 0 weighted 0.114); scale, clip to [0, 1], x255, truncate to uint8."""
    out = pred.astype(np.float64) / 255
    grey = target.astype(np.float64) @ np.array([0.114, 0.587, 0.299])
    scaled = np.clip(out * (grey.mean() / 255 / out.mean()), 0, 1)
    return (scaled * 255).astype(np.uint8)


def test_gt_mean_matches_llflow_and_moves_a_dark_prediction_up(tmp_path, photos):
    dark = (photos.to(torch.float64) * 0.4).round().to(torch.uint8)
    result = get_protocol("lol-gtmean", tmp_path, channel="rgb").evaluate(dark, photos)
    plain = get_protocol("lol", tmp_path, channel="rgb").evaluate(dark, photos)
    for i in range(3):
        corrected = llflow_gt_mean(hwc(dark, i), hwc(photos, i))
        expected = peak_signal_noise_ratio(hwc(photos, i), corrected)
        assert result.per_image["psnr"].iloc[i] == pytest.approx(expected, abs=1e-9)
    assert result.summary["psnr"] > plain.summary["psnr"] + 5


def test_lpips_v0_is_the_packages_v0_0_heads(alexnet_weights_dir, photos):
    import lpips

    from bench.metrics.perceptual import Lpips

    blurred = degrade(photos, "blur")
    v0 = get_protocol("rgb-lpips-v0", alexnet_weights_dir).evaluate(blurred, photos)
    v1 = get_protocol("rgb", alexnet_weights_dir).evaluate(blurred, photos)
    reference = lpips.LPIPS(net="alex", version="0.0", pnet_rand=True, verbose=False)
    reference.net.load_state_dict(Lpips(alexnet_weights_dir).model.net.state_dict())
    with torch.no_grad():
        expected = reference(blurred / 127.5 - 1, photos / 127.5 - 1).flatten().double()
    assert np.allclose(v0.per_image["lpips"], expected.numpy(), atol=1e-6)
    assert not np.allclose(v0.per_image["lpips"], v1.per_image["lpips"], atol=1e-3)
    assert v0.meta["lpips"].startswith("lpips.LPIPS(net='alex', version='0.0')")


def test_audit_rows_have_every_convention_and_read_back_from_metrics(tmp_path, pair):
    pred, target = pair
    mask = torch.zeros((3, 1, 96, 112), dtype=torch.uint8)
    mask[..., 20:60, 30:80] = 255
    rows = audit_images("istd", lambda p: p.evaluate(pred, target, mask), tmp_path)
    assert [r.protocol for r in rows] == ["istd"] + [c.name for c in conventions_for("istd")]
    by_name = {r.protocol: r for r in rows}
    direct = get_protocol("istd-d65", tmp_path).evaluate(pred, target, mask).summary
    assert by_name["istd-d65"].values["MAE"] == pytest.approx(direct["mae_all_pi"], abs=1e-12)
    assert by_name["istd-d65"].deltas["MAE"] == pytest.approx(
        direct["mae_all_pi"] - rows[0].values["MAE"], abs=1e-12
    )
    pp = get_protocol("istd", tmp_path).evaluate(pred, target, mask).summary["mae_s_pp"]
    assert by_name["istd-mae-pp"].values["MAE S"] == pytest.approx(pp, abs=1e-12)
    assert by_name["istd-mae-pp"].pick == "istd"
    assert by_name["istd"].values["LPIPS"] is None  # no weights here: n/a, never 0
    again = rows_from_metrics("istd", to_metrics(rows))
    assert [(r.protocol, r.values, r.change) for r in again] == [
        (r.protocol, r.values, r.change) for r in rows
    ]
    table = markdown(rows)
    assert "| `istd-origin` |" in table and "n/a" in table
    # the per-pixel row is scored by istd, and says which of its values it reads
    assert "| `istd (mae_all_pp, mae_s_pp)` |" in table


def test_audit_of_a_variant_is_the_audit_of_its_base(tmp_path, pair):
    pred, target = pair
    known = get_protocol("lol-gtmean", tmp_path).evaluate(pred, target)
    rows = audit_images("lol-gtmean", lambda p: p.evaluate(pred, target), tmp_path, known=known)
    assert rows[0].protocol == "lol" and {r.protocol for r in rows} == {"lol"} | {
        c.name for c in conventions_for("lol")
    }
    gtmean = next(r for r in rows if r.protocol == "lol-gtmean")
    assert gtmean.values["PSNR"] == pytest.approx(known.summary["psnr"], abs=1e-12)


def test_audit_rows_leave_out_conventions_that_were_not_scored():
    rows = audit_rows("rgb", {"rgb": {"psnr": 30.0, "ssim": 0.9}, "rgb-y": {"psnr": 31.5}})
    assert [r.protocol for r in rows] == ["rgb", "rgb-y"]
    assert rows[1].deltas == {"PSNR": 1.5, "SSIM": None, "LPIPS": None}
    assert set(VARIANTS) >= {"istd-origin", "lol-gtmean", "raindrop-yiq"}


def test_protocol_options_are_checked_by_name_and_value(tmp_path):
    from bench.errors import UsageError

    with pytest.raises(UsageError, match="protocol 'istd' has no option colour; valid: "):
        get_protocol("istd", tmp_path, colour="lab")
    with pytest.raises(UsageError, match="white = 'd60'; valid: d50, d65"):
        get_protocol("istd", tmp_path, white="d60")
    assert get_protocol("lol", tmp_path).channel == "y"  # the paper's value comes first


def test_the_audit_computes_lpips_once_per_distinct_input(alexnet_weights_dir, photos, monkeypatch):
    """Most ISTD conventions leave LPIPS's inputs alone: the audit answers those from the
    memo, and every row still carries the value scoring that protocol alone gives."""
    from bench.metrics import perceptual

    perceptual._MEMO.clear()
    calls = []
    distance = perceptual.Lpips._distance
    monkeypatch.setattr(
        perceptual.Lpips, "_distance", lambda self, a, b: calls.append(1) or distance(self, a, b)
    )
    pred = degrade(photos, "blur")
    mask = torch.zeros((3, 1, 96, 112), dtype=torch.uint8)
    mask[..., 30:70, 20:90] = 255
    rows = audit_images("istd", lambda p: p.evaluate(pred, photos, mask), alexnet_weights_dir)
    # scored one image at a time: v0.1 once per image (six rows share it), v0.0 once per image
    assert len(calls) == 2 * len(pred)
    perceptual._MEMO.clear()
    alone = get_protocol("istd-origin", alexnet_weights_dir).evaluate(pred, photos, mask)
    origin = next(r for r in rows if r.protocol == "istd-origin")
    assert origin.values["LPIPS"] == pytest.approx(alone.summary["lpips"], abs=1e-12)


@pytest.mark.parametrize("base", sorted(HEADLINES))
def test_headline_specs_name_the_protocols_summary_keys_and_directions(tmp_path, pair, base):
    """Every headline a protocol declares is a key its summary has (or reports unavailable),
    and its direction holds: the ground truth scored against itself is better than the
    degraded image on each available metric."""
    pred, target = pair
    mask = torch.zeros((3, 1, 96, 112), dtype=torch.uint8)
    mask[..., 10:50, 20:70] = 255
    protocol = get_protocol(base, tmp_path)
    given = mask if protocol.uses_mask else None
    degraded = protocol.evaluate(pred, target, given)
    perfect = protocol.evaluate(target, target, given).summary
    for spec in HEADLINES[base]:
        assert spec.key in degraded.summary or spec.key in degraded.unavailable, spec
        if spec.key in degraded.summary and math.isfinite(perfect[spec.key]):
            better = perfect[spec.key] < degraded.summary[spec.key]
            assert better == spec.lower_is_better, spec


@pytest.mark.parametrize("stream", ["result", "audit", "curve"])
def test_metric_keys_round_trip_through_their_logged_names(stream):
    key = MetricKey("istd-origin", "mae_s_pi", stream)
    assert MetricKey.parse(str(key)) == key
    assert str(MetricKey("istd", "psnr_all")) == "istd/psnr_all"
    assert str(MetricKey("lol", "ssim", "curve")) == "curve/lol/ssim"
    assert MetricKey.parse("loss") is None and MetricKey.parse("a/b/c") is None
    assert logged("lol", {"psnr": 1.0}, "audit") == {"audit/lol/psnr": 1.0}


@pytest.mark.parametrize("name", sorted(n for n, c in VARIANTS.items() if c.recomputes))
def test_a_convention_leaves_alone_the_metrics_it_says_it_does_not_change(
    alexnet_weights_dir, pair, name
):
    """The audit computes a convention's declared groups only and takes the rest from the
    paper's result: scored in full, every other headline value equals the base's exactly
    (LPIPS from a random AlexNet, so that it is computed too)."""
    pred, target = pair
    mask = torch.zeros((3, 1, 96, 112), dtype=torch.uint8)
    mask[..., 10:50, 20:70] = 255
    convention = VARIANTS[name]
    base = get_protocol(convention.base, alexnet_weights_dir)
    variant = get_protocol(name, alexnet_weights_dir)
    given = mask if base.uses_mask else None
    full, reference = variant.evaluate(pred, target, given), base.evaluate(pred, target, given)
    kept = [s.key for s in HEADLINES[convention.base] if s.group not in convention.recomputes]
    assert kept and "lpips" in full.summary
    for key in kept:
        assert full.summary[key] == reference.summary[key], key
    moved = [s.key for s in HEADLINES[convention.base] if s.group in convention.recomputes]
    assert any(full.summary[k] != reference.summary[k] for k in moved), "declares no change"


@pytest.mark.parametrize("base", ["istd", "lol", "gopro", "rgb"])
def test_the_partial_audit_equals_scoring_every_convention_in_full(alexnet_weights_dir, pair, base):
    pred, target = pair
    mask = torch.zeros((3, 1, 96, 112), dtype=torch.uint8)
    mask[..., 10:50, 20:70] = 255
    given = mask if base == "istd" else None
    rows = audit_images(base, lambda p: p.evaluate(pred, target, given), alexnet_weights_dir)
    summaries = {
        base: get_protocol(base, alexnet_weights_dir).evaluate(pred, target, given).summary
    }
    for convention in conventions_for(base):
        if convention.is_protocol:
            protocol = get_protocol(convention.name, alexnet_weights_dir)
            summaries[convention.name] = protocol.evaluate(pred, target, given).summary
    full = audit_rows(base, summaries, get_protocol(base, alexnet_weights_dir).table)
    assert [r.as_dict() for r in rows] == [r.as_dict() for r in full]


def test_bench_run_prints_each_protocols_declared_columns():
    from bench.conventions import PRINTED_COLUMNS, printed_columns

    assert printed_columns("istd") == PRINTED_COLUMNS["istd"]
    assert printed_columns("istd-origin") == PRINTED_COLUMNS["istd"]  # a variant: its base's
    assert printed_columns("lol") == ("psnr", "ssim", "lpips")  # the headlines
    assert printed_columns("generation") == ("fid", "kid", "isc")  # set metrics
