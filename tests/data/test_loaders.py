"""Loaders: item format, each preprocessing option checked against an independent computation."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from data_fixtures import random_rgb, write_png
from PIL import Image

from bench.data import get_dataset, open_split
from bench.data.loaders import equalize_histogram
from bench.data.loaders import open_split as open_spec_split
from bench.errors import UsageError


def pil_bicubic(path, size, mode="RGB"):
    return np.asarray(Image.open(path).convert(mode).resize((size, size), Image.Resampling.BICUBIC))


def to_unit(tensor):
    return ((tensor + 1) / 2 * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)


def test_triplet_items_have_the_documented_format(small_shadow):
    ds = open_split("synth-shadow", small_shadow, "train", image_size=32, train=True)
    assert len(ds) == 4
    item = ds[0]
    assert set(item) == {"input", "target", "mask", "name"}
    for key in ("input", "target"):
        assert item[key].shape == (3, 32, 32) and item[key].dtype == torch.float32
        assert item[key].min() >= -1 and item[key].max() <= 1
    assert item["mask"].shape == (1, 32, 32)
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert item["name"] == "0000"
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["input"].shape == (4, 3, 32, 32) and len(batch["name"]) == 4


def test_test_split_resize_equals_pil_bicubic(small_shadow):
    """Test images (96x128) are padded to at least 64 and a multiple of 8 (a no-op here)
    and resize to 64 with PIL bicubic, then map to [-1, 1]."""
    ds = open_split("synth-shadow", small_shadow, "test", image_size=64, train=False)
    item = ds[0]
    source = small_shadow / "test" / "test_A" / f"{item['name']}.png"
    expected = pil_bicubic(source, 64).astype(np.float32) / 127.5 - 1
    assert torch.allclose(item["input"], torch.from_numpy(expected).permute(2, 0, 1), atol=1e-6)
    mask = pil_bicubic(small_shadow / "test" / "test_B" / f"{item['name']}.png", 64, "L") >= 128
    assert torch.equal(item["mask"][0], torch.from_numpy(mask.astype(np.float32)))


def test_decoded_images_are_kept_within_the_budget_and_items_do_not_change(
    small_shadow, monkeypatch
):
    from bench.data import loaders

    decoded = []
    real_read = loaders.read_image
    monkeypatch.setattr(loaders, "read_image", lambda *a: decoded.append(a[0]) or real_read(*a))
    loaders.IMAGE_CACHE.clear()
    ds = open_split("synth-shadow", small_shadow, "train", image_size=32, train=False)
    first, again = ds[1], ds[1]
    assert len(decoded) == 3  # input, target and mask, each decoded once
    reopened = open_split("synth-shadow", small_shadow, "train", image_size=32, train=False)
    assert torch.equal(reopened[1]["input"], first["input"]) and len(decoded) == 3
    assert all(torch.equal(first[k], again[k]) for k in ("input", "target", "mask"))
    flipped = open_split("synth-shadow", small_shadow, "train", image_size=32, flip="always")
    for _ in range(2):  # a flip that wrote into the cached array would undo itself here
        assert torch.equal(flipped[1]["input"], first["input"].flip(-1))

    monkeypatch.setattr(loaders, "CACHE_BYTES", 0)
    loaders.IMAGE_CACHE.clear()
    decoded.clear()
    uncached = open_split("synth-shadow", small_shadow, "train", image_size=32, train=False)
    uncached[1], uncached[1]
    assert len(decoded) == 6  # over budget: decoded every time


def test_a_file_rewritten_on_disk_is_read_again(small_shadow, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(small_shadow, root)
    before = open_split("synth-shadow", root, "train", image_size=32, train=False)[0]
    path = root / "train" / "train_A" / f"{before['name']}.png"
    image = np.asarray(Image.open(path).convert("RGB"))
    Image.fromarray(255 - image).save(path)
    after = open_split("synth-shadow", root, "train", image_size=32, train=False)[0]
    assert not torch.equal(after["input"], before["input"])
    assert torch.equal(after["target"], before["target"])


def test_kept_random_flip_items_equal_uncached_ones_and_draw_the_same_stream(
    small_shadow, monkeypatch
):
    from bench.data import loaders

    def epochs(budget: int) -> tuple[list[dict], torch.Tensor]:
        monkeypatch.setattr(loaders, "CACHE_BYTES", budget)
        loaders.IMAGE_CACHE.clear()
        ds = open_split("synth-shadow", small_shadow, "train", image_size=24, flip="random")
        torch.manual_seed(3)
        items = [ds[i] for _ in range(4) for i in range(len(ds))]  # both flips come round
        return items, torch.rand(4)

    kept, kept_next = epochs(512 * 2**20)
    fresh, fresh_next = epochs(0)
    assert torch.equal(kept_next, fresh_next)
    for a, b in zip(kept, fresh, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in ("input", "target", "mask"))
    plain = open_split("synth-shadow", small_shadow, "train", image_size=24, flip="none")[0]
    first = [item["input"] for item in kept if item["name"] == plain["name"]]
    flips = {torch.equal(x, plain["input"].flip(-1)) for x in first}
    assert all(
        torch.equal(x, plain["input"]) or torch.equal(x, plain["input"].flip(-1)) for x in first
    )
    assert flips == {True, False}, "seed 3 must draw both flips of item 0 for this test to bite"


def test_always_flip_mirrors_every_role(small_shadow):
    plain = open_split("synth-shadow", small_shadow, "train", image_size=48, flip="none")[1]
    mirrored = open_split("synth-shadow", small_shadow, "train", image_size=48, flip="always")[1]
    for key in ("input", "target", "mask"):
        assert torch.equal(mirrored[key], plain[key].flip(-1))


def test_random_flip_is_shared_by_the_roles_of_a_pair(small_shadow):
    ds = open_split("synth-shadow", small_shadow, "train", image_size=48, train=True)
    plain = open_split("synth-shadow", small_shadow, "train", image_size=48, train=False)[2]
    torch.manual_seed(0)
    outcomes = set()
    for _ in range(12):
        item = ds[2]
        flipped = torch.equal(item["target"], plain["target"].flip(-1))
        assert flipped or torch.equal(item["target"], plain["target"])
        reference = {k: (v.flip(-1) if flipped else v) for k, v in plain.items() if k != "name"}
        assert all(torch.equal(item[k], reference[k]) for k in ("input", "mask"))
        outcomes.add(flipped)
    assert outcomes == {True, False}


def test_padding_is_zero_at_bottom_right_to_a_multiple_of_8(tmp_path):
    spec = get_dataset("synth-lowlight")
    image = random_rgb(30, 45, seed=1)
    for role in ("low", "high"):
        write_png(tmp_path / "test" / role / "a.png", image)
    spec = replace(spec, split_layouts={"test": replace(spec.split("test"), count=None)})
    item = open_spec_split(
        spec, tmp_path, "test", image_size=None, train=False, equalize_input=False, pad_multiple=8
    )[0]
    assert item["target"].shape == (3, 32, 48)
    unit = to_unit(item["target"])
    assert np.array_equal(unit[:30, :45], image)
    assert (unit[30:] == 0).all() and (unit[:, 45:] == 0).all()
    # with an output size, padding reaches at least that size before the resize (RDDM step 2)
    item = open_spec_split(
        spec, tmp_path, "test", image_size=64, train=False, equalize_input=False, pad_to_size=True
    )[0]
    padded = np.zeros((64, 64, 3), np.uint8)
    padded[:30, :45] = image
    assert np.array_equal(to_unit(item["target"]), padded)


def reference_equalize(channel):
    """OpenCV's equalizeHist written out bin by bin (modules/imgproc/src/histogram.cpp)."""
    hist = [0] * 256
    for value, count in zip(*np.unique(channel, return_counts=True), strict=True):
        hist[int(value)] = int(count)
    first = next(i for i, h in enumerate(hist) if h)
    if hist[first] == channel.size:
        return channel.copy()
    scale = np.float32(255.0) / np.float32(channel.size - hist[first])
    lut = [0] * 256
    running = 0
    for level in range(first + 1, 256):
        running += hist[level]
        lut[level] = int(min(255, max(0, np.rint(np.float32(running) * scale))))
    return np.array(lut, np.uint8)[channel]


