"""sr-y and sr-rgb (bench/protocols/super_resolution.py) against references computed here:
the modcrop and the shave by numpy slicing, Y by the rgb2ycbcr formula, PSNR and SSIM by
scikit-image, one greyscale image among the colour ones."""

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import UsageError
from bench.protocols import get_protocol
from bench.scoring import score_folders

WANG = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255}


def _y(image: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr on uint8, Y only: term by term, rounded half up."""
    weights = np.array([65.481, 128.553, 24.966]) / 255
    r, g, b = image.astype(np.float64).transpose(2, 0, 1)
    return np.floor(r * weights[0] + g * weights[1] + b * weights[2] + 16.5)


@pytest.fixture
def sr_folders(tmp_path):
    """HR images whose sides are no multiple of 4 (66x70), and x4 "outputs" of the modcropped
    size (64x68) named as released SR results are (<id>_x4_SR.png): one colour, one grey."""
    rng = np.random.default_rng(0)
    hr = {
        "astronaut": data.astronaut()[100:166, 150:220],
        "camera": data.camera()[200:266, 200:270],
    }
    out = {}
    for name, image in hr.items():
        crop = image[:64, :68].astype(int)
        out[name] = np.clip(crop + rng.integers(-12, 13, crop.shape), 0, 255).astype(np.uint8)
    (tmp_path / "hr").mkdir()
    (tmp_path / "sr").mkdir()
    for name in hr:
        Image.fromarray(hr[name]).save(tmp_path / "hr" / f"{name}.png")
        Image.fromarray(out[name]).save(tmp_path / "sr" / f"{name}_x4_SR.png")
    return tmp_path, hr, out


def test_sr_y_shaves_modcrops_and_scores_y_or_grey_values(sr_folders):
    tmp_path, hr, out = sr_folders
    protocol = get_protocol("sr-y", tmp_path, scale=4)
    result = score_folders(tmp_path / "sr", tmp_path / "hr", protocol, match="(?P<id>.+)_x4_SR")
    rows = result.per_image.set_index("name")
    for name in hr:
        truth, output = hr[name][:64, :68], out[name]  # modcrop: a multiple of 4
        if truth.ndim == 3:
            truth, output = _y(truth), _y(output)
        truth, output = truth[4:-4, 4:-4].astype(float), output[4:-4, 4:-4].astype(float)
        assert rows.loc[name, "psnr"] == pytest.approx(peak_signal_noise_ratio(truth, output, data_range=255), abs=1e-9)  # fmt: skip
        assert rows.loc[name, "ssim"] == pytest.approx(structural_similarity(output, truth, **WANG), abs=1e-9)  # fmt: skip
    assert result.summary["psnr"] == pytest.approx(rows["psnr"].mean())
    assert result.meta["shave"] == "4 pixels from every border"


def test_sr_rgb_scores_the_three_channels_and_refuses_grey(sr_folders, tmp_path):
    root, hr, out = sr_folders
    (root / "hr" / "camera.png").unlink()
    (root / "sr" / "camera_x4_SR.png").unlink()
    protocol = get_protocol("sr-rgb", root, scale=4)
    result = score_folders(root / "sr", root / "hr", protocol, match="(?P<id>.+)_x4_SR")
    truth = hr["astronaut"][:64, :68][4:-4, 4:-4].astype(float)
    output = out["astronaut"][4:-4, 4:-4].astype(float)
    row = result.per_image.iloc[0]
    assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(truth, output, data_range=255), abs=1e-9)  # fmt: skip
    expected = structural_similarity(output, truth, channel_axis=-1, **WANG)
    assert row["ssim"] == pytest.approx(expected, abs=1e-9)


def test_a_wrong_scale_is_one_clear_error(sr_folders):
    """A x4 output scored as x3: 64x68 is not 66x70 cropped to a multiple of 3 (66x69)."""
    tmp_path, _, _ = sr_folders
    protocol = get_protocol("sr-y", tmp_path, scale=3)
    with pytest.raises(UsageError, match="not the ground truth's 70x66 cropped .* check --scale"):
        score_folders(tmp_path / "sr", tmp_path / "hr", protocol, match="(?P<id>.+)_x4_SR")


def test_bench_score_scale_and_match_on_released_names(sr_folders, tmp_path):
    root, _, _ = sr_folders
    args = ["score", str(root / "sr"), str(root / "hr"), "-p", "sr-y", "--scale", "4",
            "--match", "(?P<id>.+)_x4_SR", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    direct = score_folders(root / "sr", root / "hr", get_protocol("sr-y", root, scale=4), match="(?P<id>.+)_x4_SR")  # fmt: skip
    assert document["summary"]["psnr"] == pytest.approx(direct.summary["psnr"], abs=1e-12)
    refused = CliRunner().invoke(app, [*args[:3], "-p", "lol", "--scale", "4"])
    assert (
        refused.exit_code == 2 and "--scale is for the super-resolution protocols" in refused.output
    )


def test_sr3_faces_scores_as_the_official_code_and_consistency_has_its_closed_form():
    """PSNR over every RGB value and Wang SSIM as the channels' mean (SR3's core/metrics.py,
    here scikit-image configured the same way); consistency of an output that is the ground
    truth plus 10 grey levels is (10 / 255)^2 exactly: a shift by whole levels survives the
    bicubic downsampling (its weights sum to one) and MATLAB's rounding unchanged."""
    import torch

    rng = np.random.default_rng(1)
    target = rng.integers(20, 200, (2, 64, 64, 3), dtype=np.uint8)
    noisy = np.clip(target.astype(int) + rng.integers(-12, 13, target.shape), 0, 255).astype(np.uint8)  # fmt: skip
    shifted = target + np.uint8(10)
    protocol = get_protocol("sr3-faces", "weights")
    as_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)  # noqa: E731
    result = protocol.evaluate(as_tensor(noisy), as_tensor(target))
    for i in range(2):
        row = result.per_image.iloc[i]
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(target[i], noisy[i], data_range=255), abs=1e-10)  # fmt: skip
        assert row["ssim"] == pytest.approx(structural_similarity(target[i], noisy[i], channel_axis=2, **WANG), abs=1e-7)  # fmt: skip
    shifted_result = protocol.evaluate(as_tensor(shifted), as_tensor(target))
    np.testing.assert_allclose(shifted_result.per_image["consistency"], (10 / 255) ** 2, rtol=1e-12)
    same = protocol.evaluate(as_tensor(target), as_tensor(target))
    assert (same.per_image["consistency"] == 0).all()
    with pytest.raises(UsageError, match="multiple of the scale 8"):
        protocol.evaluate(as_tensor(target[:, :60, :60]), as_tensor(target[:, :60, :60]))


