"""Super-resolution protocols: the literature's MATLAB scoring of SR outputs.

The scripts behind SR tables (SRCNN's, EDSR's and their descendants) read both images as
uint8, ``modcrop`` the ground truth to a multiple of the scale (the size the SR output has),
shave ``scale`` pixels from every border (the bicubic degradation's edge band), and score:

* ``sr-y``: Y of BT.601 (MATLAB ``rgb2ycbcr`` on uint8, rounded); a one-channel image is
  scored on its grey values (their ``if size(im,3)==3`` guard); PSNR with peak 255 and
  Wang's SSIM (11x11 Gaussian, sigma 1.5);
* ``sr-rgb``: the same on the three RGB channels (SSIM the mean of the channels').

``scale`` (2, 3, 4 or 8; `bench score --scale`) is both the shave and the modcrop.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from bench.errors import UsageError
from bench.metrics.color import rgb_to_y, y_or_grey
from bench.metrics.fullref import psnr, ssim
from bench.protocols.base import PROTOCOLS, Protocol

SCALES = (4, 2, 3, 8)


def checked_scale(protocol: str, scale: int) -> int:
    """``scale`` when it is one of SCALES; otherwise one error naming the protocol."""
    if scale not in SCALES:
        valid = ", ".join(map(str, sorted(SCALES)))
        raise UsageError(f"protocol '{protocol}': scale {scale} is not one of {valid}")
    return scale


class _SuperResolution(Protocol):
    #: the ground truth is brought to the output's size (modcrop), never the output resized
    resizes: ClassVar[bool] = True
    mean_columns = ("psnr", "ssim")
    channel: ClassVar[str]

    def __init__(
        self,
        weights_dir,
        device="cpu",
        scale: int = 4,
        shave: bool = True,
        channel: str | None = None,
        rounded_y: bool = True,
    ) -> None:
        """``scale``: the modcrop and (with ``shave``) the border shaved; ``channel``: "y" or
        "rgb" (default: the protocol's); ``rounded_y``: Y rounded as MATLAB's uint8
        ``rgb2ycbcr`` (False: the float Y of Python ports). The last three are the audit's
        conventions (bench/conventions.py)."""
        super().__init__(weights_dir, device)
        self.scale, self.shave, self.rounded_y = checked_scale(self.name, scale), shave, rounded_y
        self.channel = channel or type(self).channel

    @property
    def accepts_grey(self) -> bool:
        return self.channel == "y"

    @property
    def scores_loader_size(self) -> bool:
        return False  # SR outputs are scored at their files' size, the HR image's modcrop

    def measure(self, pred, target, mask):
        target = self._modcropped(target, tuple(pred.shape[-2:]))
        if self.shave:
            s = self.scale
            pred, target = pred[..., s:-s, s:-s], target[..., s:-s, s:-s]
        if self.channel == "y":
            pred, target = self._y(pred), self._y(target)
        elif 1 in (pred.shape[1], target.shape[1]):
            raise UsageError(f"protocol '{self.name}' scores RGB; a greyscale image needs sr-y")
        return {"psnr": psnr(pred, target, 255.0), "ssim": ssim(pred, target, 255.0, "wang")}, {}

    def _y(self, images: torch.Tensor) -> torch.Tensor:
        if self.rounded_y or images.shape[1] == 1:
            return y_or_grey(images)
        return rgb_to_y(images, rounded=False)

    def _modcropped(self, target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The ground truth cropped (top-left) to a multiple of the scale, as ``modcrop``
        does; the output must have that size."""
        height, width = target.shape[-2:]
        modcrop = (height - height % self.scale, width - width % self.scale)
        if tuple(size) != modcrop:
            raise UsageError(
                f"protocol '{self.name}': an output of {size[1]}x{size[0]} is not the ground "
                f"truth's {width}x{height} cropped to a multiple of the scale {self.scale}; "
                "check --scale"
            )
        return target[..., : size[0], : size[1]]

    def conventions(self) -> dict[str, Any]:
        rounding = "rounded" if self.rounded_y else "unrounded float"
        return {
            "channel": f"BT.601 Y (rgb2ycbcr on uint8, {rounding}); grey values of a one-channel image"  # fmt: skip
            if self.channel == "y"
            else "RGB",
            "scale": self.scale,
            "shave": f"{self.scale} pixels from every border" if self.shave else "none",
            "modcrop": "the ground truth cropped to the output's size (a multiple of the scale)",
            "psnr": "peak 255",
            "ssim": "Wang (11x11 Gaussian, sigma 1.5, L = 255)",
        }


@PROTOCOLS.register("sr-y")
class SrY(_SuperResolution):
    __doc__ = __doc__
    name = "sr-y"
    description = "super-resolution: Y-channel PSNR/SSIM, modcrop, scale pixels shaved"
    table = "the SR literature's tables (Set5, Set14, BSD100, Urban100, Manga109)"
    channel = "y"


@PROTOCOLS.register("sr-rgb")
class SrRgb(_SuperResolution):
    __doc__ = __doc__
    name = "sr-rgb"
    description = "super-resolution: RGB PSNR/SSIM, modcrop, scale pixels shaved"
    table = "SR tables that score RGB"
    channel = "rgb"


@PROTOCOLS.register("sr3-faces")
class SR3Faces(Protocol):
    """SR3's face super-resolution (16->128 and 64->512, both x8), as its official code scores
    validation images (``core/metrics.py``): the uint8 RGB images (``tensor2img``: clamp,
    round), PSNR over every value with peak 255, SSIM Wang's 11x11 Gaussian (sigma 1.5) on
    the valid region, averaged over the channels, no shave and no modcrop. The SR3 paper adds
    consistency, the MSE between the LR input and the output downsampled to it; here the LR is
    the ground truth downsampled with MATLAB's bicubic, which is the input exactly where the
    dataset's LR images were made that way, and both are on [0, 1]."""

    name = "sr3-faces"
    description = "SR3 faces: RGB PSNR/SSIM on uint8, no shave (core/metrics.py), consistency"
    table = "SR3's face super-resolution (official code's README; paper Table 2 reports consistency)"  # fmt: skip
    mean_columns = ("psnr", "ssim", "consistency")

    def __init__(self, weights_dir, device="cpu", scale: int = 8) -> None:
        super().__init__(weights_dir, device)
        self.scale = checked_scale(self.name, scale)

    def measure(self, pred, target, mask):
        from bench.metrics.resize import imresize

        height, width = target.shape[-2:]
        if height % self.scale or width % self.scale:
            raise UsageError(f"protocol 'sr3-faces': a {width}x{height} ground truth is not a multiple of the scale {self.scale}")  # fmt: skip
        size = (height // self.scale, width // self.scale)
        lr, down = imresize(target, size), imresize(pred, size)  # uint8 in, uint8 out
        consistency = ((down.double() - lr.double()) / 255).pow(2).flatten(1).mean(1)
        return {
            "psnr": psnr(pred, target, 255.0),
            "ssim": ssim(pred, target, 255.0, "wang"),
            "consistency": consistency,
        }, {}

    def conventions(self) -> dict[str, Any]:
        return {
            "channel": "RGB, uint8",
            "scale": self.scale,
            "shave": "none",
            "psnr": "peak 255, MSE over every value",
            "ssim": "Wang (11x11 Gaussian, sigma 1.5, valid region), mean of the channels",
            "consistency": "MSE on [0, 1] between the ground truth and the output, each "
            "downsampled by MATLAB bicubic imresize to the LR size (uint8)",
        }
