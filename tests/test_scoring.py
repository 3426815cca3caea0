"""The one scoring path (bench.scoring): a run's samples against the ground-truth files at their
own size, and one rule for predictions of another size than their files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.errors import UsageError
from bench.metrics.resize import imresize
from bench.protocols import get_protocol
from bench.protocols.base import Protocol
from bench.scoring import NativeFiles, Samples, score_samples, size_problem


def smooth(height: int, width: int, phase: float) -> torch.Tensor:
    y, x = np.mgrid[0:height, 0:width]
    channels = [127 + 100 * np.sin(x / 7 + phase + c) * np.cos(y / 9 - c) for c in range(3)]
    return torch.from_numpy(np.stack(channels).round().astype(np.uint8))


def loader_copy(image: torch.Tensor, padded: tuple[int, int], size: int) -> torch.Tensor:
    """What the loader makes of a file: zero-padded bottom/right, then resized (PIL bicubic)."""
    canvas = torch.zeros((3, *padded), dtype=torch.uint8)
    canvas[:, : image.shape[1], : image.shape[2]] = image
    resized = Image.fromarray(canvas.permute(1, 2, 0).numpy()).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1)


@pytest.fixture
def mixed():
    """Two sizes, neither a multiple of 8: the loader pads 60x90 to 64x96, 50x70 to 56x72."""
    files = [smooth(60, 90, 0.0), smooth(50, 70, 1.0), smooth(60, 90, 2.0)]
    padded = [(64, 96), (56, 72), (64, 96)]
    pred = torch.stack([loader_copy(f, p, 48) for f, p in zip(files, padded, strict=True)])
    native = NativeFiles(targets=files, padded=padded)
    return Samples(pred, pred.clone(), None, None, ["a", "b", "c"], 3, native)


def test_native_scoring_groups_sizes_and_undoes_the_padding(tmp_path, mixed):
    result = score_samples(get_protocol("rgb", tmp_path), mixed)
    assert sorted(result.per_image["name"]) == ["a", "b", "c"]
    # the prediction (the loader's copy of the file) brought back to the file: resize to the
    # padded size, crop the padding away; only the 48-pixel bottleneck is lost
    restored = {
        name: imresize(mixed.pred[i : i + 1], pad)[..., : f.shape[1], : f.shape[2]]
        for i, (name, f, pad) in enumerate(zip("abc", mixed.native.targets, mixed.native.padded, strict=True))
    }  # fmt: skip
    for name, image in restored.items():
        index = "abc".index(name)
        mse = ((image.double() - mixed.native.targets[index].double()) ** 2).mean()
        expected = 10 * np.log10(255**2 / mse.item())
        row = result.per_image.set_index("name").loc[name]
        assert row["psnr"] == pytest.approx(expected, abs=1e-9)
        assert row["psnr"] > 25  # the padding strip would cost far more if left in
        stretched = imresize(mixed.pred[index : index + 1], tuple(image.shape[-2:]))
        naive = 10 * np.log10(
            255**2
            / ((stretched.double() - mixed.native.targets[index].double()) ** 2).mean().item()
        )
        assert row["psnr"] > naive + 3  # fmt: skip


def test_resizing_protocols_get_the_files_as_they_are(tmp_path, mixed):
    """ISTD's script resizes the ground truth file itself (MATLAB imresize to 256x256)."""
    result = score_samples(get_protocol("istd", tmp_path), mixed)
    direct = get_protocol("istd", tmp_path).evaluate(
        mixed.pred[[1]], mixed.native.targets[1][None], names=["b"]
    )
    row = result.per_image.set_index("name").loc["b"]
    assert row["psnr_all"] == pytest.approx(direct.per_image["psnr_all"].iloc[0], abs=1e-12)


class PlainMae(Protocol):
    """A protocol as a user writes one: no resizing of its own, nothing but ``measure``."""

    name = "plain-mae"
    description = "mean |pred - target| on RGB"
    table = "none"
    mean_columns = ("mae",)

    def measure(self, pred, target, mask):
        return {"mae": (pred.double() - target.double()).abs().flatten(1).mean(dim=1)}, {}


def test_a_protocol_that_does_not_resize_gets_predictions_at_the_files_size(tmp_path, mixed):
    """The default of a new protocol: the runner brings each prediction back to its file's
    size (as for rgb), and evaluate refuses two sizes with one line instead of a torch error."""
    result = score_samples(PlainMae(tmp_path), mixed)
    rgb = score_samples(get_protocol("rgb", tmp_path), mixed)
    assert list(result.per_image["name"]) == list(rgb.per_image["name"])
    for index, name in enumerate(result.per_image["name"]):
        i = "abc".index(name)
        target = mixed.native.targets[i]
        pred = imresize(mixed.pred[i : i + 1], mixed.native.padded[i])[..., : target.shape[1], : target.shape[2]]  # fmt: skip
        expected = (pred.double() - target.double()).abs().mean().item()
        assert result.per_image["mae"].iloc[index] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(UsageError, match=r"'plain-mae' does not resize: prediction \(48, 48\)"):
        PlainMae(tmp_path).evaluate(mixed.pred[:1], mixed.native.targets[0][None])


def test_one_size_rule_for_runs_and_folders(tmp_path):
    """A prediction of another size than its file: a resizing protocol scores it; a
    non-resizing one scores it only when the loader's padding is known (a run's samples),
    never for a folder of files, where the message names both sizes."""
    istd, rgb = get_protocol("istd", tmp_path), get_protocol("rgb", tmp_path)
    assert size_problem(istd, (48, 48), (60, 90), None) is None
    assert size_problem(rgb, (60, 90), (60, 90), None) is None
    assert size_problem(rgb, (48, 48), (60, 90), (64, 96)) is None
    said = size_problem(rgb, (48, 48), (60, 90), None)
    assert said == "is 48x48 but its ground truth is 90x60; protocol 'rgb' does not resize"


