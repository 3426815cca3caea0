"""verify and the structural checks: every bad input is one clear error naming the file."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from data_fixtures import random_rgb, write_png

from bench.data import fingerprint, get_dataset
from bench.data.verify import LOCK_NAME, DataError, pair_split, verify

SHADOW = get_dataset("synth-shadow")


def first_png(folder):
    return sorted(folder.glob("*.png"))[0]


def test_good_suite_verifies_and_lock_lists_every_file(shadow_copy):
    (shadow_copy / LOCK_NAME).unlink()
    report = verify(SHADOW, shadow_copy)
    assert report.counts == {"train": 4, "test": 2}
    lock = json.loads((shadow_copy / LOCK_NAME).read_text())
    files = sorted(p for p in shadow_copy.rglob("*") if p.is_file() and p.name != LOCK_NAME)
    assert len(files) == 3 * 6 + 1  # three roles x six triplets + synth.json
    assert lock["files"] == {
        p.relative_to(shadow_copy).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
    }
    expected = hashlib.sha256((shadow_copy / LOCK_NAME).read_bytes()).hexdigest()
    assert report.fingerprint == expected == fingerprint("synth-shadow", shadow_copy)


def test_verify_twice_keeps_the_fingerprint(shadow_copy):
    before = fingerprint("synth-shadow", shadow_copy)
    assert verify(SHADOW, shadow_copy).fingerprint == before


def test_unverified_folder_has_no_fingerprint(shadow_copy):
    (shadow_copy / LOCK_NAME).unlink()
    assert fingerprint("synth-shadow", shadow_copy) is None


def check_fails(root, match, spec=SHADOW):
    """verify fails with ``match`` and writes no lock file."""
    (root / LOCK_NAME).unlink(missing_ok=True)
    with pytest.raises(DataError, match=match) as failure:
        verify(spec, root)
    assert not (root / LOCK_NAME).exists()
    assert "\n" not in str(failure.value)
    return failure.value


def test_missing_folder(shadow_copy):
    shutil.rmtree(shadow_copy / "test" / "test_B")
    check_fails(shadow_copy, r"test/test_B: folder missing")


def test_missing_dataset_root(tmp_path):
    check_fails(tmp_path / "nowhere", r"nowhere: dataset folder missing .*bench data fetch")


def test_wrong_count(tmp_path):
    istd = get_dataset("istd")
    for split in ("train", "test"):
        for role in istd.split(split).roles.values():
            write_png(tmp_path / role.folder / "1.png", random_rgb(8, 8))
    check_fails(tmp_path, r"train/train_C: 1 images in split 'train', expected 1330", istd)


def test_image_without_its_partner(shadow_copy):
    gone = first_png(shadow_copy / "train" / "train_C")
    gone.unlink()
    error = check_fails(shadow_copy, rf"no partner '{gone.stem}\.\*' in .*train_C")
    assert str(shadow_copy / "train" / "train_") in str(error)


def test_truncated_image(shadow_copy):
    victim = first_png(shadow_copy / "test" / "test_A")
    victim.write_bytes(victim.read_bytes()[:200])
    check_fails(shadow_copy, rf"{victim}: unreadable or truncated image")


def test_corrupt_image(shadow_copy):
    victim = first_png(shadow_copy / "train" / "train_C")
    data = bytearray(victim.read_bytes())
    data[60:120] = bytes(60)  # zeroed IDAT bytes: the zlib stream is broken
    victim.write_bytes(bytes(data))
    check_fails(shadow_copy, rf"{victim}: unreadable or truncated image")


def test_pair_sizes_differ(shadow_copy):
    victim = first_png(shadow_copy / "train" / "train_A")
    write_png(victim, random_rgb(40, 48))
    check_fails(shadow_copy, r"pair sizes differ \(.*48x40")


def test_grayscale_where_rgb_expected(shadow_copy):
    victim = first_png(shadow_copy / "train" / "train_C")
    write_png(victim, np.zeros((48, 48), np.uint8))
    check_fails(shadow_copy, rf"{victim}: grayscale image \(L\) where RGB is expected")


def test_stray_file_is_not_skipped(shadow_copy):
    (shadow_copy / "test" / "test_C" / "notes.txt").write_text("x")
    check_fails(shadow_copy, r"notes.txt: not an image file")


def test_duplicate_stem(shadow_copy):
    original = first_png(shadow_copy / "test" / "test_C")
    shutil.copy(original, original.with_suffix(".jpg"))
    check_fails(shadow_copy, r"duplicate of")


def test_all_problems_are_collected(shadow_copy):
    for folder in ("train_A", "train_B"):
        first_png(shadow_copy / "train" / folder).unlink()
    error = check_fails(shadow_copy, r"\(and 1 more problems\)")
    assert len(error.problems) == 2


def test_raindrop_naming_rule(tmp_path):
    raindrop = get_dataset("raindrop")
    spec_dir = tmp_path
    write_png(spec_dir / "train" / "gt" / "3_clean.png", random_rgb(8, 8))
    write_png(spec_dir / "train" / "data" / "3_rain.png", random_rgb(8, 8))
    write_png(spec_dir / "train" / "data" / "4_foo.png", random_rgb(8, 8))
    with pytest.raises(
        DataError, match=r"4_foo.png: name does not follow the pattern '\{id\}_rain'"
    ):
        pair_split(raindrop, spec_dir, "train")
    (spec_dir / "train" / "data" / "4_foo.png").unlink()
    with pytest.raises(DataError, match=r"1 images in split 'train', expected 861"):
        pair_split(raindrop, spec_dir, "train")


def test_changed_file_is_reported_after_lock(shadow_copy):
    victim = first_png(shadow_copy / "train" / "train_C")
    write_png(victim, random_rgb(48, 48, seed=5))
    lock_before = (shadow_copy / LOCK_NAME).read_bytes()
    with pytest.raises(DataError, match=rf"{victim}: changed since the last verify"):
        verify(SHADOW, shadow_copy)
    assert (shadow_copy / LOCK_NAME).read_bytes() == lock_before
    extra = shadow_copy / "train" / "readme.md"
    extra.write_text("new")
    with pytest.raises(DataError) as failure:
        verify(SHADOW, shadow_copy)
    assert any("readme.md: added" in p for p in failure.value.problems)
    report = verify(SHADOW, shadow_copy, relock=True)
    assert report.fingerprint != hashlib.sha256(lock_before).hexdigest()
    assert verify(SHADOW, shadow_copy).fingerprint == report.fingerprint


def test_run_check_passes_untouched_data_and_names_changed_files(shadow_copy):
    """The check every `bench run` makes: a test image changed after verify is refused."""
    from bench.data.verify import STAT_CACHE, DataChanged, check_lock

    clean = fingerprint("synth-shadow", shadow_copy)
    assert check_lock(SHADOW, shadow_copy) == clean
    assert (shadow_copy / STAT_CACHE).is_file()  # the fast path for the next check
    assert check_lock(SHADOW, shadow_copy) == clean
    target = first_png(shadow_copy / "test" / "test_A")
    write_png(target, random_rgb(32, 32, seed=99))
    with pytest.raises(DataChanged, match=rf"{target.name}: changed since the lock.*--relock"):
        check_lock(SHADOW, shadow_copy)
    extra = shadow_copy / "test" / "test_C" / "zz-extra.png"
    shutil.copy(target, extra)
    with pytest.raises(DataChanged, match="zz-extra.png: added since the lock"):
        check_lock(SHADOW, shadow_copy)


def test_unverified_folder_is_verified_by_the_run_check(shadow_copy):
    from bench.data.verify import check_lock

    (shadow_copy / LOCK_NAME).unlink()
    assert check_lock(SHADOW, shadow_copy) == fingerprint("synth-shadow", shadow_copy)


def test_symlinked_split_folders_are_locked(shadow_copy, tmp_path):
    """Split folders that are symlinks are followed: the lock covers their files."""
    elsewhere = tmp_path / "elsewhere"
    shutil.move(shadow_copy / "test", elsewhere)
    (shadow_copy / "test").symlink_to(elsewhere, target_is_directory=True)
    (shadow_copy / LOCK_NAME).unlink()
    verify(SHADOW, shadow_copy)
    lock = json.loads((shadow_copy / LOCK_NAME).read_text())
    assert sum(name.startswith("test/") for name in lock["files"]) == 3 * 2


def test_hidden_files_are_ignored_by_verify_and_the_run_check(shadow_copy):
    from bench.data.verify import check_lock

    clean = fingerprint("synth-shadow", shadow_copy)
    (shadow_copy / "test" / "test_A" / ".DS_Store").write_bytes(b"\0\1")
    (shadow_copy / ".DS_Store").write_bytes(b"\0\1")
    assert verify(SHADOW, shadow_copy).fingerprint == clean
    assert check_lock(SHADOW, shadow_copy) == clean
