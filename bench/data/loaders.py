"""torch Datasets for paired, triplet and unpaired data, with the papers' preprocessing.

The RDDM template (docs/protocols.md §1, "Preprocessing") in its order:
  1. decode as RGB (masks as one binary channel);
  2. zero-pad bottom/right to at least the output size and to a multiple of 8;
  3. low-light only: histogram-equalise each channel of the input (cv2.equalizeHist);
  4. training only: horizontal flip ("random" p=0.5 by default; "always" is the official
     code's Augmentor setting, which mirrors every training pair);
  5. resize to the output size (256 in the papers), PIL bicubic as in Augmentor;
  6. map images to [-1, 1]; masks stay binary {0, 1}.
Options that are not part of that template (a fixed crop for CelebA 64, a random crop as in
Resfusion, the inpainting centre box) are named options too, defaulted from the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from bench.data.spec import DatasetSpec, SuperResolution
from bench.data.verify import SplitFiles, pair_split
from bench.errors import UsageError
from bench.files import read_image

Flip = Literal["none", "random", "always"]


@dataclass(frozen=True)
class Preprocess:
    image_size: int | None = 256  # None: keep the (padded) size
    pad: bool = True  # restoration data only; generation loaders crop and resize instead
    pad_to_size: bool = True  # pad to at least image_size (RDDM); the synthetic suites' small
    # crops would otherwise sit in a mostly black canvas, so they pad to a multiple of 8 only
    pad_multiple: int = 8
    equalize_input: bool = False
    flip: Flip = "none"
    fixed_crop: tuple[int, int, int] | None = None  # centre x, centre y, size (CelebA 64)
    random_crop: int | None = None  # Resfusion-style training crops
    resize_filter: str = "bicubic"  # a name of RESIZE_FILTERS
    center_box_mask: bool = False  # inpainting: centre h/2 x w/2 box filled with 0.5
    normalize: bool = True  # [0, 1] -> [-1, 1]
    #: super-resolution data: the LR input brought to the HR size (the manifest's scale,
    #: kernel and edge rule) and the ground truth cropped to a multiple of the scale, first
    super_resolution: SuperResolution | None = None

    @classmethod
    def for_split(
        cls, spec: DatasetSpec, image_size: int | None, train: bool, **options: Any
    ) -> Preprocess:
        """The manifest's defaults for this task, then the caller's named options."""
        manifest = spec.preprocess
        crop = manifest.get("fixed_crop")
        defaults = cls(
            image_size=image_size,
            pad=spec.kind != "unpaired",
            pad_to_size=not spec.synthetic,
            equalize_input=bool(manifest.get("equalize_input", False)),
            flip=manifest.get("train_flip", "random") if train else "none",
            fixed_crop=tuple(crop) if crop else None,
            center_box_mask=bool(manifest.get("center_box_mask", False)),
            super_resolution=spec.super_resolution,
        )
        valid = {field.name for field in fields(cls)} - {"image_size"}
        unknown = set(options) - valid
        if unknown:
            raise UsageError(
                f"unknown preprocessing option(s) {sorted(unknown)}; valid: {', '.join(sorted(valid))}"
            )
        chosen = replace(defaults, **options)
        if chosen.flip not in ("none", "random", "always"):
            raise UsageError(f"flip = '{chosen.flip}'; valid: none, random, always")
        if chosen.resize_filter not in RESIZE_FILTERS:
            raise UsageError(
                f"resize_filter = '{chosen.resize_filter}'; valid: {', '.join(RESIZE_FILTERS)}"
            )
        return chosen


def equalize_histogram(channel: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist on one uint8 channel: LUT = round(cdf' * 255 / (N - h_min)), where cdf'
    counts pixels above the lowest occupied level (that level maps to 0)."""
    histogram = np.bincount(channel.ravel(), minlength=256)
    lowest = int(np.flatnonzero(histogram)[0])
    total = channel.size
    if histogram[lowest] == total:  # a constant image stays as it is
        return channel.copy()
    scale = np.float32(255.0 / (total - histogram[lowest]))
    cumulative = np.cumsum(histogram) - histogram[lowest]
    lut = np.clip(np.rint(cumulative.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    lut[:lowest] = 0
    return lut[channel]


def _padded_shape(height: int, width: int, minimum: int, multiple: int) -> tuple[int, int]:
    new_h, new_w = max(height, minimum), max(width, minimum)
    return new_h + -new_h % multiple, new_w + -new_w % multiple


def _random_crop(images: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """The same ``size``-square window of every image, its offsets drawn from torch's
    global stream (top, then left)."""
    height, width = next(iter(images.values())).shape[:2]
    top = int(torch.randint(0, height - size + 1, ()))
    left = int(torch.randint(0, width - size + 1, ()))
    return {k: v[top : top + size, left : left + size] for k, v in images.items()}


def _pad(image: np.ndarray, minimum: int, multiple: int) -> np.ndarray:
    height, width = image.shape[:2]
    new_h, new_w = _padded_shape(height, width, minimum, multiple)
    if (new_h, new_w) == (height, width):
        return image
    padding = [(0, new_h - height), (0, new_w - width)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, padding)


#: PIL's filters by name: bicubic is the RDDM template's (Augmentor's resize); bilinear is
#: torchvision's Resize on PIL images (RDDM's CelebA-HQ inpainting dataset)
RESIZE_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def _resize(image: np.ndarray, size: int, resize_filter: str = "bicubic") -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), RESIZE_FILTERS[resize_filter]))


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """The top-left part whose sides are multiples of ``scale`` (MATLAB ``modcrop``)."""
    height, width = image.shape[:2]
    return image[: height - height % scale, : width - width % scale]