def test_a_y_channel_protocol_scores_greyscale_files_on_their_grey_values(tmp_path):
    """lol (evaluate_PSNR_SSIM.m): a one-channel pair is scored on its raw grey values, as the
    script's ``if size(im,3)==3`` guard does, an RGB pair on rounded BT.601 Y, in one folder;
    checked against numpy and scikit-image. An RGB protocol still refuses the grey file, and
    nothing is replicated to RGB."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from bench.scoring import score_folders

    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    grey_pred = np.clip(grey.astype(int) + rng.integers(-20, 21, grey.shape), 0, 255).astype(np.uint8)  # fmt: skip
    colour = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    colour_pred = np.clip(colour.astype(int) + rng.integers(-20, 21, colour.shape), 0, 255).astype(np.uint8)  # fmt: skip
    for folder, images in (("gt", (grey, colour)), ("pred", (grey_pred, colour_pred))):
        (tmp_path / folder).mkdir()
        for name, image in zip(("a", "b"), images, strict=True):
            Image.fromarray(image).save(tmp_path / folder / f"{name}.png")
    result = score_folders(tmp_path / "pred", tmp_path / "gt", get_protocol("lol", tmp_path))
    rows = result.per_image.set_index("name")
    a, b = grey_pred.astype(np.float64), grey.astype(np.float64)
    assert rows.loc["a", "psnr"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-9)  # fmt: skip
    ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)  # fmt: skip
    assert rows.loc["a", "ssim"] == pytest.approx(ssim, abs=1e-9)
    weights = np.array([65.481, 128.553, 24.966]) / 255

    def y(image):
        r, g, bl = image.astype(np.float64).transpose(2, 0, 1)
        return np.floor(r * weights[0] + g * weights[1] + bl * weights[2] + 16.5)

    expected = peak_signal_noise_ratio(y(colour), y(colour_pred), data_range=255)
    assert rows.loc["b", "psnr"] == pytest.approx(expected, abs=1e-9)
    assert "lpips" not in result.summary and "lpips" in result.unavailable
    with pytest.raises(UsageError, match="grayscale image"):
        score_folders(tmp_path / "pred", tmp_path / "gt", get_protocol("rgb", tmp_path))


def test_predictions_at_the_padded_size_lose_the_padding_even_under_resizing_protocols(tmp_path):
    """A prediction at the size the loader padded its file to (a test at the files' own size)
    is cut back to the file before any protocol sees it: sr-y then finds the modcropped
    ground truth's size, which it requires, and its score equals the unpadded one's."""
    truth = smooth(60, 90, 0.5)  # x3: modcrop keeps 60x90; the loader pads to 64x96
    pred = torch.zeros((1, 3, 64, 96), dtype=torch.uint8)
    pred[..., :60, :90] = (truth.int() + 3).clamp(0, 255).to(torch.uint8)
    samples = Samples(pred, pred.clone(), None, None, ["a"], 1, NativeFiles(targets=[truth], padded=[(64, 96)]))  # fmt: skip
    protocol = get_protocol("sr-y", tmp_path, scale=3)
    scored = score_samples(protocol, samples)
    direct = protocol.evaluate(pred[..., :60, :90], truth[None], names=["a"])
    assert scored.summary["psnr"] == direct.summary["psnr"] < 60


def test_a_greyscale_ground_truth_scores_the_output_s_grey_values_under_sr_y(tmp_path):
    """A super-resolution set's greyscale file: the output (three channels, as the methods
    give it) is scored as the rounded mean of its channels against the grey values, never
    against a replicated RGB; a colour file beside it is scored on Y. References: numpy and
    scikit-image."""
    from skimage.metrics import peak_signal_noise_ratio

    grey = smooth(40, 48, 0.2)[:1]  # (1, H, W)
    colour = smooth(40, 48, 1.1)
    rng = np.random.default_rng(3)
    noise = torch.from_numpy(rng.integers(-6, 7, (2, 3, 40, 48)))
    pred = torch.stack([grey.expand(3, -1, -1), colour]).int().add(noise).clamp(0, 255).to(torch.uint8)  # fmt: skip
    native = NativeFiles(targets=[grey, colour], padded=[(40, 48), (40, 48)])
    samples = Samples(pred, pred.clone(), None, None, ["g", "c"], 2, native)
    result = score_samples(get_protocol("sr-y", tmp_path, scale=2), samples).per_image.set_index("name")  # fmt: skip
    as_grey = np.round(pred[0].double().mean(0).numpy())
    expected = peak_signal_noise_ratio(grey[0].double().numpy()[2:-2, 2:-2], as_grey[2:-2, 2:-2], data_range=255)  # fmt: skip
    assert result.loc["g", "psnr"] == pytest.approx(expected, abs=1e-9)
    weights = np.array([65.481, 128.553, 24.966]) / 255
    y = lambda image: np.floor(np.tensordot(weights, image.double().numpy(), 1) + 16.5)  # noqa: E731
    expected_c = peak_signal_noise_ratio(y(colour)[2:-2, 2:-2], y(pred[1])[2:-2, 2:-2], data_range=255)  # fmt: skip
    assert result.loc["c", "psnr"] == pytest.approx(expected_c, abs=1e-9)
