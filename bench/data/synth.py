"""Offline suites built from the photographs that ship inside scikit-image.

Each suite crops clean images from real photos and degrades them with a simple physical
model of its task (shadow, low light, rain, motion blur, bicubic downscaling). Training crops and test images come
from disjoint photos, so no test image shares content with the training set. Everything is
drawn from one seeded generator and written as PNG (no timestamps), so the same seed and
parameters give byte-identical folders.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from bench.data.spec import DatasetSpec, SuperResolution
from bench.errors import UsageError
from bench.files import write_image

#: bump when the generators change, so old folders are regenerated instead of reused
GENERATOR_VERSION = 1
TRAIN_PHOTOS = (
    "astronaut",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "motorcycle_left",
    "motorcycle_right",
)
TEST_PHOTOS = ("chelsea", "coffee")

Degrade = Callable[[np.ndarray, np.random.Generator], dict[str, np.ndarray]]


@cache
def photo(name: str) -> Image.Image:
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        return Image.fromarray(left if name.endswith("left") else right)
    return Image.fromarray(getattr(data, name)())


def _crop(image: Image.Image, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of the photo (30-90% of the largest window of this aspect ratio),
    resized to height x width with PIL bicubic, as float32 in [0, 1]."""
    full = min(image.width / width, image.height / height)
    scale = full * rng.uniform(0.3, 0.9)
    box_w, box_h = width * scale, height * scale
    left = rng.uniform(0, image.width - box_w)
    top = rng.uniform(0, image.height - box_h)
    window = image.resize(
        (width, height), Image.Resampling.BICUBIC, box=(left, top, left + box_w, top + box_h)
    )
    return np.asarray(window, dtype=np.float32) / 255.0


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def _smooth_field(height: int, width: int, cells: float, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise: a coarse Gaussian grid (about ``cells`` across) upsampled bicubically."""
    coarse = rng.standard_normal(
        (max(2, round(cells * height / width)), max(2, round(cells)))
    ).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


def shadow(clean: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Cast shadow: direct light blocked inside a blob, skylight left (ISTD-like triplet)."""
    height, width = clean.shape[:2]
    field = _smooth_field(height, width, rng.uniform(3, 6), rng)
    hard = field > np.quantile(field, 1 - rng.uniform(0.15, 0.45))
    # Penumbra: the mask edge blurred over a few pixels (an extended light source).
    soft = ndimage.gaussian_filter(hard.astype(np.float32), rng.uniform(1.0, 3.0) * height / 96)
    # Light kept in the umbra, per channel: skylight is bluish, so red is attenuated most.
    cast = np.array([0.8, 0.92, 1.1], dtype=np.float32) * rng.uniform(0.95, 1.05, 3)
    kept = np.clip(rng.uniform(0.3, 0.6) * cast, 0.05, 1.0).astype(np.float32)
    factor = 1.0 - soft[..., None] * (1.0 - kept)
    return {"input": clean * factor, "mask": hard}


def lowlight(clean: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Under-exposure: x_low = e * x^g, then Poisson-Gaussian noise with variance a*x_low + b."""
    dark = rng.uniform(0.06, 0.2) * clean ** rng.uniform(1.2, 1.8)
    variance = rng.uniform(0.002, 0.006) * dark + (rng.uniform(1.0, 3.0) / 255) ** 2
    noisy = dark + np.sqrt(variance) * rng.standard_normal(dark.shape).astype(np.float32)
    return {"input": noisy}


def _line_kernel(length: int, angle: float) -> np.ndarray:
    """A one-pixel-wide line of ``length`` at ``angle`` radians from vertical, antialiased."""
    size = length | 1
    half = (length - 1) / 2
    t = np.linspace(-half, half, 4 * length)
    kernel = np.zeros((size, size), np.float32)
    rows = size // 2 + t * np.cos(angle)
    cols = size // 2 + t * np.sin(angle)
    np.add.at(kernel, (np.round(rows).astype(int), np.round(cols).astype(int)), 1.0)
    return kernel / kernel.max()


def rain(clean: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Rain streaks (screen-blended) and adherent drops (defocused, slightly brighter discs)."""
    height, width = clean.shape[:2]
    seeds = (rng.random((height, width)) < rng.uniform(0.002, 0.006)).astype(np.float32)
    kernel = _line_kernel(max(3, int(rng.uniform(0.08, 0.2) * height)), rng.uniform(-0.4, 0.4))
    streaks = ndimage.gaussian_filter(ndimage.convolve(seeds, kernel, mode="wrap"), 0.5)
    alpha = np.clip(streaks, 0, 1)[..., None] * rng.uniform(0.35, 0.7)
    wet = clean + alpha * (1.0 - clean)
    # Drops: each a soft disc through which the scene appears defocused and brighter.
    count = int(rng.integers(6, 16))
    centres = rng.uniform([0, 0], [height, width], (count, 2)).astype(np.float32)
    radii = rng.uniform(0.03, 0.09, count).astype(np.float32) * height
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot(rows - centres[:, 0, None, None], cols - centres[:, 1, None, None])
    cover = np.clip(radii[:, None, None] - distance + 0.5, 0, 1).max(axis=0)[..., None]
    defocused = ndimage.gaussian_filter(wet, (3.0 * height / 96, 3.0 * height / 96, 0))
    through = np.clip(defocused * 1.08 + 0.04, 0, 1)
    return {"input": wet * (1 - cover) + through * cover}


def trajectory_kernel(extent: float, rng: np.random.Generator, size: int) -> np.ndarray:
    """Camera-shake PSF: a random walk with inertia (direction drifts smoothly), scaled to
    ``extent`` pixels and splatted bilinearly onto a size x size grid; sums to 1."""
    steps = 64
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.35, steps))
    path = np.cumsum(np.exp(1j * heading) * rng.uniform(0.5, 1.0, steps))
    path -= (path.real.min() + path.real.max()) / 2 + 1j * (path.imag.min() + path.imag.max()) / 2
    path *= extent / max(np.abs(path.real).max() * 2, np.abs(path.imag).max() * 2, 1e-6)
    x, y = path.real + size // 2, path.imag + size // 2
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    kernel = np.zeros((size, size), np.float64)
    for dy, dx, weight in (
        (0, 0, (1 - fx) * (1 - fy)),
        (0, 1, fx * (1 - fy)),
        (1, 0, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    return (kernel / kernel.sum()).astype(np.float32)


def blur(clean: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """GoPro-like blur: averaging frames along the trajectory, done in linear light (gamma 2.2)."""
    height = clean.shape[0]
    extent = rng.uniform(0.04, 0.12) * height
    kernel = trajectory_kernel(extent, rng, int(np.ceil(extent)) + 3)
    linear = clean**2.2
    blurred = ndimage.convolve(linear, kernel[..., None], mode="reflect")
    return {"input": np.clip(blurred, 0, 1) ** (1 / 2.2)}


def downscale(
    clean: np.ndarray, rng: np.random.Generator, *, setting: SuperResolution
) -> dict[str, np.ndarray]:
    """The LR image of super-resolution benchmarks: the uint8 HR, modcropped, resized by
    1/scale with the dataset's bicubic (MATLAB's antialiased ``imresize`` by default)."""
    from bench.data.loaders import bicubic, modcrop

    hr = modcrop(_uint8(clean), setting.scale)
    lr = bicubic(hr, (hr.shape[0] // setting.scale, hr.shape[1] // setting.scale), setting)
    return {"input": lr.astype(np.float32) / 255.0}  # _uint8 gives the same bytes back


SUITES: dict[str, Degrade] = {
    "synth-shadow": shadow,
    "synth-lowlight": lowlight,
    "synth-rain": rain,
    "synth-blur": blur,
    "synth-sr": downscale,
}


def _degrader(spec: DatasetSpec) -> Degrade:
    """The suite's degradation, set as its manifest sets it (a super-resolution scale)."""
    setting = spec.super_resolution
    if setting is None:
        return SUITES[spec.name]
    return partial(SUITES[spec.name], setting=setting)


def _write_pair(spec: DatasetSpec, out: Path, split: str, pair_id: str, images: dict) -> None:
    for role_name, role in spec.split(split).roles.items():
        array = images[role_name]
        array = (array.astype(np.uint8) * 255) if array.dtype == bool else _uint8(array)
        write_image(out / role.folder / f"{role.stem_for(pair_id)}.png", array)


def _paired_suite(spec: DatasetSpec, out: Path, rng: np.random.Generator, params: dict) -> None:
    degrade = _degrader(spec)
    patch = int(params["patch"])
    test_h, test_w = (int(v) for v in params["test_size"])
    train_photos = [photo(name) for name in TRAIN_PHOTOS]
    for index in range(int(params["train_count"])):
        source = train_photos[int(rng.integers(len(train_photos)))]
        clean = _crop(source, patch, patch, rng)
        if rng.random() < 0.5:
            clean = clean[:, ::-1].copy()
        _write_pair(
            spec, out, spec.train_split, f"{index:04d}", {"target": clean, **degrade(clean, rng)}
        )
    for index in range(int(params["test_count"])):
        name = TEST_PHOTOS[index % len(TEST_PHOTOS)]
        clean = _crop(photo(name), test_h, test_w, rng)
        _write_pair(
            spec,
            out,
            spec.test_split,
            f"{name}_{index:02d}",
            {"target": clean, **degrade(clean, rng)},
        )


def _faces_suite(spec: DatasetSpec, out: Path, rng: np.random.Generator, params: dict) -> None:
    from skimage import data

    faces = data.lfw_subset()[:100]  # the first 100 are faces, the rest non-faces
    train_count, test_count = int(params["train_count"]), int(params["test_count"])
    if train_count + test_count > len(faces):
        raise UsageError(f"synth-faces: train_count + test_count must be at most {len(faces)}")
    order = rng.permutation(len(faces))
    for split, indices in (
        (spec.train_split, order[:train_count]),
        (spec.test_split, order[train_count : train_count + test_count]),
    ):
        folder = out / spec.split(split).roles["target"].folder
        for index in indices:
            gray = _uint8(faces[index].astype(np.float32))
            write_image(folder / f"face_{index:03d}.png", np.repeat(gray[..., None], 3, axis=2))


def _check_params(name: str, params: dict[str, Any]) -> None:
    for key in ("train_count", "test_count"):
        if int(params[key]) < 1:
            raise UsageError(f"{name}: {key} must be at least 1, got {params[key]}")
    if "patch" in params and not 16 <= int(params["patch"]) <= 512:
        raise UsageError(f"{name}: patch must be between 16 and 512, got {params['patch']}")
    if "test_size" in params and not all(16 <= int(v) <= 512 for v in params["test_size"]):
        raise UsageError(f"{name}: test_size values must be between 16 and 512")


def _sample_of(folder: Path) -> str:
    entries = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    return ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")


def suite_info(spec: DatasetSpec, seed: int, overrides: dict[str, Any] | None = None) -> dict:
    """Everything that determines a suite's bytes; stored as synth.json beside the images."""
    params = {**spec.synth, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    unknown = set(params) - set(spec.synth)
    if unknown:
        raise UsageError(f"{spec.name}: unknown parameter(s) {sorted(unknown)}")
    _check_params(spec.name, params)
    counts = {
        spec.train_split: int(params["train_count"]),
        spec.test_split: int(params["test_count"]),
    }
    return {
        "suite": spec.name,
        "seed": seed,
        "generator": GENERATOR_VERSION,
        "params": params,
        "counts": counts,
        "photos": {"train": list(TRAIN_PHOTOS), "test": list(TEST_PHOTOS)}
        if spec.name in SUITES
        else {"faces": "skimage.data.lfw_subset()[:100]"},
    }


def generate(spec: DatasetSpec, out: Path, seed: int = 0, overrides: dict | None = None) -> Path:
    """Write the suite into ``out`` and verify it, which writes its lock file.

    ``out`` may be missing, empty, or a suite bench generated itself (``written_by_bench``:
    its synth.json and lock, and nothing but the locked files); anything else is refused,
    never deleted. Generation happens in a temporary folder beside ``out`` that is renamed
    into place only after the suite verified, so ``out`` is never half-written.
    """
    from bench.data.verify import SYNTH_INFO, verify, written_by_bench

    if not spec.synthetic:
        raise UsageError(f"'{spec.name}' is not a synthetic suite; use `bench data fetch`")
    info = suite_info(spec, seed, overrides)
    replaceable = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    if not replaceable and not written_by_bench(spec, out):
        raise UsageError(
            f"refusing to replace {out}: it holds files bench did not generate "
            f"({_sample_of(out)}); bench only ever replaces a suite it wrote itself. "
            "Choose another --out (or [paths] data_root), or move that folder away"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
        writer = _faces_suite if spec.name == "synth-faces" else _paired_suite
        writer(spec, staging, rng, info["params"])
        (staging / SYNTH_INFO).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        verify(spec, staging)
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            out.rename(retired / out.name)
            staging.rename(out)
            shutil.rmtree(retired)
        else:
            staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out
