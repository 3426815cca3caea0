"""Labelled image grids: restoration is judged by eye first.

One grid puts, for each test image, the degraded input, one or more outputs and the ground
truth side by side at the files' own size, each tile captioned (the image's name, an
output's per-image score). Images of different sizes share a grid: every column is as wide
as its widest tile and every row as tall as its tallest, on a white background. A run
writes one (input | output | ground truth); `bench report` writes one per dataset with a
column per method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from bench.conventions import HEADLINES, base_of

FONT_SIZE = 12
PAD = 4  # pixels between tiles and around text
BACKGROUND = (255, 255, 255)
MISSING = (230, 230, 230)  # a tile with no image: a method that left this image out


@dataclass(frozen=True)
class Tile:
    """An (H, W, 3) or (H, W) uint8 image with the caption under it; no image: a grey box
    the size of the row's others, captioned with why."""

    image: np.ndarray | None
    caption: str = ""


def per_image_caption(protocol: str, per_image: pd.DataFrame, name: str) -> str:
    """``PSNR 23.41``: the protocol's first headline for one image (empty when the protocol
    has none per image)."""
    specs = HEADLINES.get(base_of(protocol), ())
    if not specs or specs[0].key not in per_image or "name" not in per_image:
        return ""
    values = per_image.loc[per_image["name"].astype(str) == name, specs[0].key]
    return f"{specs[0].title} {values.iloc[0]:.2f}" if len(values) else ""


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    if not text:
        return 0, 0
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _rgb(image: np.ndarray) -> Image.Image:
    if image.dtype != np.uint8:
        raise TypeError(f"grid tiles must be uint8, got {image.dtype}")
    return Image.fromarray(image).convert("RGB")


def labelled_grid(headers: list[str], rows: list[list[Tile]]) -> np.ndarray:
    """The grid as a uint8 (H, W, 3) array: ``headers`` over the columns, one row of
    tiles per image, every row as long as ``headers``."""
    for index, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"grid row {index} has {len(row)} tiles for {len(headers)} columns")
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = _text_size(measure, "Ag", font)[1] + PAD
    widths = [_text_size(measure, header, font)[0] for header in headers]
    heights = []
    for row in rows:
        height = 0
        for column, tile in enumerate(row):
            shape = tile.image.shape[:2] if tile.image is not None else (0, 0)
            widths[column] = max(
                widths[column], shape[1], _text_size(measure, tile.caption, font)[0]
            )
            height = max(height, shape[0])
        heights.append(height or line)
    width = sum(widths) + PAD * (len(headers) + 1)
    height = line + PAD + sum(h + line + PAD for h in heights) + PAD
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    lefts = [PAD + sum(widths[:i]) + PAD * i for i in range(len(headers))]
    for left, header in zip(lefts, headers, strict=True):
        draw.text((left, PAD), header, fill=(0, 0, 0), font=font)
    top = line + PAD
    for row, row_height in zip(rows, heights, strict=True):
        for left, column_width, tile in zip(lefts, widths, row, strict=True):
            if tile.image is None:
                draw.rectangle(
                    [left, top, left + column_width - 1, top + row_height - 1], fill=MISSING
                )
            else:
                canvas.paste(_rgb(tile.image), (left, top))
            draw.text((left, top + row_height + 2), tile.caption, fill=(0, 0, 0), font=font)
        top += row_height + line + PAD
    return np.asarray(canvas)
