"""Conversions from the layouts datasets are distributed in to the canonical layout.

Each conversion builds its output in a temporary folder inside the dataset root and renames
the finished folders into place, so an interrupted or failed prepare leaves nothing behind.
Images are hard-linked where the file system allows it (no second copy on disk).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench import console
from bench.data.fetch import file_digest
from bench.data.spec import DatasetSpec
from bench.data.verify import list_images
from bench.errors import BenchError
from bench.files import write_image


def _link(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:  # another file system, or links not supported
        shutil.copy2(source, destination)


@contextmanager
def _staged(root: Path, outputs: tuple[str, ...]) -> Iterator[Path]:
    """Yield a staging folder; on success move its ``outputs`` into ``root``."""
    clashes = [root / name for name in outputs if (root / name).exists()]
    if clashes:
        raise BenchError(
            f"{clashes[0]}: already exists (already prepared?); remove it to prepare again"
        )
    staging = Path(tempfile.mkdtemp(prefix=".prepare.", suffix=".partial", dir=root))
    try:
        yield staging
        for name in outputs:
            (staging / name).rename(root / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise BenchError(f"{path}: missing ({what})")
    return path


def unwrap(root: Path, folder: str) -> None:
    """Lift the contents of ``root/folder`` (an archive's top folder) into ``root``."""
    inner = _need(root / folder, f"expected the extracted {folder} folder here")
    entries = sorted(inner.iterdir())
    clashes = [root / entry.name for entry in entries if (root / entry.name).exists()]
    if clashes:
        raise BenchError(f"{clashes[0]}: already exists; cannot lift {inner} into {root}")
    for entry in entries:
        entry.rename(root / entry.name)
    inner.rmdir()


def gopro_sequences(root: Path, checksums: Mapping[str, str]) -> None:
    """GOPRO_Large/{train,test}/<sequence>/{blur,sharp}/<frame>.png ->
    {train,test}/{input,target}/<sequence>-<frame>.png: the names MPRNet's copy of GoPro
    uses (test/input/GOPR0384_11_00-000001.png), so both layouts give one fingerprint's
    names and released results pair with either."""
    source = _need(root / "GOPRO_Large", "place the original GOPRO_Large folder here")
    with _staged(root, ("train", "test")) as staging:
        for split in ("train", "test"):
            sequences = sorted(
                p for p in _need(source / split, "split folder").iterdir() if p.is_dir()
            )
            if not sequences:
                raise BenchError(f"{source / split}: no sequence folders")
            for sequence in sequences:
                for role, kind in (("input", "blur"), ("target", "sharp")):
                    for frame in list_images(_need(sequence / kind, f"{kind} frames")):
                        _link(frame, staging / split / role / f"{sequence.name}-{frame.name}")


def celeba_partition(root: Path, checksums: Mapping[str, str]) -> None:
    """Split img_align_celeba/ by list_eval_partition.txt (0 train, 1 valid, 2 test), or by
    the Kaggle copy's list_eval_partition.csv (``image_id,partition``) when the official
    list is absent."""
    images = _need(root / "img_align_celeba", "the aligned CelebA images")
    listing, entries = _partition_entries(root, checksums)
    folders = {"0": "train", "1": "valid", "2": "test"}
    with _staged(root, tuple(folders.values())) as staging:
        for folder in folders.values():
            (staging / folder).mkdir()
        for number, fields in entries:
            if len(fields) != 2 or fields[1] not in folders:
                raise BenchError(
                    f"{listing}:{number}: expected an image name and 0, 1 or 2, got {fields}"
                )
            _link(
                _need(images / fields[0], f"listed in {listing.name}"),
                staging / folders[fields[1]] / fields[0],
            )


def _partition_entries(
    root: Path, checksums: Mapping[str, str]
) -> tuple[Path, list[tuple[int, list[str]]]]:
    """The partition list's (line number, fields): the official .txt (its MD5 checked by
    prepare), else Kaggle's .csv, which has no published checksum of its own: it is checked
    by writing it as the official list and comparing that list's MD5, with either line
    ending; a mismatch is said, and the split counts are still checked by verify."""
    official = root / "list_eval_partition.txt"
    if official.exists():
        lines = official.read_text().splitlines()
        return official, [(n, line.split()) for n, line in enumerate(lines, 1) if line.strip()]
    kaggle = _need(root / "list_eval_partition.csv", "the partition list (.txt, or Kaggle's .csv)")
    rows = kaggle.read_text().splitlines()
    if not rows or rows[0].strip().lower() != "image_id,partition":
        raise BenchError(f"{kaggle}:1: expected the header 'image_id,partition'")
    entries = [(n, row.strip().split(",")) for n, row in enumerate(rows[1:], 2) if row.strip()]
    expected = checksums.get(official.name)
    if expected is not None:
        as_official = [" ".join(fields) for _, fields in entries]
        digests = {
            hashlib.md5((ending.join(as_official) + ending).encode()).hexdigest()
            for ending in ("\n", "\r\n")
        }
        if expected in digests:
            console.info(
                f"{kaggle.name}: the official partition list, written as CSV (MD5 matches)"
            )
        else:
            console.warn(
                f"{kaggle.name}: written as the official list it does not give that list's MD5 "
                f"({expected}); splitting by it, and verify checks the split counts"
            )
    return kaggle, entries


def cifar10_batches(root: Path, checksums: Mapping[str, str]) -> None:
    """The python pickles (data_batch_1..5, test_batch) -> train/00000.png ..., test/00000.png ...

    A pickle can run code when read, so a batch is read only when ``checksums`` lists it
    (``prepare`` has checked every listed file's MD5 before calling this)."""
    batches = _need(root / "cifar-10-batches-py", "extract cifar-10-python.tar.gz here")
    with _staged(root, ("train", "test")) as staging:
        for split, names in (
            ("train", [f"data_batch_{i}" for i in range(1, 6)]),
            ("test", ["test_batch"]),
        ):
            index = 0
            for name in names:
                path = _need(batches / name, "a CIFAR-10 batch")
                if path.relative_to(root).as_posix() not in checksums:
                    raise BenchError(
                        f"{path}: the manifest lists no MD5 for it under [prepare.md5]; bench "
                        "unpickles only files whose checksum it has checked"
                    )
                with path.open("rb") as handle:
                    batch = pickle.load(handle, encoding="bytes")
                images = (
                    np.asarray(batch[b"data"], np.uint8)
                    .reshape(-1, 3, 32, 32)
                    .transpose(0, 2, 3, 1)
                )
                for image in images:
                    write_image(staging / split / f"{index:05d}.png", np.ascontiguousarray(image))
                    index += 1


def _check_checksums(root: Path, checksums: Mapping[str, str]) -> None:
    """Every file the manifest lists under [prepare.md5] that is present has its MD5, before
    any is read (a conversion needs its own files, and reads only files listed here)."""
    for name, expected in checksums.items():
        path = root / name
        if not path.exists():
            continue
        actual = file_digest(path, "md5")
        if actual != expected:
            raise BenchError(
                f"{path}: MD5 {actual}, the manifest's is {expected}; the file is damaged or not "
                "the published one and is not read; fetch it again (`bench data fetch`)"
            )


#: the conversion of super-resolution sets that ship HR images only
LR_IMAGES = "sr-lr"


def make_lr_images(spec: DatasetSpec, root: Path) -> int:
    """Write each split's LR images from its HR images, as the SR literature makes them:
    the HR image modcropped, resized by 1/scale with the dataset's bicubic (MATLAB's
    ``imresize`` by default), saved as PNG under the LR folder's name for it. LR files already
    there are kept (a set's own LR images are never replaced); greyscale images stay grey.
    Returns how many were written."""
    from bench.data.loaders import bicubic, modcrop
    from bench.files import read_image

    setting = spec.super_resolution
    if setting is None:
        raise BenchError(f"{spec.name}: conversion {LR_IMAGES} needs a [super_resolution] table")
    made = 0
    for split in spec.split_layouts.values():
        hr_role, lr_role = split.roles["target"], split.roles["input"]
        for hr_file in list_images(_need(root / hr_role.folder, "the HR images")):
            lr_file = root / lr_role.folder / f"{lr_role.stem_for(hr_file.stem)}.png"
            if lr_file.exists():
                continue
            hr = modcrop(read_image(hr_file, "any"), setting.scale)
            channels = hr if hr.ndim == 3 else hr[..., None]
            size = (hr.shape[0] // setting.scale, hr.shape[1] // setting.scale)
            lr = bicubic(np.ascontiguousarray(channels), size, setting)
            write_image(lr_file, lr if hr.ndim == 3 else lr[..., 0])
            made += 1
    return made


#: conversion name -> function(dataset folder, the manifest's [prepare.md5])
CONVERSIONS: dict[str, Callable[[Path, Mapping[str, str]], None]] = {
    "gopro-sequences": gopro_sequences,
    "celeba-partition": celeba_partition,
    "cifar10-batches": cifar10_batches,
}


def unpack_manual_files(spec: DatasetSpec, root: Path) -> list[str]:
    """Check each hand-downloaded file placed in ``root`` against its published checksum,
    and unpack the archives among them that are not unpacked yet; what was done, per file."""
    from bench.data.fetch import archive_top_entries, extract

    done = []
    for item in spec.manual_files:
        path = root / item.file
        if not path.is_file():
            continue
        for algorithm, expected in (("sha256", item.sha256), ("md5", item.md5)):
            if expected and (actual := file_digest(path, algorithm)) != expected.lower():
                raise BenchError(
                    f"{path}: {algorithm.upper()} {actual}, the published one is {expected} "
                    f"({item.checksum_source or 'the manifest'}); the file is damaged or not the "
                    "published one and is not read; download it again"
                )
        checked = "checksum matches" if item.md5 or item.sha256 else "no published checksum"
        if item.extract:
            if all((root / entry).exists() for entry in archive_top_entries(path)):
                done.append(f"{item.file}: {checked}; already unpacked")
                continue
            extract(path, root)
            done.append(f"{item.file}: {checked}; unpacked")
        else:
            done.append(f"{item.file}: {checked}")
    return done


def prepare(spec: DatasetSpec, root: Path) -> str:
    """Check and unpack the hand downloads, then run the manifest's conversion on ``root``;
    returns what was done."""
    if not root.is_dir():
        raise BenchError(f"{root}: dataset folder missing (see `bench data fetch {spec.name}`)")
    for line in unpack_manual_files(spec, root):
        console.info(line)
    if spec.prepare is None:
        return f"{spec.name}: no conversion needed; the files are read as they are laid out"
    if spec.prepare.startswith("unwrap:"):
        unwrap(root, spec.prepare.partition(":")[2])
    elif spec.prepare == LR_IMAGES:
        made = make_lr_images(spec, root)
        return f"{spec.name}: {made} LR image(s) made from the HR images ({spec.super_resolution})"
    else:
        _check_checksums(root, spec.prepare_md5)
        CONVERSIONS[spec.prepare](root, spec.prepare_md5)
    return f"{spec.name}: converted to the canonical layout ({spec.prepare})"
