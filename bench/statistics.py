"""Is a difference real? Paired intervals and tests over images, and seeds x images intervals.

Every number here is computed by scipy (``scipy.stats.bootstrap``, ``wilcoxon``,
``permutation_test``); this module chooses what is resampled and records every setting with
the result. docs/statistics.md states what each interval assumes.

A protocol's summary value is one of two aggregates of its per-image table
(:class:`Aggregate`): the mean of a column (PSNR, SSIM, per-image MAE, LPIPS), or a ratio of
two column sums (ISTD's per-pixel MAE: all absolute Lab errors over all pixels). Both are
resampled over images, pairing A's and B's scores of the same image. Set metrics (FID, KID,
IS) are computed from the whole set at once and have no per-image value to resample.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

Direction = Literal["higher", "lower"]

#: a difference is called significant below this Holm-adjusted p-value
ALPHA = 0.05


@dataclass(frozen=True)
class BootstrapSettings:
    """What every interval and permutation test of one comparison was computed with."""

    resamples: int = 10_000
    confidence: float = 0.95
    method: Literal["BCa", "percentile", "basic"] = "BCa"
    seed: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


#: 10,000 resamples, 95 %, BCa, seed 0
DEFAULT_SETTINGS = BootstrapSettings()


@dataclass(frozen=True)
class Aggregate:
    """How a summary value comes from the per-image table: the mean of ``column`` (images
    whose value is NaN left out, as ``nanmean`` does), or ``column`` summed over images
    divided by ``denominator`` summed over images."""

    column: str
    denominator: str | None = None

    @property
    def columns(self) -> list[str]:
        """The per-image columns the aggregate reads."""
        return [self.column] + ([self.denominator] if self.denominator else [])

    @property
    def resampled(self) -> str:
        if self.denominator is None:
            return f"images (the mean of per-image {self.column})"
        return f"images (the ratio of sums {self.column} / {self.denominator})"

    def value(self, frame: pd.DataFrame) -> float:
        if self.denominator is None:
            return float(np.nanmean(frame[self.column].to_numpy(np.float64)))
        return float(frame[self.column].sum() / frame[self.denominator].sum())


@dataclass(frozen=True)
class PairedDifference:
    """A − B for one metric over the images both scored. Entries that cannot be computed are
    None, and ``note`` says why."""

    metric: str
    direction: Direction
    resampled: str
    mean_diff: float
    ci_low: float | None
    ci_high: float | None
    p_wilcoxon: float | None
    p_permutation: float | None
    n_images: int
    a_wins: int | None
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def excludes_zero(self) -> bool:
        return (
            self.ci_low is not None
            and self.ci_high is not None
            and (self.ci_low > 0 or self.ci_high < 0)
        )

    @property
    def a_is_worse(self) -> bool:
        """The whole interval says A is worse than B (below zero for a higher-is-better
        metric, above it for a lower-is-better one)."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_high < 0 if self.direction == "higher" else self.ci_low > 0


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a - b, axis=axis)


