"""Restoration protocols: each reproduces one official evaluation script exactly.

Metric names in ``summary``: ``psnr``/``ssim``/``lpips`` (one region), or for ISTD
``psnr_{all,s,ns}``, ``ssim_{all,s,ns}``, ``mae_{all,s,ns}_{pi,pp}`` and ``lpips``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch

from bench import weights as weight_files
from bench.errors import UsageError
from bench.metrics.color import rgb_to_lab, rgb_to_y, rgb_to_yiq_luma, y_or_grey
from bench.metrics.fullref import SSIM_FORMS, psnr, region_abs_sums, ssim, ssim_inside_outside
from bench.metrics.perceptual import Lpips
from bench.metrics.resize import imresize
from bench.protocols.base import PROTOCOLS, Protocol

if TYPE_CHECKING:
    from bench.statistics import Aggregate

LPIPS_SIZE = (256, 256)
LPIPS_CHUNK = 16  # images per LPIPS forward pass: bounds memory at 256x256 and above
LPIPS_CONVENTION = (
    "lpips.LPIPS(net='alex', version='0.1'), inputs x/127.5-1 in [-1, 1]; both images "
    "first resized to 256x256 with MATLAB-style antialiased bicubic on uint8 (pinned: the "
    "papers' resize_256_and_save.py does not record PIL vs OpenCV)"
)


_SIZE_CONVENTION = {
    "prediction": "ground truth imresize'd (MATLAB bicubic, uint8) to the prediction size",
    "native": "prediction imresize'd (MATLAB bicubic, uint8) to the ground truth's size",
    "256": "prediction and ground truth imresize'd (MATLAB bicubic, uint8) to 256x256",
}
GT_MEAN_CONVENTION = (
    "LLFlow test.py: prediction/255 times (grey mean of the ground truth / mean of the "
    "prediction over all channels), clipped to [0, 1], x255 and truncated to uint8; the grey "
    "mean is OpenCV BGR2GRAY applied to the RGB array (R weighted 0.114, B 0.299)"
)


def _one_of(value: Any, valid: tuple, option: str) -> Any:
    if value not in valid:
        raise UsageError(
            f"protocol option {option} = {value!r}; valid: {', '.join(map(str, valid))}"
        )
    return value


def _same_size(
    pred: torch.Tensor, target: torch.Tensor, size: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The scripts bring the ground truth to the prediction's size; "native" goes the other
    way; "256" brings both to 256x256 (a size already right is left alone)."""
    if size == "prediction":
        return pred, imresize(target, tuple(pred.shape[-2:]))
    if size == "256":
        return tuple(  # type: ignore[return-value]
            image if tuple(image.shape[-2:]) == (256, 256) else imresize(image, (256, 256))
            for image in (pred, target)
        )
    return imresize(pred, tuple(target.shape[-2:])), target


