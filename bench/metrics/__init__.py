"""Metric functions on batched tensors (see protocols for the paper conventions)."""

from bench.metrics.color import rgb_to_lab, rgb_to_y
from bench.metrics.fullref import SSIM_FORMS, psnr, region_abs_sums, ssim
from bench.metrics.resize import imresize
from bench.metrics.result import MetricResult

__all__ = [
    "SSIM_FORMS",
    "MetricResult",
    "imresize",
    "psnr",
    "region_abs_sums",
    "rgb_to_lab",
    "rgb_to_y",
    "ssim",
]