def _quiet(function, *args, **kwargs):
    """scipy warns when an interval degenerates; the caller reports that case in words."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(*args, **kwargs)


def paired_difference(
    metric: str,
    a: pd.DataFrame,
    b: pd.DataFrame,
    aggregate: Aggregate,
    direction: Direction,
    settings: BootstrapSettings = DEFAULT_SETTINGS,
) -> PairedDifference:
    """A − B of ``aggregate`` over the rows of ``a`` and ``b`` (the same images, in the same
    order): the difference, its bootstrap interval over images (paired), the Wilcoxon
    signed-rank and paired permutation p-values, and the images where A is better."""
    if len(a) != len(b):
        raise ValueError(f"{metric}: {len(a)} images in A but {len(b)} in B")
    a_values = [a[c].to_numpy(np.float64) for c in aggregate.columns]
    b_values = [b[c].to_numpy(np.float64) for c in aggregate.columns]
    keep = np.all(np.isfinite(np.stack(a_values + b_values)), axis=0)
    a_values = [v[keep] for v in a_values]
    b_values = [v[keep] for v in b_values]
    n = int(keep.sum())
    skipped = f"; {len(a) - n} image(s) without a value left out" if n < len(a) else ""
    base = {"metric": metric, "direction": direction, "resampled": aggregate.resampled}
    if n == 0:
        return PairedDifference(**base, mean_diff=float("nan"), ci_low=None, ci_high=None,
                                p_wilcoxon=None, p_permutation=None, n_images=0, a_wins=None,
                                note="no image has a value in both")  # fmt: skip
    if aggregate.denominator is None:
        difference = a_values[0] - b_values[0]
        mean_diff = float(difference.mean())
        better = difference > 0 if direction == "higher" else difference < 0
        a_wins: int | None = int(better.sum())
        data: tuple[np.ndarray, ...] = (a_values[0], b_values[0])
        statistic = _mean_difference
    else:
        # a ratio of sums has no per-image difference: no signed-rank test, no image "wins"
        a_num, a_den = a_values
        b_num, b_den = b_values
        difference = None
        mean_diff = float(a_num.sum() / a_den.sum() - b_num.sum() / b_den.sum())
        a_wins = None
        data = (a_num, a_den, b_num, b_den)

        def statistic(an, ad, bn, bd, axis=-1):
            return an.sum(axis) / ad.sum(axis) - bn.sum(axis) / bd.sum(axis)

    notes = []
    if aggregate.denominator is not None:
        notes.append("ratio of sums: no per-image difference for the signed-rank test")
    if n < 2:
        return PairedDifference(**base, mean_diff=mean_diff, ci_low=None, ci_high=None,
                                p_wilcoxon=None, p_permutation=None, n_images=n, a_wins=a_wins,
                                note="one image: no interval or test" + skipped)  # fmt: skip
    ci_low, ci_high = _paired_interval(data, statistic, difference, mean_diff, settings, notes)
    p_wilcoxon, p_permutation = _paired_tests(data, statistic, difference, settings, notes)
    return PairedDifference(
        **base, mean_diff=mean_diff, ci_low=ci_low, ci_high=ci_high, p_wilcoxon=p_wilcoxon,
        p_permutation=p_permutation, n_images=n, a_wins=a_wins, note="; ".join(notes) + skipped,
    )  # fmt: skip


def _paired_interval(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., Any],
    difference: np.ndarray | None,
    mean_diff: float,
    settings: BootstrapSettings,
    notes: list[str],
) -> tuple[float | None, float | None]:
    """The paired bootstrap interval of A − B (None where the method cannot give one)."""
    if difference is not None and np.ptp(difference) == 0:
        # every image moves by the same amount: the resampled statistic never varies
        notes.append("the difference is the same on every image: the interval is that value")
        return mean_diff, mean_diff
    result = _quiet(
        stats.bootstrap, data, statistic, paired=True, method=settings.method,
        confidence_level=settings.confidence, rng=np.random.default_rng(settings.seed),
        n_resamples=settings.resamples, vectorized=True,
    )  # fmt: skip
    ci_low, ci_high = (float(v) for v in result.confidence_interval)
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        notes.append(f"the {settings.method} interval is undefined for these values")
        return None, None
    return ci_low, ci_high


def _paired_tests(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., Any],
    difference: np.ndarray | None,
    settings: BootstrapSettings,
    notes: list[str],
) -> tuple[float | None, float | None]:
    """The Wilcoxon signed-rank p-value (per-image differences only) and the paired
    permutation p-value; None where A and B score the same on every image."""
    common = {"n_resamples": settings.resamples, "vectorized": True,
              "rng": np.random.default_rng(settings.seed), "permutation_type": "samples"}  # fmt: skip
    if difference is None:
        # swap A's and B's (numerator, denominator) image by image: scipy permutes the two
        # samples of row indices into the stacked values, A's rows first
        a_num, a_den, b_num, b_den = data
        numerators, denominators = np.concatenate([a_num, b_num]), np.concatenate([a_den, b_den])

        def swapped(a_rows, b_rows, axis=-1):
            a_rows, b_rows = a_rows.astype(int), b_rows.astype(int)
            return statistic(numerators[a_rows], denominators[a_rows],
                             numerators[b_rows], denominators[b_rows], axis)  # fmt: skip

        n = len(a_num)
        rows = (np.arange(n, dtype=float), np.arange(n, 2 * n, dtype=float))
        return None, float(_quiet(stats.permutation_test, rows, swapped, **common).pvalue)
    if not np.any(difference != 0):
        notes.append("A and B score the same on every image: no signed-rank test")
        return None, None
    p_wilcoxon = float(_quiet(stats.wilcoxon, difference).pvalue)
    return p_wilcoxon, float(_quiet(stats.permutation_test, data, statistic, **common).pvalue)


@dataclass(frozen=True)
class Estimate:
    """One side's value of a metric and its bootstrap interval over images."""

    value: float
    ci_low: float | None
    ci_high: float | None
    n_images: int


