"""The offline suites: deterministic bytes, the degradations they claim, and ensure_dataset."""

import json

import numpy as np
import pytest
from PIL import Image

from bench.data import ensure_dataset, fingerprint, get_dataset
from bench.data.synth import TEST_PHOTOS, TRAIN_PHOTOS, generate, trajectory_kernel
from bench.data.verify import LOCK_NAME
from bench.errors import BenchError, UsageError

SMALL = {"train_count": 6, "test_count": 4, "patch": 48}
PAIRED = ["synth-shadow", "synth-lowlight", "synth-rain", "synth-blur"]


def tree(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def load(path):
    return np.asarray(Image.open(path), dtype=np.float64) / 255


@pytest.mark.parametrize("name", [*PAIRED, "synth-faces"])
def test_same_seed_gives_byte_identical_folders(tmp_path, name):
    overrides = {"train_count": 6, "test_count": 4} if name == "synth-faces" else SMALL
    first = tree(generate(get_dataset(name), tmp_path / "a", 3, overrides))
    second = tree(generate(get_dataset(name), tmp_path / "b", 3, overrides))
    assert first == second and len(first) > 10
    other = tree(generate(get_dataset(name), tmp_path / "c", 4, overrides))
    assert other[LOCK_NAME] != first[LOCK_NAME]


def test_train_and_test_come_from_disjoint_photos(small_shadow):
    info = json.loads((small_shadow / "synth.json").read_text())
    assert set(info["photos"]["train"]).isdisjoint(info["photos"]["test"])
    assert set(TRAIN_PHOTOS).isdisjoint(TEST_PHOTOS)
    names = sorted(p.stem for p in (small_shadow / "test" / "test_C").glob("*.png"))
    assert all(name.rsplit("_", 1)[0] in TEST_PHOTOS for name in names)


def test_shadow_darkens_inside_the_mask_only(small_shadow):
    for shadow_path in sorted((small_shadow / "train" / "train_A").glob("*.png")):
        shadowed = load(shadow_path)
        free = load(small_shadow / "train" / "train_C" / shadow_path.name)
        mask = load(small_shadow / "train" / "train_B" / shadow_path.name) > 0.5
        assert set(np.unique(load(small_shadow / "train" / "train_B" / shadow_path.name))) <= {
            0.0,
            1.0,
        }
        assert 0.05 < mask.mean() < 0.6
        assert np.all(shadowed <= free + 1 / 255)  # a shadow never adds light
        # far from the mask edge (beyond the penumbra) the image is untouched
        from scipy import ndimage

        far = ~ndimage.binary_dilation(mask, iterations=12)
        assert np.abs(shadowed - free)[far].max() <= 1 / 255
        inside = ndimage.binary_erosion(mask, iterations=6)
        if inside.any():
            ratio = shadowed[inside].sum(axis=0) / np.maximum(free[inside].sum(axis=0), 1e-6)
            assert np.all(ratio < 0.75) and ratio[0] < ratio[2]  # darker, and bluish cast


def pairs(root, split, input_folder, target_folder, in_pat="{}", tgt_pat="{}"):
    for target in sorted((root / split / target_folder).glob("*.png")):
        stem = target.stem if tgt_pat == "{}" else target.stem.removesuffix("_clean")
        yield load(root / split / input_folder / f"{in_pat.format(stem)}.png"), load(target)


def test_lowlight_is_darker_and_noisier(tmp_path):
    root = generate(get_dataset("synth-lowlight"), tmp_path / "l", 0, SMALL)
    for low, high in pairs(root, "train", "low", "high"):
        assert low.mean() < 0.35 * high.mean()


def test_rain_brightens_and_blur_removes_detail(tmp_path):
    rain = generate(get_dataset("synth-rain"), tmp_path / "r", 0, SMALL)
    for wet, clean in pairs(rain, "train", "data", "gt", "{}_rain", "{}_clean"):
        assert wet.mean() > clean.mean()
    blurred_root = generate(get_dataset("synth-blur"), tmp_path / "b", 0, SMALL)
    for blurred, sharp in pairs(blurred_root, "test", "input", "target"):
        energy = [np.abs(np.diff(x, axis=a)).mean() for x in (blurred, sharp) for a in (0, 1)]
        assert energy[0] + energy[1] < 0.9 * (energy[2] + energy[3])


def test_trajectory_kernel_is_a_normalised_psf():
    kernel = trajectory_kernel(9.0, np.random.default_rng(1), 13)
    assert kernel.min() >= 0 and abs(kernel.sum() - 1) < 1e-5
    rows, cols = np.nonzero(kernel)
    assert max(np.ptp(rows), np.ptp(cols)) >= 8  # spans the requested extent


def test_faces_are_rgb_copies_of_gray_lfw_faces(tmp_path):
    root = generate(get_dataset("synth-faces"), tmp_path / "f", 0)
    train = sorted((root / "train").glob("*.png"))
    test = sorted((root / "test").glob("*.png"))
    assert (len(train), len(test)) == (80, 20)
    assert {p.name for p in train}.isdisjoint(p.name for p in test)
    from skimage import data

    index = int(train[0].stem.split("_")[1])
    image = np.asarray(Image.open(train[0]))
    assert image.shape == (25, 25, 3) and index < 100
    assert np.array_equal(image[..., 0], image[..., 2])
    assert np.abs(image[..., 0] / 255 - data.lfw_subset()[index]).max() <= 0.5 / 255 + 1e-9


def test_bad_parameters_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="train_count must be at least 1"):
        generate(get_dataset("synth-blur"), tmp_path / "x", 0, {"train_count": 0})
    with pytest.raises(UsageError, match="not a synthetic suite"):
        generate(get_dataset("istd"), tmp_path / "y", 0)
    assert not any(tmp_path.iterdir())