def gt_mean_corrected(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """LLFlow's GT-mean brightness correction (``GT_MEAN_CONVENTION``) on uint8 (N, 3, H, W)."""
    out = pred.to(torch.float64) / 255
    grey_weights = torch.tensor((0.114, 0.587, 0.299), dtype=torch.float64, device=pred.device)
    grey_mean = torch.einsum("c,nchw->n", grey_weights, target.to(torch.float64)) / (
        target.shape[-1] * target.shape[-2] * 255
    )
    scale = grey_mean / out.flatten(1).mean(dim=1)
    return (out * scale.view(-1, 1, 1, 1)).clamp(0, 1).mul(255).floor().to(torch.uint8)


class _RestorationProtocol(Protocol):
    #: the papers' scripts bring prediction and ground truth to one size (each protocol says how)
    resizes: ClassVar[bool] = True
    #: resize both images to 256x256 before LPIPS (docs/protocols.md §2.5); False: native size
    lpips_resized: ClassVar[bool] = True

    #: option -> its valid values, the paper's first; the constructor takes each as a keyword
    #: and sets it as an attribute (the variants in bench/conventions.py pick other values)
    OPTIONS: ClassVar[dict[str, tuple]] = {"lpips_version": ("0.1", "0.0")}

    def __init__(self, weights_dir, device="cpu", **options: Any) -> None:
        super().__init__(weights_dir, device)
        unknown = set(options) - set(self.OPTIONS)
        if unknown:
            raise UsageError(
                f"protocol '{self.name}' has no option {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(self.OPTIONS)}"
            )
        for option, valid in self.OPTIONS.items():
            setattr(self, option, _one_of(options.get(option, valid[0]), valid, option))
        self._lpips: Lpips | None = None
        self._lpips_missing = ""
        #: the metric groups ``measure`` computes (None: all); the audit sets it to what a
        #: convention can change (bench/conventions.py ``recomputes``)
        self.groups: frozenset[str] | None = None

    def _wants(self, group: str) -> bool:
        return self.groups is None or group in self.groups

    def _psnr_ssim(self, a: torch.Tensor, b: torch.Tensor, form: str) -> dict[str, torch.Tensor]:
        """PSNR and SSIM (data range 255) of the groups this protocol computes."""
        columns = {}
        if self._wants("psnr"):
            columns["psnr"] = psnr(a, b, 255.0)
        if self._wants("ssim"):
            columns["ssim"] = ssim(a, b, 255.0, form)
        return columns

    def _lpips_column(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        columns: dict[str, torch.Tensor],
        unavailable: dict[str, str],
    ) -> None:
        """Adds ``lpips`` to ``columns``, or the reason it is unavailable (never a 0)."""
        if not self._wants("lpips"):
            return
        if self._lpips is None and not self._lpips_missing:
            try:
                self._lpips = Lpips(self.weights_dir, self.device, self.lpips_version)
            except weight_files.WeightsMissing as missing:
                self._lpips_missing = str(missing)
        if self._lpips is None:
            unavailable["lpips"] = self._lpips_missing
            return
        if self.lpips_resized:
            pred, target = imresize(pred, LPIPS_SIZE), imresize(target, LPIPS_SIZE)
        columns["lpips"] = torch.cat(
            [
                self._lpips(pred[i : i + LPIPS_CHUNK], target[i : i + LPIPS_CHUNK])
                for i in range(0, pred.shape[0], LPIPS_CHUNK)
            ]
        )

    def _lpips_meta(self) -> dict[str, Any]:
        convention = LPIPS_CONVENTION.replace("'0.1'", f"'{self.lpips_version}'")
        meta: dict[str, Any] = {
            "lpips": convention
            if self.lpips_resized
            else convention.split(";")[0] + "; native size"
        }
        if self._lpips is not None:
            meta.update(self._lpips.meta())
            if self._lpips.verification.state == "mismatch":
                meta["warnings"] = [
                    f"{self._lpips.verification.path} is not the official AlexNet file "
                    "(SHA-256 mismatch); LPIPS values are not comparable to published ones"
                ]
        return meta

    @staticmethod
    def _require_window(images: torch.Tensor, window: int, protocol: str) -> None:
        if min(images.shape[-2:]) < window:
            raise UsageError(
                f"protocol '{protocol}': images of {tuple(images.shape[-2:])} are smaller than "
                f"the {window}x{window} SSIM window"
            )


@PROTOCOLS.register("istd")
class Istd(_RestorationProtocol):
    """ISTD shadow removal, as ``evaluate_ISTD_results.m`` (docs/protocols.md §2.1).

    PSNR/SSIM branch ("double, then imresize", zhu_cvpr2022): x/255 in float64, MATLAB
    bicubic imresize to 256x256, MATLAB ``psnr``/``ssim`` with data range 1 on RGB. S and NS
    score the whole masked image (``s.*mask``), so zeroed pixels count as perfect matches.
    MAE branch ("imresize, then double", fu_cvpr2021): uint8 imresize (rounded and saturated),
    /255, ``makecform('srgb2lab')`` (D50 white), |dL|+|da|+|db| summed per region and divided
    by the region's pixel count. PI = mean of per-image MAE; PP = all sums / all pixels.

    Unverified readings (no MATLAB output to compare with yet), named in ``meta``:

    * ``ssim_form='matlab-volume'``: MATLAB ``ssim`` on HxWx3 as a 3-D volume with an
      11x11x11 Gaussian and replicate padding (see :data:`SSIM_FORMS`).
    * ``mask_resize='uint8'``: the mask is ``imresize``d as read by ``imread`` (uint8,
      rounded), then ``smask = m ~= 0``; ``'double'`` keeps bicubic ringing as shadow.
    * an image whose S or NS region is empty is left out of that region's PI mean
      (MATLAB would give NaN); the count is in ``meta``.

    Both RDDM and Resfusion feed the ground-truth mask at test time (oracle mask).
    """

    name = "istd"
    description = "ISTD shadow removal: MATLAB evaluate_ISTD_results.m at 256x256"
    table = "RDDM Table 3(b) and Table 7 (also Tables 1, 5, 10, 11(b)); Resfusion ISTD table"
    uses_mask = True
    regions = ("all", "s", "ns")
    mean_columns = tuple(f"{m}_{r}" for m in ("psnr", "ssim") for r in ("all", "s", "ns")) + (
        "lpips",
    )

    OPTIONS = {
        **_RestorationProtocol.OPTIONS,
        "size": ((256, 256), None),  # None: native, no imresize (Resfusion's _origin script)
        "white": ("d50", "d65"),
        "mask_resize": ("uint8", "double"),
        "ssim_form": ("matlab-volume", "wang", "skimage"),
        "order": ("double-then-resize", "resize-then-double"),
        "mask_threshold": ("nonzero", "half"),
    }

    @property
    def resizes(self) -> bool:  # type: ignore[override]
        return self.size is not None

    def _resized(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.size is None else imresize(images, self.size)

    def measure(self, pred, target, mask):
        pred8, target8 = self._resized(pred), self._resized(target)
        pred01, target01 = self._unit_images(pred, target, pred8, target8)
        if self._wants("mae"):
            lab_pred = rgb_to_lab(pred8.to(torch.float64) / 255, self.white)
            lab_target = rgb_to_lab(target8.to(torch.float64) / 255, self.white)
        regions, unavailable = self._regions(mask)
        columns = self._ssim_columns(pred01, target01, regions)
        for region, inside in regions.items():
            if self._wants("psnr"):
                if inside is None:
                    a, b = pred01, target01
                else:
                    a, b = pred01 * inside, target01 * inside
                columns[f"psnr_{region}"] = psnr(a, b, 1.0)
            if self._wants("mae"):
                sums, pixels = region_abs_sums(lab_pred, lab_target, inside)
                columns[f"mae_{region}"] = sums / pixels  # NaN: an empty region, left out of PI
                columns[f"lab_sum_{region}"] = sums
                columns[f"pixels_{region}"] = pixels
        self._lpips_column(pred8, target8, columns, unavailable)
        return columns, unavailable

    def _unit_images(self, pred, target, pred8, target8):
        """The images in [0, 1] for PSNR and SSIM, in the script's order of resizing and
        conversion; None when neither is asked for."""
        if not (self._wants("psnr") or self._wants("ssim")):
            return None, None
        if self.order == "double-then-resize":  # zhu_cvpr2022, the script's PSNR/SSIM branch
            pred01 = self._resized(pred.to(torch.float64) / 255)
            target01 = self._resized(target.to(torch.float64) / 255)
            return pred01, target01
        # fu_cvpr2021: the uint8 images resized, then double
        return pred8.to(torch.float64) / 255, target8.to(torch.float64) / 255

    def _regions(self, mask) -> tuple[dict[str, torch.Tensor | None], dict[str, str]]:
        """The whole image, and shadow / non-shadow where a mask is given; without one,
        every region metric is unavailable, with the reason."""
        regions: dict[str, torch.Tensor | None] = {"all": None}
        unavailable: dict[str, str] = {}
        if mask is None:
            reason = "no shadow mask given (pass --mask-dir with the test_B masks)"
            for metric in ("psnr", "ssim", "mae"):
                for region in ("s", "ns"):
                    suffixes = ("_pi", "_pp") if metric == "mae" else ("",)
                    unavailable.update({f"{metric}_{region}{s}": reason for s in suffixes})
            return regions, unavailable
        mask = mask.to(self.device)
        resized = self._resized(mask if self.mask_resize == "uint8" else mask.double())
        # the script: any non-zero pixel of the resized mask is shadow; "half": >= 0.5
        shadow = resized != 0 if self.mask_threshold == "nonzero" else resized >= 127.5
        regions["s"], regions["ns"] = shadow, ~shadow
        return regions, unavailable

    def _ssim_columns(self, pred01, target01, regions) -> dict[str, torch.Tensor]:
        if not self._wants("ssim"):
            return {}
        if regions.get("s") is not None:  # S and NS from one more filtering (linearity)
            scores = ssim_inside_outside(pred01, target01, regions["s"], 1.0, self.ssim_form)
            ssims = dict(zip(("all", "s", "ns"), scores, strict=True))
        else:
            ssims = {"all": ssim(pred01, target01, 1.0, self.ssim_form)}
        return {f"ssim_{r}": value for r, value in ssims.items()}

    def aggregate(self, key: str) -> Aggregate | None:
        """``mae_<region>_pi``: the mean of per-image MAE (images with an empty region left
        out); ``mae_<region>_pp``: all absolute Lab errors over all pixels, a ratio of sums."""
        from bench.statistics import Aggregate

        for region in self.regions:
            if key == f"mae_{region}_pi":
                return Aggregate(f"mae_{region}")
            if key == f"mae_{region}_pp":
                return Aggregate(f"lab_sum_{region}", f"pixels_{region}")
        return super().aggregate(key)

    def summarize(self, per_image: pd.DataFrame) -> dict[str, float]:
        summary = super().summarize(per_image)
        for region in self.regions:
            if f"mae_{region}" not in per_image:
                continue
            per_image_mae = per_image[f"mae_{region}"].to_numpy(dtype=np.float64)
            summary[f"mae_{region}_pi"] = float(np.nanmean(per_image_mae))
            summary[f"mae_{region}_pp"] = float(
                per_image[f"lab_sum_{region}"].sum() / per_image[f"pixels_{region}"].sum()
            )
        return summary

    def conventions(self) -> dict[str, Any]:
        resize = "no imresize (native size)" if self.size is None else "MATLAB bicubic imresize"
        psnr_ssim = {
            "double-then-resize": f"x/255 float64, then {resize}; data range 1; RGB",
            "resize-then-double": f"uint8 {resize}, then /255; data range 1; RGB",
        }[self.order]
        shadow = "resized != 0" if self.mask_threshold == "nonzero" else "resized >= 0.5"
        return {
            "size": list(self.size) if self.size is not None else "native",
            "psnr_ssim": psnr_ssim,
            "ssim_form": f"{self.ssim_form}: {SSIM_FORMS[self.ssim_form]}",
            "mae": f"uint8 {resize}, /255, sRGB->Lab white {self.white.upper()}, "
            "sum |dL|+|da|+|db| / region pixels; PI and PP",
            "mask_resize": f"{self.mask_resize} (unverified reading), shadow = {shadow}",
            "oracle_mask": "RDDM and Resfusion use the ground-truth test_B mask",
            "unverified": ["ssim_form matlab-volume", "mask_resize"],
            **self._lpips_meta(),
        }


class _YChannel(_RestorationProtocol):
    """MPRNet's ``evaluate_PSNR_SSIM.m`` (docs/protocols.md §2.2) on the BT.601 Y channel.

    The uint8 ground truth is ``imresize``d to the prediction's size (256x256 for RDDM);
    Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255) as MATLAB ``rgb2ycbcr`` on
    uint8; PSNR with peak 255; Wang's ``SSIM_index`` (11x11 Gaussian, sigma 1.5, 'valid',
    L = 255), which equals Wang's later ``ssim.m`` at 256x256 (downsampling factor 1).
    """

    mean_columns = ("psnr", "ssim", "lpips")
    CHANNELS: ClassVar[dict[str, str]] = {
        "y": "BT.601 Y (rgb2ycbcr on uint8: rounded to integers); Wang SSIM",
        "rgb": "RGB, peak 255; scikit-image SSIM defaults per channel (7x7 uniform window)",
        "yiq": "Y of YIQ (0.299 R + 0.587 G + 0.114 B on [0, 255], unrounded); Wang SSIM",
    }

    OPTIONS = {
        **_RestorationProtocol.OPTIONS,
        "size": tuple(_SIZE_CONVENTION),
        "channel": tuple(CHANNELS),
        "gt_mean": (False, True),
    }

    @property
    def accepts_grey(self) -> bool:
        return self.channel == "y"

    def measure(self, pred, target, mask):
        pred, target = _same_size(pred, target, self.size)
        if self.gt_mean:
            pred = gt_mean_corrected(pred, target)
        self._require_window(pred, 11, self.name)
        if self.channel == "rgb":
            columns = self._psnr_ssim(pred, target, "skimage")
        elif self.channel == "y":
            columns = self._psnr_ssim(y_or_grey(pred), y_or_grey(target), "wang")
        else:
            columns = self._psnr_ssim(rgb_to_yiq_luma(pred), rgb_to_yiq_luma(target), "wang")
        unavailable: dict[str, str] = {}
        if 1 in (pred.shape[1], target.shape[1]):
            if self._wants("lpips"):
                unavailable["lpips"] = "LPIPS compares RGB images; a greyscale image has none"
        else:
            self._lpips_column(pred, target, columns, unavailable)
        return columns, unavailable

    def conventions(self) -> dict[str, Any]:
        return {
            "resize": _SIZE_CONVENTION[self.size],
            "channel": self.CHANNELS[self.channel],
            "psnr": "peak 255",
            "gt_mean": GT_MEAN_CONVENTION if self.gt_mean else "none",
            **self._lpips_meta(),
        }


@PROTOCOLS.register("lol")
class Lol(_YChannel):
    __doc__ = _YChannel.__doc__
    name = "lol"
    description = "LOL low-light (eval15): Y-channel PSNR/SSIM (evaluate_PSNR_SSIM.m), LPIPS"
    table = "RDDM Table 3(c) and Table 11(a)"


@PROTOCOLS.register("sid")
class Sid(_YChannel):
    __doc__ = _YChannel.__doc__
    name = "sid"
    description = "SID-RGB low-light: Y-channel PSNR/SSIM (evaluate_PSNR_SSIM.m), LPIPS"
    table = "RDDM Table 8"


@PROTOCOLS.register("raindrop")
class Raindrop(_YChannel):
    __doc__ = (_YChannel.__doc__ or "") + (
        "\n    Pairing: ``<id>_clean`` ground truth with ``<id>_rain`` (or ``<id>``) outputs; "
        "the\n    ``_rain`` input name is unverified (docs/protocols.md §1).\n"
    )
    name = "raindrop"
    description = "RainDrop test_a deraining: Y-channel PSNR/SSIM (evaluate_PSNR_SSIM.m)"
    table = "RDDM Table 3(d), Table 6 and Table 11(c)"
    pair_suffixes = ("_clean", "_rain")


@PROTOCOLS.register("gopro")
class Gopro(_RestorationProtocol):
    """GoPro deblurring, as ``evaluate_GOPRO_HIDE.m`` (docs/protocols.md §2.3).

    The uint8 ground truth is ``imresize``d to the prediction's size (256x256 for RDDM, which
    changes the 16:9 aspect); MATLAB ``psnr`` and ``ssim`` on uint8 RGB (data range 255).
    UNVERIFIED: ``ssim`` reads HxWx3 as a volume (``matlab-volume`` form: 11x11x11 Gaussian,
    replicate padding, mean of the full map); no MATLAB output was available to confirm it.
    """

    name = "gopro"
    description = "GoPro deblurring: MATLAB psnr/ssim on uint8 RGB (evaluate_GOPRO_HIDE.m)"
    table = "RDDM Table 9 (and the talk's Table 3(e))"
    mean_columns = ("psnr", "ssim", "lpips")

    OPTIONS = {
        **_RestorationProtocol.OPTIONS,
        "size": ("prediction", "native"),
        "ssim_form": ("matlab-volume", "wang", "skimage"),
    }

    def measure(self, pred, target, mask):
        pred, target = _same_size(pred, target, self.size)
        columns = self._psnr_ssim(pred, target, self.ssim_form)
        unavailable: dict[str, str] = {}
        self._lpips_column(pred, target, columns, unavailable)
        return columns, unavailable

    def conventions(self) -> dict[str, Any]:
        return {
            "resize": _SIZE_CONVENTION[self.size],
            "channel": "RGB uint8, data range 255",
            "ssim_form": f"{self.ssim_form}: {SSIM_FORMS[self.ssim_form]}",
            "unverified": ["ssim_form matlab-volume"] if self.ssim_form == "matlab-volume" else [],
            **self._lpips_meta(),
        }


@PROTOCOLS.register("rgb")
class Rgb(_RestorationProtocol):
    """Plain RGB at native size: no resizing, no colour conversion.

    PSNR on uint8 RGB with peak 255 (MSE over all channels); Wang SSIM (11x11 Gaussian,
    sigma 1.5, 'valid', L = 255) per channel, averaged (skimage ``channel_axis=-1`` with
    the Wang settings); LPIPS (alex v0.1) at native size. Predictions and ground truth must
    have the same size.
    """

    name = "rgb"
    description = "Plain RGB at native size: PSNR (peak 255), Wang SSIM per channel, LPIPS"
    table = "none (harness default for comparing methods under one convention)"
    mean_columns = ("psnr", "ssim", "lpips")
    lpips_resized = False
    resizes = False

    OPTIONS = {
        **_RestorationProtocol.OPTIONS,
        "channel": ("rgb", "y"),
        "ssim_form": ("wang", "skimage"),
    }

    def measure(self, pred, target, mask):
        self._require_window(pred, 11, self.name)
        a, b = (pred, target) if self.channel == "rgb" else (rgb_to_y(pred), rgb_to_y(target))
        columns = self._psnr_ssim(a, b, self.ssim_form)
        unavailable: dict[str, str] = {}
        self._lpips_column(pred, target, columns, unavailable)
        return columns, unavailable

    def conventions(self) -> dict[str, Any]:
        channel = "RGB uint8" if self.channel == "rgb" else "BT.601 Y (rgb2ycbcr, rounded)"
        return {
            "resize": "none (native size)",
            "channel": f"{channel}, data range 255",
            "ssim_form": f"{self.ssim_form}: {SSIM_FORMS[self.ssim_form]}",
            **self._lpips_meta(),
        }