def test_equalize_histogram_known_answer_and_reference():
    # 4 pixels {10, 10, 20, 30}: scale 255/2; 20 -> rint(127.5) = 128, 30 -> 255, 10 -> 0
    tiny = np.array([[10, 10], [20, 30]], np.uint8)
    assert equalize_histogram(tiny).tolist() == [[0, 0], [128, 255]]
    assert equalize_histogram(np.full((3, 3), 77, np.uint8)).tolist() == [[77] * 3] * 3
    rng = np.random.default_rng(0)
    for _ in range(5):
        channel = np.clip(rng.gamma(2.0, 12.0, (37, 53)), 0, 255).astype(np.uint8)
        assert np.array_equal(equalize_histogram(channel), reference_equalize(channel))


def test_lowlight_equalizes_the_input_only(tmp_path):
    from bench.data.synth import generate

    root = generate(
        get_dataset("synth-lowlight"), tmp_path / "l", 0, {"train_count": 2, "test_count": 2}
    )
    item = open_split(
        "synth-lowlight", root, "test", image_size=None, train=False, pad=False, equalize_input=True
    )[0]
    low = np.asarray(Image.open(root / "test" / "low" / f"{item['name']}.png"))
    expected = np.stack([reference_equalize(low[..., c]) for c in range(3)], -1)
    assert np.array_equal(to_unit(item["input"]), expected)
    high = np.asarray(Image.open(root / "test" / "high" / f"{item['name']}.png"))
    assert np.array_equal(to_unit(item["target"]), high)
    off = open_split("synth-lowlight", root, "test", image_size=None, train=False, pad=False)
    assert np.array_equal(to_unit(off[0]["input"]), low)  # the dataset's own: not equalised


