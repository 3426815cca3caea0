"""Super-resolution data: the synth-sr suite's LR files, the loader's pairs (modcropped HR,
bicubic-upsampled LR), verification of LR sizes, and the manifest's [super_resolution]."""

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import get_dataset, open_split
from bench.data.spec import parse_manifest
from bench.data.synth import generate
from bench.data.verify import DataError, verify
from bench.errors import UsageError
from bench.metrics.resize import imresize

SMALL = {"train_count": 4, "test_count": 3, "patch": 48, "test_size": [50, 66]}


def read(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return generate(get_dataset("synth-sr"), tmp_path_factory.mktemp("sr") / "synth-sr", 0, SMALL)


def matlab(image: np.ndarray, size, edge="symmetric") -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    return imresize(tensor, size, edge=edge)[0].permute(1, 2, 0).numpy()


def test_lr_files_are_the_modcropped_hr_downscaled_by_matlab_bicubic(suite):
    hr_files = sorted((suite / "test" / "HR").glob("*.png"))
    assert len(hr_files) == 3
    for hr_file in hr_files:
        hr = read(hr_file)
        assert hr.shape == (50, 66, 3)  # not a multiple of 4: the LR comes from 48x64
        lr = read(suite / "test" / "LR_bicubic" / "X4" / f"{hr_file.stem}x4.png")
        assert lr.shape == (12, 16, 3)
        np.testing.assert_array_equal(lr, matlab(hr[:48, :64], (12, 16)))
        # the suite's edge rule is the dataset's: the older clamp rule differs at the border
        assert not np.array_equal(lr, matlab(hr[:48, :64], (12, 16), edge="clamp"))


def test_the_loader_pairs_the_upsampled_lr_with_the_modcropped_hr(suite):
    split = open_split("synth-sr", suite, "test", image_size=None, train=False, normalize=False)
    item = split[0]
    hr = read(suite / "test" / "HR" / f"{split.ids[0]}.png")
    lr = read(suite / "test" / "LR_bicubic" / "X4" / f"{split.ids[0]}x4.png")
    target = (item["target"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    upsampled = (item["input"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(target, hr[:48, :64])
    np.testing.assert_array_equal(upsampled, matlab(lr, (48, 64)))
    # what the scores read: the same modcropped ground truth and upsampled input
    native = split.native(0, ("target", "input"))
    np.testing.assert_array_equal(native["target"], hr[:48, :64])
    np.testing.assert_array_equal(native["input"], upsampled)
    assert item["name"] == split.ids[0]  # the HR image's name, which bench score pairs


def test_an_lr_file_of_the_wrong_size_is_named(suite, tmp_path):
    import shutil

    copy = tmp_path / "synth-sr"
    shutil.copytree(suite, copy)
    lr_file = sorted((copy / "test" / "LR_bicubic" / "X4").glob("*.png"))[0]
    Image.fromarray(read(lr_file)[:-1]).save(lr_file)
    with pytest.raises(DataError) as raised:
        verify(get_dataset("synth-sr"), copy, relock=True)
    assert any(str(lr_file) in p and "at scale 4" in p for p in raised.value.problems)


MANIFEST = """
name = "{name}"
task = "{task}"
protocol = "sr-y"
kind = "paired"
test_split = "test"
{table}
[splits.test]
input = "LR/X{{scale}}"
target = "HR"
"""


def test_a_super_resolution_manifest_needs_its_scale_and_fills_folders(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(MANIFEST.format(name="mine", task="super-resolution", table="[super_resolution]\nscale = 3\n"))  # fmt: skip
    spec = parse_manifest(path)
    assert spec.split("test").roles["input"].folder == "LR/X3"
    assert spec.protocol_options == {"scale": 3}
    path.write_text(MANIFEST.format(name="mine", task="super-resolution", table=""))
    with pytest.raises(UsageError, match="super_resolution.*scale"):
        parse_manifest(path)
    path.write_text(MANIFEST.format(name="mine", task="super-resolution", table="[super_resolution]\nscale = 5\n"))  # fmt: skip
    with pytest.raises(UsageError, match="scale = 5"):
        parse_manifest(path)
    path.write_text(MANIFEST.format(name="mine", task="deblurring", table="[super_resolution]\nscale = 4\n"))  # fmt: skip
    with pytest.raises(UsageError, match="allowed only there"):
        parse_manifest(path)


def test_the_pil_kernel_upsamples_as_sr3_s_prepare_data():
    """SR3's prepare_data.py makes its sr_<l>_<r> input with torchvision's resize of the PIL
    LR image (bicubic); a "pil" dataset gives the same bytes."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tv

    from bench.data.loaders import bicubic
    from bench.data.spec import SuperResolution

    lr = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    reference = np.asarray(tv.resize(Image.fromarray(lr), 128, InterpolationMode.BICUBIC))
    np.testing.assert_array_equal(bicubic(lr, (128, 128), SuperResolution(8, kernel="pil")), reference)  # fmt: skip
    assert not np.array_equal(bicubic(lr, (128, 128), SuperResolution(8)), reference)


def test_prepare_makes_the_lr_images_of_a_set_that_ships_hr_only(tmp_path):
    """Set5's manifest: `bench data prepare` writes LR_bicubic/X4/<name>x4.png, the HR image
    modcropped and downscaled by MATLAB bicubic; a greyscale HR image gets a greyscale LR; an
    LR file already there is kept; the folder then verifies."""
    from skimage import data as photos

    from bench.data.prepare import prepare

    spec = get_dataset("set5")
    hr = {
        "baby": photos.astronaut()[:101, :103],
        "bird": photos.coffee()[:66, :70],
        "butterfly": photos.chelsea()[:64, :64],
        "head": photos.camera()[:50, :77],  # greyscale
    }
    for name, image in hr.items():
        (tmp_path / "HR").mkdir(exist_ok=True)
        Image.fromarray(image).save(tmp_path / "HR" / f"{name}.png")
    kept = np.full((16, 16, 3), 7, dtype=np.uint8)  # a shipped LR file of the right size
    Image.fromarray(photos.rocket()[:64, :64]).save(tmp_path / "HR" / "woman.png")
    (tmp_path / "LR_bicubic" / "X4").mkdir(parents=True)
    Image.fromarray(kept).save(tmp_path / "LR_bicubic" / "X4" / "womanx4.png")
    assert "4 LR image(s)" in prepare(spec, tmp_path)
    for name, image in hr.items():
        lr = read(tmp_path / "LR_bicubic" / "X4" / f"{name}x4.png")
        height, width = image.shape[0] // 4, image.shape[1] // 4
        cropped = image[: height * 4, : width * 4]
        if image.ndim == 2:
            assert lr.shape == (height, width)
            np.testing.assert_array_equal(lr, matlab(cropped[..., None], (height, width))[..., 0])
        else:
            np.testing.assert_array_equal(lr, matlab(cropped, (height, width)))
    np.testing.assert_array_equal(read(tmp_path / "LR_bicubic" / "X4" / "womanx4.png"), kept)
    # a greyscale file verifies; the methods see it in three equal channels (padded to a
    # multiple of 8), the scores see it grey
    from bench.data.loaders import open_split as open_spec_split

    verify(spec, tmp_path, relock=True)
    split = open_spec_split(spec, tmp_path, "test", None, train=False, normalize=False)
    index = split.ids.index("head")
    item = split[index]
    assert item["input"].shape == (3, 48, 80) and torch.equal(item["input"][0], item["input"][2])
    native = split.native(index, ("target", "input"))
    assert native["target"].shape == (48, 76, 1) and native["input"].shape == (48, 76, 3)
    np.testing.assert_array_equal(native["target"][..., 0], hr["head"][:48, :76])


def test_a_manifest_s_clamp_edge_rule_makes_the_older_matlab_lr(tmp_path):
    """[super_resolution] edge = "clamp": the LR images bench makes follow older MATLAB
    releases, which clamp border indices; they differ from today's mirrored ones near the
    border only."""
    from skimage import data as photos

    from bench.data.prepare import prepare

    text = (get_dataset("set5").manifest.read_text()).replace(
        'edge = "symmetric"', 'edge = "clamp"'
    )
    manifest = tmp_path / "set5.toml"
    manifest.write_text(text)
    spec = parse_manifest(manifest)
    assert spec.super_resolution.edge == "clamp"
    root = tmp_path / "set5"
    (root / "HR").mkdir(parents=True)
    hr = photos.astronaut()[:64, :80]
    Image.fromarray(hr).save(root / "HR" / "baby.png")
    prepare(spec, root)
    lr = read(root / "LR_bicubic" / "X4" / "babyx4.png").astype(int)
    np.testing.assert_array_equal(lr, matlab(hr, (16, 20), edge="clamp"))
    mirrored = matlab(hr, (16, 20)).astype(int)
    assert np.abs(lr - mirrored)[2:-2, 2:-2].max() == 0 and np.abs(lr - mirrored).max() > 0
