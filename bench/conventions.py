"""The evaluation conventions the literature uses, as data (no torch: manifests and the CLI
read the names without loading the metrics).

Each paper protocol (``istd``, ``lol``, ...) fixes one convention per choice an evaluation
script makes. A :class:`Convention` changes one of those choices and names who makes it
that way. Every convention that scores differently is also a protocol of its own,
``<base>-<suffix>`` (``istd-origin``, ``lol-gtmean``), that users can pick; all of them are
rows of the protocol audit (`bench score --audit`, docs/protocols.md), which scores one set
of outputs under each to show how far the headline numbers move.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

V = TypeVar("V")


@dataclass(frozen=True)
class MetricSpec:
    """One headline metric of a protocol: the column title tables print, the key of its value
    in the protocol's summary, its unit and which way is better."""

    title: str
    key: str
    unit: str
    direction: Literal["higher", "lower"]

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"

    @property
    def group(self) -> str:
        """The metric group that computes it ("psnr", "ssim", "mae", "lpips"): a summary key
        starts with its group's name (``mae_s_pi``, ``psnr_all``)."""
        return self.key.split("_", 1)[0]


Stream = Literal["result", "audit", "curve", "interval"]


@dataclass(frozen=True)
class MetricKey:
    """The name a run logs a protocol's value under, typed instead of a string built in one
    layer and re-parsed in others: ``<protocol>/<metric>`` for a result (``istd/psnr_all``,
    ``celeba/fid``), ``audit/<protocol>/<metric>`` for the protocol audit and
    ``curve/<protocol>/<metric>`` for a point of the learning curve and
    ``interval/<protocol>/<metric>_<what>`` for the intervals and tests of a value
    (docs/statistics.md: ``psnr_all_ci_low``, ``psnr_all_vs_identity_ci_high``, ...)."""

    protocol: str
    metric: str
    stream: Stream = "result"

    def __str__(self) -> str:
        name = f"{self.protocol}/{self.metric}"
        return name if self.stream == "result" else f"{self.stream}/{name}"

    @classmethod
    def parse(cls, text: str) -> MetricKey | None:
        """The key ``text`` names, or None for a metric that is no protocol's (``train/loss``
        is read as protocol "train": callers ask for the protocols they know)."""
        parts = text.split("/")
        if len(parts) == 3 and parts[0] in ("audit", "curve", "interval"):
            return cls(parts[1], parts[2], parts[0])  # type: ignore[arg-type]
        if len(parts) == 2 and all(parts):
            return cls(parts[0], parts[1])
        return None


def logged(protocol: str, values: Mapping[str, V], stream: Stream = "result") -> dict[str, V]:
    """``values`` (summary key -> value) under the names a run logs them with."""
    return {str(MetricKey(protocol, key, stream)): value for key, value in values.items()}


_PSNR = MetricSpec("PSNR", "psnr", "dB", "higher")
_SSIM = MetricSpec("SSIM", "ssim", "", "higher")
_LPIPS = MetricSpec("LPIPS", "lpips", "", "lower")
_RESTORATION = (_PSNR, _SSIM, _LPIPS)

#: The registry of protocol names (torch-free, for manifests and the CLI): each protocol that
#: reproduces a paper's script -> its headline metrics; none for the set metrics of
#: generation. A new protocol is its class file in bench/protocols/ plus one line here.
PROTOCOL_HEADLINES: dict[str, tuple[MetricSpec, ...]] = {
    "istd": (
        MetricSpec("PSNR", "psnr_all", "dB", "higher"),
        MetricSpec("SSIM", "ssim_all", "", "higher"),
        MetricSpec("MAE", "mae_all_pi", "LAB", "lower"),
        # the shadow region: where mask conventions show
        MetricSpec("MAE S", "mae_s_pi", "LAB", "lower"),
        _LPIPS,
    ),
    "lol": _RESTORATION,
    "sid": _RESTORATION,
    "raindrop": _RESTORATION,
    "gopro": _RESTORATION,
    "rgb": _RESTORATION,
    "sr-y": (_PSNR, _SSIM),
    "sr-rgb": (_PSNR, _SSIM),
    "sr3-faces": (_PSNR, _SSIM, MetricSpec("Consistency", "consistency", "MSE", "lower")),
    "celeba": (),
    "cifar10": (),
}
#: summary values compared beside the headlines (`bench compare`): ISTD's per-pixel MAE, which
#: RDDM's and Resfusion's scripts print beside the per-image one
PROTOCOL_SECONDARY: dict[str, tuple[MetricSpec, ...]] = {
    "istd": (
        MetricSpec("MAE pp", "mae_all_pp", "LAB", "lower"),
        MetricSpec("MAE S pp", "mae_s_pp", "LAB", "lower"),
    ),
}
#: what generation protocols report instead of per-image values: set metrics
SET_METRICS = (
    MetricSpec("FID", "fid", "", "lower"),
    MetricSpec("KID", "kid", "", "lower"),
    MetricSpec("IS", "isc", "", "higher"),
)
#: the columns `bench run` prints for a protocol, in order, where they are more than its
#: headlines: ISTD's regions (every value is logged either way)
PRINTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "istd": (
        "psnr_all", "psnr_s", "psnr_ns", "ssim_all", "mae_all_pi", "mae_s_pi", "mae_ns_pi",
        "lpips",
    ),
}  # fmt: skip
BASE_PROTOCOLS = tuple(PROTOCOL_HEADLINES)
#: the protocols with headline metrics (those the audit and the learning curves follow)
HEADLINES = {name: metrics for name, metrics in PROTOCOL_HEADLINES.items() if metrics}


