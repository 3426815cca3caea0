"""An ISTD-layout folder with ISTD's counts, made by a shadow model unlike synth-shadow's.

Scenes are procedural (gradients, sinusoidal textures, coloured blocks), not crops of
scikit-image's photographs; shadows are hard-edged random polygons with a short blurred
penumbra that darken the scene by a blue-tinted factor (skylight fills real shadows), where
synth-shadow uses smooth fields over photographs. Used to check that budgets and memory
chosen on the synthetic suites hold on data they were not tuned on.

    python tests/istd_like.py ROOT [--train 1330] [--test 540] [--size 120 160]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = rng.uniform(0.25, 0.85, 3)
    tilt = rng.normal(0, 0.25, (2, 3))
    image = base + y[..., None] * tilt[0] + x[..., None] * tilt[1]
    for _ in range(3):  # textures
        freq, phase, amp = rng.uniform(4, 30, 2), rng.uniform(0, 6.3), rng.uniform(0.02, 0.08)
        image += amp * np.sin(freq[0] * x + freq[1] * y + phase)[..., None] * rng.uniform(0.5, 1, 3)
    for _ in range(rng.integers(2, 6)):  # objects
        top, left = rng.integers(0, height), rng.integers(0, width)
        h, w = rng.integers(height // 8, height // 2), rng.integers(width // 8, width // 2)
        image[top : top + h, left : left + w] = rng.uniform(0.1, 0.95, 3)
    image += rng.normal(0, 0.01, image.shape)
    return np.clip(image, 0, 1)


def shadow_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(rng.integers(1, 3)):
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        radius = rng.uniform(0.15, 0.4) * min(height, width)
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(4, 8)))
        points = [(cx + radius * np.cos(a) * rng.uniform(0.6, 1.4),
                   cy + radius * np.sin(a) * rng.uniform(0.6, 1.4)) for a in angles]  # fmt: skip
        draw.polygon(points, fill=255)
    return np.asarray(mask)


def triplet(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, ...]:
    clean = scene(rng, height, width)
    mask = shadow_mask(rng, height, width)
    penumbra = np.asarray(Image.fromarray(mask).filter(ImageFilter.GaussianBlur(1.5))) / 255.0
    factor = rng.uniform(0.25, 0.55) * np.array([0.85, 0.95, 1.15])  # darker, bluer
    shadowed = clean * (1 - penumbra[..., None] * (1 - factor))
    to8 = lambda a: np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)  # noqa: E731
    return to8(shadowed), mask, to8(clean)


def write(root: Path, train: int = 1330, test: int = 540, size=(120, 160), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for role in "ABC":
            (root / split / f"{split}_{role}").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            name = f"{index + 1:04d}.png"
            for role, array in zip("ABC", triplet(rng, *size), strict=True):
                Image.fromarray(array).save(root / split / f"{split}_{role}" / name)
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--train", type=int, default=1330)
    parser.add_argument("--test", type=int, default=540)
    parser.add_argument("--size", type=int, nargs=2, default=(120, 160))
    args = parser.parse_args()
    write(args.root, args.train, args.test, tuple(args.size))