def test_ensure_dataset_generates_reuses_and_regenerates(tmp_path, monkeypatch):
    import bench.data.synth as synth

    spec = get_dataset("synth-blur")
    monkeypatch.setitem(spec.synth, "train_count", 3)  # keep the test fast
    monkeypatch.setitem(spec.synth, "test_count", 2)
    root = ensure_dataset("synth-blur", tmp_path, seed=0)
    assert root == tmp_path / "synth-blur"
    first = fingerprint("synth-blur", root)
    assert first is not None
    calls = []
    real_generate = synth.generate
    monkeypatch.setattr(synth, "generate", lambda *a, **k: calls.append(a))
    ensure_dataset("synth-blur", tmp_path, seed=1)
    assert calls == []  # a suite bench wrote is used as it is, whatever its seed
    monkeypatch.setattr(synth, "generate", real_generate)
    monkeypatch.setattr(synth, "GENERATOR_VERSION", synth.GENERATOR_VERSION + 1)
    ensure_dataset("synth-blur", tmp_path, seed=1)  # a newer generator: same seed and counts
    info = json.loads((root / "synth.json").read_text())
    assert info["seed"] == 0 and info["generator"] == synth.GENERATOR_VERSION
    assert info["counts"] == {"train": 3, "test": 2}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_folders_bench_did_not_write_are_never_replaced(tmp_path, monkeypatch):
    """Cases: a user's file in --out, a user's images where a suite would go, and a
    suite with a file added: each is an error naming the folder, and nothing is deleted."""
    spec = get_dataset("synth-blur")
    monkeypatch.setitem(spec.synth, "train_count", 3)
    monkeypatch.setitem(spec.synth, "test_count", 2)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("four years")
    with pytest.raises(UsageError, match=r"refusing to replace .*mine.*thesis.txt"):
        generate(spec, out)
    assert (out / "thesis.txt").read_text() == "four years"
    images = tmp_path / "data" / "synth-blur" / "test" / "input"
    images.mkdir(parents=True)
    (images / "001.png").write_bytes(b"user image")
    with pytest.raises(
        BenchError, match=r"synth-blur exists but is not a .synth-blur. suite bench generated"
    ):
        ensure_dataset("synth-blur", tmp_path / "data")
    assert (images / "001.png").read_bytes() == b"user image"
    suite = generate(spec, tmp_path / "suite")
    (suite / "notes.md").write_text("mine")
    with pytest.raises(UsageError, match="notes.md"):
        generate(spec, suite)
    assert (suite / "notes.md").is_file()
    (suite / "notes.md").unlink()
    generate(spec, suite, seed=2)  # only bench's files left: replaced
    assert json.loads((suite / "synth.json").read_text())["seed"] == 2


def test_ensure_dataset_real_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(BenchError, match=r"'istd' not found at .*bench data fetch istd"):
        ensure_dataset("istd", tmp_path)
    with pytest.raises(BenchError, match=r"run `bench data fetch cifar10`"):
        ensure_dataset("cifar10", tmp_path)
    (tmp_path / "istd").mkdir()
    assert ensure_dataset("istd", tmp_path) == tmp_path / "istd"


def test_a_changed_suite_is_kept_and_refused_by_the_lock_check(tmp_path, monkeypatch):
    """A suite whose file the user changed is neither regenerated nor deleted (not even for
    a newer generator); the run's lock check names the file and the --relock way out."""
    import bench.data.synth as synth
    from bench.data.verify import DataChanged, check_lock

    spec = get_dataset("synth-blur")
    monkeypatch.setitem(spec.synth, "train_count", 3)
    monkeypatch.setitem(spec.synth, "test_count", 2)
    root = ensure_dataset("synth-blur", tmp_path)
    edited = sorted((root / "test").rglob("*.png"))[0]
    edited.write_bytes(edited.read_bytes() + b"edited")
    monkeypatch.setattr(synth, "GENERATOR_VERSION", synth.GENERATOR_VERSION + 1)
    assert ensure_dataset("synth-blur", tmp_path) == root
    assert edited.read_bytes().endswith(b"edited")
    with pytest.raises(DataChanged, match=rf"{edited.name}: changed since the lock.*--relock"):
        check_lock(spec, root)