@dataclass(frozen=True)
class Convention:
    """One way of evaluating that differs from the base protocol in one choice."""

    base: str
    suffix: str
    label: str  # what changes, in words
    used_by: str  # the paper or script that evaluates this way
    options: dict[str, Any] = field(default_factory=dict)  # the base protocol's options
    reads: dict[str, str] = field(default_factory=dict)  # headline title -> summary key
    #: the metric groups ("psnr", "ssim", "mae", "lpips") the options can change; the audit
    #: computes only these and takes the others from the paper's result (empty: all).
    #: tests/metrics/test_conventions.py checks every declaration on full evaluations.
    recomputes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``<base>-<suffix>``: the protocol's name, or the audit row's for a convention that
        only reads another summary value of the base protocol."""
        return f"{self.base}-{self.suffix}"

    @property
    def is_protocol(self) -> bool:
        """Whether the convention scores differently (a protocol of its own); False: it only
        reads other values of the base protocol's result."""
        return bool(self.options)


_LPIPS_V0 = ("lpips-v0", "LPIPS v0.0 linear heads (v0.1 in the papers' scripts)",
             "lpips.LPIPS(version='0.0'), the package's first release", {"lpips_version": "0.0"},
             {}, ("lpips",))  # fmt: skip
_PSNR_SSIM = ("psnr", "ssim")


def _y_channel_family(base: str, low_light: bool) -> tuple[Convention, ...]:
    rows = [
        Convention(base, "native", "scored at the ground truth's size (prediction resized "
                   "to it) instead of the prediction's (256x256 for RDDM)",
                   "Resfusion's native-size metrics (LLFlow Measure.py at 600x400)"
                   if low_light else "scripts that score at the dataset's own size",
                   {"size": "native"}),
        Convention(base, "256", "prediction and ground truth both resized to 256x256 "
                   "before scoring, whatever the prediction's size (the prediction's: 256x256 "
                   "for RDDM)", "Resfusion's 256x256 columns (its outputs are at the files' "
                   "size)", {"size": "256"}),
        Convention(base, "in-rgb", "PSNR on RGB and scikit-image SSIM per channel "
                   "(7x7 uniform window) instead of the BT.601 Y channel",
                   "Resfusion's skimage metrics (channel_axis=-1); LLFlow Measure.py PSNR",
                   {"channel": "rgb"}, recomputes=_PSNR_SSIM),
        Convention(base, "yiq", "Y of YIQ (0.299 R + 0.587 G + 0.114 B, full range) "
                   "instead of Y of rgb2ycbcr (studio swing, rounded)",
                   "pyiqa's psnry/ssim default color_space='yiq'; MATLAB rgb2ntsc",
                   {"channel": "yiq"}, recomputes=_PSNR_SSIM),
    ]  # fmt: skip
    if low_light:
        rows.append(
            Convention(base, "gtmean", "prediction rescaled so its mean matches the ground "
                       "truth's grey mean before scoring (GT-mean brightness correction)",
                       "LLFlow test.py, after KinD evaluate_LOLdataset.py",
                       {"gt_mean": True})
        )  # fmt: skip
    rows.append(Convention(base, *_LPIPS_V0))
    return tuple(rows)