def unpaired_spec(name, splits):
    spec = get_dataset(name)
    return replace(spec, split_layouts={s: replace(spec.split(s), count=None) for s in splits})


def test_generation_images_are_resized_not_padded(tmp_path):
    from bench.data.synth import generate

    root = generate(
        get_dataset("synth-faces"), tmp_path / "f", 0, {"train_count": 2, "test_count": 1}
    )
    item = open_split("synth-faces", root, "test", image_size=64, train=False)[0]
    expected = pil_bicubic(root / "test" / f"{item['name']}.png", 64)
    assert np.array_equal(to_unit(item["target"]), expected)


def test_synthetic_crops_are_not_padded_to_the_output_size(small_shadow):
    item = open_split("synth-shadow", small_shadow, "train", image_size=64, flip="none")[0]
    expected = pil_bicubic(small_shadow / "train" / "train_C" / "0000.png", 64)
    assert np.array_equal(to_unit(item["target"]), expected)  # 48 px crops, resized, no canvas


def test_celeba_fixed_crop_then_resize(tmp_path):
    image = random_rgb(218, 178, seed=2)
    write_png(tmp_path / "test" / "000001.png", image)
    item = open_spec_split(
        unpaired_spec("celeba", ["test"]), tmp_path, "test", image_size=64, train=False
    )[0]
    assert set(item) == {"target", "name"} and item["name"] == "000001"
    crop = image[121 - 64 : 121 + 64, 89 - 64 : 89 + 64]
    expected = np.asarray(Image.fromarray(crop).resize((64, 64), Image.Resampling.BICUBIC))
    assert np.array_equal(to_unit(item["target"]), expected)


def test_inpainting_centre_box(tmp_path):
    write_png(tmp_path / "val" / "female" / "7.png", random_rgb(40, 40, seed=3))
    item = open_spec_split(
        unpaired_spec("celebahq", ["val"]), tmp_path, "val", image_size=32, train=False
    )[0]
    box = torch.zeros(1, 32, 32)
    box[:, 8:24, 8:24] = 1
    assert torch.equal(item["mask"], box)
    assert torch.equal(item["input"][:, 8:24, 8:24], torch.zeros(3, 16, 16))  # 0.5 in [0, 1]
    assert torch.equal(item["input"] * (1 - box), item["target"] * (1 - box))


def test_translation_runs_dog_to_cat_over_every_input(tmp_path):
    """RDDM's experiment 5: folder = [cat.flist, dog.flist, dog_test.flist], read as ground
    truth = cat and input = dog; the dataset is as long as its input list."""
    write_png(tmp_path / "val" / "cat" / "c1.png", np.zeros((16, 16, 3), np.uint8))
    write_png(tmp_path / "val" / "dog" / "d1.png", np.full((16, 16, 3), 255, np.uint8))
    write_png(tmp_path / "val" / "dog" / "d2.png", np.full((16, 16, 3), 255, np.uint8))
    ds = open_spec_split(
        unpaired_spec("afhq", ["val"]), tmp_path, "val", image_size=16, train=False
    )
    assert len(ds) == 2  # every dog
    assert (ds[1]["input"] == 1).all() and (ds[1]["target"] == -1).all()  # dog in, cat out
    assert ds[1]["name"] == "d2"  # the output is named after its input


def test_random_crop_option(small_shadow):
    ds = open_split(
        "synth-shadow", small_shadow, "train", image_size=None, random_crop=24, flip="none"
    )
    item = ds[0]
    assert item["input"].shape == (3, 24, 24) and item["mask"].shape == (1, 24, 24)


def test_unknown_or_bad_options_are_usage_errors(small_shadow):
    with pytest.raises(UsageError, match=r"unknown preprocessing option\(s\) \['blur'\]"):
        open_split("synth-shadow", small_shadow, "train", blur=True)
    with pytest.raises(UsageError, match="flip = 'sometimes'"):
        open_split("synth-shadow", small_shadow, "train", flip="sometimes")
    with pytest.raises(UsageError, match="no split 'val'"):
        open_split("synth-shadow", small_shadow, "val")