def estimate(
    frame: pd.DataFrame, aggregate: Aggregate, settings: BootstrapSettings = DEFAULT_SETTINGS
) -> Estimate:
    """``aggregate`` of ``frame`` with its interval from resampling images: how far the value
    could move on another draw of test images like these (one training seed)."""
    values = [frame[c].to_numpy(np.float64) for c in aggregate.columns]
    keep = np.all(np.isfinite(np.stack(values)), axis=0)
    values = [v[keep] for v in values]
    n = int(keep.sum())
    value = aggregate.value(frame)
    if n < 2 or all(np.ptp(v) == 0 for v in values):
        return Estimate(value, None if n < 2 else value, None if n < 2 else value, n)
    if aggregate.denominator is None:
        data, statistic = (values[0],), np.mean
    else:
        data = tuple(values)

        def statistic(numerator, denominator, axis=-1):
            return numerator.sum(axis) / denominator.sum(axis)

    result = _quiet(
        stats.bootstrap, data, statistic, paired=True, vectorized=True,
        n_resamples=settings.resamples, method=settings.method,
        confidence_level=settings.confidence, rng=np.random.default_rng(settings.seed),
    )  # fmt: skip
    low, high = (float(v) for v in result.confidence_interval)
    if not (np.isfinite(low) and np.isfinite(high)):
        return Estimate(value, None, None, n)
    return Estimate(value, low, high, n)


def flags(
    worse_than_input: bool, p_input: float | None, is_best: bool, p_best: float | None
) -> list[str]:
    """The words `bench run` and the report put beside a method: worse than the input (its
    whole interval on the worse side), not significant (Holm-adjusted p of ``ALPHA`` or
    more) against the input or the best, or the best itself."""
    out = []
    if worse_than_input:
        out.append("worse than the input")
    elif p_input is not None and p_input >= ALPHA:
        out.append("not significant vs input")
    if is_best:
        out.append("best")
    elif p_best is not None and p_best >= ALPHA:
        out.append("not significant vs best")
    return out


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None entries are not tests and
    stay None): the i-th smallest of m is multiplied by m − i + 1, then made monotone."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class SeedSpread:
    """A method's score over seeds: the per-seed values' mean, standard deviation (n − 1) and
    count, and an interval for the mean that resamples seeds and images together."""

    mean: float
    std: float | None
    n_seeds: int
    n_images: int
    ci_low: float | None
    ci_high: float | None
    settings: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def logged(self, key: str) -> dict[str, float]:
        """What each run of the method logs, suffixed to the metric's key."""
        values = {"seeds_mean": self.mean, "seeds_std": self.std, "seeds_n": self.n_seeds,
                  "seeds_ci_low": self.ci_low, "seeds_ci_high": self.ci_high}  # fmt: skip
        return {f"{key}_{name}": v for name, v in values.items() if v is not None}


def seed_image_interval(
    scores: np.ndarray, settings: BootstrapSettings = DEFAULT_SETTINGS
) -> SeedSpread:
    """``scores[s, i]``: image i's score under seed s (every seed scores the same images).

    Two-level bootstrap of the grand mean: seeds and images are each drawn with replacement,
    independently (scipy resamples the two index samples), and the mean is taken over the
    crossed rows and columns; docs/statistics.md states the assumptions. The percentile
    interval: BCa's jackknife is undefined with one seed left out of two."""
    scores = np.asarray(scores, np.float64)
    n_seeds, n_images = scores.shape
    per_seed = scores.mean(axis=1)
    std = float(per_seed.std(ddof=1)) if n_seeds > 1 else None
    record = settings.as_dict() | {"method": "percentile", "levels": "seeds, then images"}
    if n_seeds < 2 or n_images < 2:
        return SeedSpread(float(per_seed.mean()), std, n_seeds, n_images, None, None, record)

    def grand_mean(seed_index, image_index, axis=-1):
        picked = scores[seed_index.astype(int)][..., image_index.astype(int)]
        return picked.mean(axis=(-2, -1))

    def statistic(seed_index, image_index, axis=-1):
        if seed_index.ndim == 1:
            return grand_mean(seed_index, image_index)
        return np.array([grand_mean(s, i) for s, i in zip(seed_index, image_index, strict=True)])

    result = _quiet(
        stats.bootstrap,
        (np.arange(n_seeds, dtype=float), np.arange(n_images, dtype=float)),
        statistic,
        paired=False,
        vectorized=True,
        n_resamples=settings.resamples,
        method="percentile",
        confidence_level=settings.confidence,
        rng=np.random.default_rng(settings.seed),
    )
    low, high = (float(v) for v in result.confidence_interval)
    return SeedSpread(float(per_seed.mean()), std, n_seeds, n_images, low, high, record)


def format_difference(mean: float, low: float | None, high: float | None) -> str:
    """``+1.23 [+0.80, +1.81]``: one precision for the three numbers, hundredths from 1 up
    (dB), four decimals below (SSIM); how `bench run` and the report print a gap."""
    values = [v for v in (mean, low, high) if v is not None]
    digits = 2 if max(abs(v) for v in values) >= 1 else 4
    text = f"{mean:+.{digits}f}"
    return (
        f"{text} [{low:+.{digits}f}, {high:+.{digits}f}]"
        if low is not None and high is not None
        else text
    )