CONVENTIONS: tuple[Convention, ...] = (
    Convention("istd", "fu", "imresize on uint8, then double, for PSNR and SSIM too "
               "(the script: double, then imresize)", "fu_cvpr2021 (the script's header)",
               {"order": "resize-then-double"}, recomputes=_PSNR_SSIM),
    Convention("istd", "origin", "native size (ISTD: 640x480), no imresize at all (the "
               "script: 256x256)",
               "Resfusion evaluate_ISTD_results_origin.m; wang_cvpr2018, le_iccv2019",
               {"size": None}),
    Convention("istd", "mae-pp", "MAE per pixel (sum over all images / all pixels) instead "
               "of the mean of per-image MAE", "the script prints both (PP-Lab, PI-Lab)",
               reads={"MAE": "mae_all_pp", "MAE S": "mae_s_pp"}),
    Convention("istd", "d65", "Lab with the D65 white instead of MATLAB makecform's D50",
               "Python ports with scikit-image rgb2lab defaults", {"white": "d65"},
               recomputes=("mae",)),
    Convention("istd", "mask-half", "shadow = resized mask >= 0.5 instead of != 0",
               "Python ports that binarise the mask at one half",
               {"mask_threshold": "half"}, recomputes=_PSNR_SSIM + ("mae",)),
    Convention("istd", "ssim-channels", "SSIM per RGB channel (11x11 Gaussian, 'valid'), "
               "averaged, instead of MATLAB ssim's 3-D volume",
               "BasicSR calculate_ssim; scikit-image channel_axis=-1",
               {"ssim_form": "wang"}, recomputes=("ssim",)),
    Convention("istd", *_LPIPS_V0),
    *_y_channel_family("lol", low_light=True),
    *_y_channel_family("sid", low_light=True),
    *_y_channel_family("raindrop", low_light=False),
    Convention("gopro", "native", "scored at 1280x720 (prediction resized to it) instead "
               "of the prediction's 256x256", "the deblurring literature (MPRNet, Restormer)",
               {"size": "native"}),
    Convention("gopro", "ssim-channels", "SSIM per RGB channel (11x11 Gaussian, 'valid') "
               "instead of MATLAB ssim's 3-D volume", "BasicSR calculate_ssim",
               {"ssim_form": "wang"}, recomputes=("ssim",)),
    Convention("gopro", *_LPIPS_V0),
    Convention("rgb", "y", "BT.601 Y channel (rgb2ycbcr, rounded) instead of RGB",
               "MPRNet evaluate_PSNR_SSIM.m; BasicSR test_y_channel", {"channel": "y"},
               recomputes=_PSNR_SSIM),
    Convention("rgb", "skimage-ssim", "scikit-image SSIM defaults (7x7 uniform window, "
               "sample covariance) instead of Wang's Gaussian",
               "structural_similarity(channel_axis=-1) without gaussian_weights",
               {"ssim_form": "skimage"}, recomputes=("ssim",)),
    Convention("rgb", *_LPIPS_V0),
    Convention("sr-y", "noshave", "no border shaved (the SR scripts shave scale pixels)",
               "SR3's core/metrics.py; scripts that score the whole image", {"shave": False}),
    Convention("sr-y", "in-rgb", "PSNR and SSIM on RGB instead of the BT.601 Y channel",
               "SR3's core/metrics.py; EDSR's DIV2K validation", {"channel": "rgb"}),
    Convention("sr-y", "unrounded", "Y as an unrounded float (the scripts: uint8 rgb2ycbcr, "
               "rounded)", "BasicSR calculate_psnr/ssim with test_y_channel (bgr2ycbcr)",
               {"rounded_y": False}),
)  # fmt: skip

VARIANTS: dict[str, Convention] = {c.name: c for c in CONVENTIONS if c.is_protocol}


def protocol_names() -> tuple[str, ...]:
    """Every protocol a manifest, `bench score` or `bench data add` may name."""
    return BASE_PROTOCOLS + tuple(VARIANTS)


def conventions_for(base: str) -> tuple[Convention, ...]:
    return tuple(c for c in CONVENTIONS if c.base == base)


def base_of(protocol: str) -> str:
    """The paper protocol a variant changes (a paper protocol is its own base)."""
    return VARIANTS[protocol].base if protocol in VARIANTS else protocol


def printed_columns(protocol: str) -> tuple[str, ...]:
    """What `bench run` prints for ``protocol``: its declared columns, else its headlines,
    else (generation) its set metrics."""
    base = base_of(protocol)
    if base in PRINTED_COLUMNS:
        return PRINTED_COLUMNS[base]
    return tuple(spec.key for spec in HEADLINES.get(base) or SET_METRICS)


def identity_label(task: str | None) -> str:
    """The row of the degraded input scored as the output: for super-resolution that input is
    the bicubic-upsampled LR, the field's baseline."""
    return "bicubic (input)" if task == "super-resolution" else "identity (input)"