def bicubic(image: np.ndarray, size: tuple[int, int], setting: SuperResolution) -> np.ndarray:
    """A uint8 HWC image resized to ``size`` = (H, W) with the dataset's bicubic: MATLAB's
    ``imresize`` (with its edge rule) or PIL's (SR3's ``prepare_data.py``)."""
    from bench.metrics.resize import imresize

    if setting.kernel == "pil":
        grey = image.shape[2] == 1  # PIL takes a one-channel image as (H, W)
        resized = Image.fromarray(image[..., 0] if grey else image).resize(size[::-1], Image.Resampling.BICUBIC)  # fmt: skip
        return np.asarray(resized)[..., None] if grey else np.asarray(resized)
    tensor = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)[None]
    return imresize(tensor, size, edge=setting.edge)[0].permute(1, 2, 0).numpy()


def _mode(role: str, setting: SuperResolution | None) -> str:
    """How a role's files are decoded: masks as one channel; super-resolution sets as the
    files hold them (greyscale images occur in Set14 and Manga109-like sets); RGB otherwise."""
    if role == "mask":
        return "L"
    return "any" if setting is not None else "RGB"


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A (H, W, 3) image: a greyscale one (H, W) or (H, W, 1) in three equal channels."""
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    grey = image if image.ndim == 2 else image[..., 0]
    return np.repeat(grey[..., None], 3, axis=2)


def super_resolution_pair(
    images: dict[str, np.ndarray], setting: SuperResolution, lr_file: Path
) -> dict[str, np.ndarray]:
    """The ground truth (and mask) modcropped, and the LR input upscaled to its size: the
    degraded input the methods condition on (SR3's LRHR dataset feeds the upsampled LR; RDDM
    and Resfusion learn its residual to HR). An LR file of another size than the HR's
    modcrop divided by the scale is an error naming it."""
    scale = setting.scale
    images = {role: image[..., None] if image.ndim == 2 else image for role, image in images.items()}  # fmt: skip
    out = {role: modcrop(image, scale) for role, image in images.items() if role != "input"}
    height, width = out["target"].shape[:2]
    lr = images["input"]
    if lr.shape[:2] != (height // scale, width // scale):
        raise UsageError(
            f"{lr_file}: an LR image of {lr.shape[1]}x{lr.shape[0]} does not match its HR "
            f"image at scale {scale} (expected {width // scale}x{height // scale}); check "
            "[super_resolution] scale in the dataset's manifest and its LR folder"
        )
    out["input"] = bicubic(lr, (height, width), setting)
    return out


def _to_tensor(image: np.ndarray, normalize: bool) -> torch.Tensor:
    writable = np.require(image, requirements=["C", "W"])  # PIL arrays are read-only views
    tensor = torch.from_numpy(writable).permute(2, 0, 1).float() / 255.0
    return tensor * 2.0 - 1.0 if normalize else tensor


#: bytes of images kept in memory: decoded files, and items after the geometry steps when
#: those depend on the flip alone. Training revisits every item each epoch and every cell
#: of a grid reopens the same splits; decoding and resizing again each time was most of
#: the smoke profile's loading time.
CACHE_BYTES = 512 * 2**20


class _ImageCache:
    """Arrays shared by every split this process opens. Keys carry each file's size and
    modification time, so a file rewritten on disk is read again."""

    def __init__(self) -> None:
        self.entries: dict[tuple, Any] = {}
        self.bytes = 0

    def kept(self, key: tuple, make: Callable[[], Any]) -> Any:
        """``make()`` (an array or a dict of arrays), kept under ``key`` while the cache
        fits CACHE_BYTES. Kept arrays are read-only and shared: later steps copy rather
        than write in place."""
        if key in self.entries:
            return self.entries[key]
        value = make()
        arrays = list(value.values()) if isinstance(value, dict) else [value]
        size = sum(array.nbytes for array in arrays)
        if self.bytes + size <= CACHE_BYTES:
            for array in arrays:
                array.setflags(write=False)
            self.entries[key] = value
            self.bytes += size
        return value

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0


IMAGE_CACHE = _ImageCache()


def _file_key(path: Path) -> tuple:
    stat = path.stat()
    return (str(path), stat.st_mtime_ns, stat.st_size)


class _SplitDataset(torch.utils.data.Dataset):
    """Shared decoding and geometry; subclasses decide which files make one item."""

    def __init__(self, spec: DatasetSpec, files: SplitFiles, options: Preprocess) -> None:
        self.spec = spec
        self.files = files
        self.options = options

    def _read(self, path: Path, file_key: tuple, mode: str) -> np.ndarray:
        """``file_key``: ``_file_key(path)``, taken once per item by the caller."""
        return IMAGE_CACHE.kept(("decoded", file_key, mode), lambda: read_image(path, mode))

    def _geometry(self, images: dict[str, np.ndarray], files: tuple) -> dict[str, np.ndarray]:
        """Steps 2-5 on every image of an item with the same random draws. Without a random
        crop the result depends on the files (``files``: (role, file key) pairs) and the
        flip alone, so it is kept per both."""
        if self.options.random_crop is not None:
            return self._transform(images, self._draw_flip)
        flipped = self._draw_flip()
        key = ("prepared", files, self.options, flipped)
        return IMAGE_CACHE.kept(key, lambda: self._transform(images, lambda: flipped))

    def _draw_flip(self) -> bool:
        flip = self.options.flip
        return flip == "always" or (flip == "random" and bool(torch.rand(()) < 0.5))

    def _transform(
        self, images: dict[str, np.ndarray], flip: Callable[[], bool]
    ) -> dict[str, np.ndarray]:
        """``flip`` is drawn after the crop offsets, the order the random streams expect."""
        o = self.options
        images = self._fixed_steps(images)
        if o.random_crop is not None:
            images = _random_crop({k: _pad(v, o.random_crop, 1) for k, v in images.items()}, o.random_crop)  # fmt: skip
        if flip():
            images = {k: v[:, ::-1] for k, v in images.items()}
        if o.image_size is not None:
            images = {
                k: _resize(np.ascontiguousarray(v), o.image_size, o.resize_filter)
                for k, v in images.items()
            }
        return images

    def _fixed_steps(self, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The steps that draw nothing: the fixed crop, the padding, the input's
        histogram equalisation."""
        o = self.options
        if o.fixed_crop is not None:
            cx, cy, size = o.fixed_crop
            top, left = cy - size // 2, cx - size // 2
            images = {k: v[top : top + size, left : left + size] for k, v in images.items()}
        if o.pad:
            minimum = (o.image_size or 0) if o.pad_to_size else 0
            images = {k: _pad(v, minimum, o.pad_multiple) for k, v in images.items()}
        if o.equalize_input and "input" in images:
            channels = [equalize_histogram(images["input"][..., c]) for c in range(3)]
            images["input"] = np.stack(channels, axis=-1)
        return images

    def padded_shape(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) an image of this size has after step 2, before the resize."""
        o = self.options
        if not o.pad:
            return height, width
        return _padded_shape(
            height, width, (o.image_size or 0) if o.pad_to_size else 0, o.pad_multiple
        )

    def _item(self, images: dict[str, np.ndarray], name: str, files: tuple) -> dict[str, Any]:
        images = self._geometry(images, files)
        item: dict[str, Any] = {"name": name}
        for role, image in images.items():
            if role == "mask":
                binary = (image >= 128).astype(np.float32)  # bicubic ringing must not leak in
                item["mask"] = torch.from_numpy(binary)[None]
            else:
                item[role] = _to_tensor(image, self.options.normalize)
        if self.options.center_box_mask:
            target = item["target"]
            height, width = target.shape[1:]
            mask = torch.zeros(1, height, width)
            mask[
                :, height // 4 : height // 4 + height // 2, width // 4 : width // 4 + width // 2
            ] = 1
            fill = 0.0 if self.options.normalize else 0.5  # 0.5 in [0, 1] is 0 in [-1, 1]
            item["input"] = target * (1 - mask) + fill * mask
            item["mask"] = mask
        return item


class PairedDataset(_SplitDataset):
    """Paired and triplet data: one item per pair id, every role decoded."""

    def __init__(self, spec: DatasetSpec, files: SplitFiles, options: Preprocess) -> None:
        super().__init__(spec, files, options)
        self.ids = sorted(files.pairs)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair_id = self.ids[index]
        roles = self.files.pairs[pair_id]
        keys = {role: _file_key(path) for role, path in roles.items()}
        setting = self.options.super_resolution
        images = {
            role: self._read(path, keys[role], _mode(role, setting)) for role, path in roles.items()
        }
        if setting is not None:
            images = IMAGE_CACHE.kept(
                ("upscaled", tuple(keys.items()), setting),
                lambda: {
                    role: as_rgb(image)  # the methods take RGB; the scores keep grey grey
                    for role, image in super_resolution_pair(
                        images, setting, roles["input"]
                    ).items()
                },
            )
        # Outputs are saved under the input's basename, as in the official code; a
        # super-resolution output under its HR image's, which `bench score` pairs it with
        name = pair_id if setting is not None else roles.get("input", roles["target"]).stem
        return self._item(images, name, tuple(keys.items()))

    def native(
        self, index: int, roles: tuple[str, ...] = ("target", "mask")
    ) -> dict[str, np.ndarray]:
        """The item's ground truth (and mask; ``roles`` may add the input) as the files hold
        them, at their own size: what the papers' evaluation scripts read
        (docs/protocols.md, "Native size")."""
        files = self.files.pairs[self.ids[index]]
        setting = self.options.super_resolution
        wanted = set(roles) | ({"input"} if setting is not None else set())
        images = {  # writable copies: PIL's arrays are read-only views, which torch warns about
            role: np.array(read_image(files[role], _mode(role, setting)))
            for role in wanted
            if role in files
        }
        if setting is not None:  # scored as SR scripts read it: modcropped, grey as grey
            images = super_resolution_pair(images, setting, files["input"])
            images["input"] = as_rgb(images["input"])  # shown beside the RGB outputs
        return {role: np.array(images[role]) for role in roles if role in images}


class UnpairedDataset(_SplitDataset):
    """Single images (generation, inpainting); with an input folder (translation) every
    input image is one item, with a target of the other domain drawn by index, without any
    pairing: RDDM's translation dataset is as long as its input list and names each output
    after its input (docs/datasets.md, "AFHQ")."""

    def __init__(self, spec: DatasetSpec, files: SplitFiles, options: Preprocess) -> None:
        super().__init__(spec, files, options)
        self.targets = files.singles["target"]
        self.inputs = files.singles.get("input", [])

    def __len__(self) -> int:
        return len(self.inputs) if self.inputs else len(self.targets)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not self.inputs:
            return self._single(self.targets[index])
        item = self._single(self.inputs[index])  # named after the input
        item["input"] = item["target"]
        item["target"] = self._single(self.targets[index % len(self.targets)])["target"]
        return item

    def _single(self, path: Path) -> dict[str, Any]:
        key = _file_key(path)
        images = {"target": self._read(path, key, "RGB")}
        return self._item(images, path.stem, (("target", key),))


def open_split(
    spec: DatasetSpec,
    root: Path,
    split: str,
    image_size: int | None = 64,
    train: bool = True,
    **options: Any,
) -> torch.utils.data.Dataset:
    """A torch Dataset over ``root``'s ``split``, after the structural checks of verify."""
    preprocess = Preprocess.for_split(spec, image_size, train, **options)
    files = pair_split(spec, Path(root), split)
    cls = UnpairedDataset if spec.kind == "unpaired" else PairedDataset
    return cls(spec, files, preprocess)