def test_the_sr_audit_conventions_against_references(sr_folders):
    """sr-y's audit: no shave, RGB instead of Y, Y unrounded (BasicSR's float bgr2ycbcr),
    each recomputed here with numpy and scikit-image on the colour image; `bench score
    --audit --scale 4` prints every row."""
    tmp_path, hr, out = sr_folders
    for folder, name in (("sr", "camera_x4_SR.png"), ("hr", "camera.png")):
        (tmp_path / folder / name).unlink()  # greyscale: sr-y-in-rgb refuses it, by name
    truth, output = hr["astronaut"][:64, :68], out["astronaut"]
    weights = np.array([65.481, 128.553, 24.966]) / 255
    float_y = lambda image: image.astype(np.float64) @ weights + 16  # noqa: E731
    expected = {
        "sr-y-noshave": peak_signal_noise_ratio(_y(truth), _y(output), data_range=255),
        "sr-y-in-rgb": peak_signal_noise_ratio(
            truth[4:-4, 4:-4], output[4:-4, 4:-4], data_range=255
        ),  # fmt: skip
        "sr-y-unrounded": peak_signal_noise_ratio(
            float_y(truth)[4:-4, 4:-4], float_y(output)[4:-4, 4:-4], data_range=255
        ),  # fmt: skip
    }
    for name, value in expected.items():
        result = score_folders(tmp_path / "sr", tmp_path / "hr", get_protocol(name, tmp_path, scale=4), match="(?P<id>.+)_x4_SR")  # fmt: skip
        assert result.per_image.set_index("name").loc["astronaut", "psnr"] == pytest.approx(value, abs=1e-9), name  # fmt: skip
    args = ["score", str(tmp_path / "sr"), str(tmp_path / "hr"), "--protocol", "sr-y", "--scale", "4",
            "--match", "(?P<id>.+)_x4_SR", "--audit", "--csv", str(tmp_path / "audit.csv")]  # fmt: skip
    cli = CliRunner().invoke(app, args, terminal_width=250)
    assert cli.exit_code == 0, cli.output
    for name in expected:
        assert name in cli.output
