"""A against B: every compared metric of a protocol with its paired interval and tests, and
how far apart the two sets of output images are, image by image.

The per-image tables are what ``bench score`` writes and every run logs (``per_image.csv``);
they pair by their ``name`` column. The statistics are bench.statistics'; this module decides
which metrics are compared and says why a metric has no interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.conventions import HEADLINES, PROTOCOL_SECONDARY, SET_METRICS, MetricSpec, base_of
from bench.errors import UsageError
from bench.files import read_image
from bench.protocols.base import Protocol
from bench.statistics import (
    DEFAULT_SETTINGS,
    Aggregate,
    BootstrapSettings,
    Estimate,
    PairedDifference,
    SeedSpread,
    flags,
    paired_difference,
    seed_image_interval,
)

#: why a set metric has no interval (said in every comparison that meets one)
SET_METRIC_REASON = (
    "no interval: a set metric is computed from the whole set of images at once, so there is "
    "no per-image value to resample (an interval would need the Inception statistics of "
    "every resample)"
)


def compared_metrics(protocol: Protocol) -> tuple[MetricSpec, ...]:
    """The headline metrics of ``protocol`` and the values compared beside them; the set
    metrics for a protocol with no per-image headlines (generation)."""
    base = base_of(protocol.name)
    specs = HEADLINES.get(base, ()) + PROTOCOL_SECONDARY.get(base, ())
    return specs or SET_METRICS


def pair_tables(a: pd.DataFrame, b: pd.DataFrame, a_label: str, b_label: str):
    """A's and B's rows of the same images, in the same order; any image scored by one side
    alone is an error that names it."""
    only_a = sorted(set(a["name"]) - set(b["name"]))
    only_b = sorted(set(b["name"]) - set(a["name"]))
    if only_a or only_b:
        parts = [f"{len(names)} image(s) only in {label}: {', '.join(map(str, names[:5]))}"
                 for names, label in ((only_a, a_label), (only_b, b_label)) if names]  # fmt: skip
        raise UsageError(
            f"{'; '.join(parts)}; a comparison pairs the same images on both sides (score "
            "both on the same split)"
        )
    order = sorted(a["name"])
    return (
        a.set_index("name").loc[order].reset_index(),
        b.set_index("name").loc[order].reset_index(),
    )


@dataclass(frozen=True)
class Unpaired:
    """A compared metric without an interval, and why."""

    metric: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        keys = ("mean_diff", "ci_low", "ci_high", "p_wilcoxon", "p_permutation")
        return dict.fromkeys(keys) | {"n_images": None, "a_wins": None, "note": self.reason}


def compare_tables(
    a: pd.DataFrame,
    b: pd.DataFrame,
    protocol: Protocol,
    settings: BootstrapSettings = DEFAULT_SETTINGS,
    labels: tuple[str, str] = ("A", "B"),
    set_values: tuple[Mapping[str, float], Mapping[str, float]] | None = None,
) -> dict[str, PairedDifference | Unpaired]:
    """Each compared metric's A − B (``compared_metrics``), keyed as the protocol's summary
    names it. ``set_values``: A's and B's set metrics (FID...) when known, whose difference
    is given without an interval."""
    a, b = pair_tables(a, b, *labels)
    out: dict[str, PairedDifference | Unpaired] = {}
    for spec in compared_metrics(protocol):
        aggregate = protocol.aggregate(spec.key)
        if aggregate is None:
            reason = SET_METRIC_REASON
            if set_values and all(spec.key in side for side in set_values):
                difference = set_values[0][spec.key] - set_values[1][spec.key]
                reason = f"difference {difference:.4g}; {reason}"
            out[spec.key] = Unpaired(spec.key, reason)
            continue
        missing = [
            label for label, table in zip(labels, (a, b), strict=True) if not _has(table, aggregate)
        ]
        if missing:
            out[spec.key] = Unpaired(
                spec.key, f"not scored for {' and '.join(missing)} (no per-image values)"
            )
            continue
        out[spec.key] = paired_difference(spec.key, a, b, aggregate, spec.direction, settings)
    return out


@dataclass(frozen=True)
class OutputDifference:
    """How far A's output images are from B's, image by image (values in 0-255)."""

    n_images: int
    identical: int
    max_abs_diff: int
    mean_abs_diff: float
    differing_pixels: float  # share of all pixel values that differ
    worst: str | None  # the image with the largest mean absolute difference
    worst_psnr: float | None  # PSNR between A's and B's version of that image
    shapes_differ: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "n_images": self.n_images,
            "bit_identical": self.identical == self.n_images and not self.shapes_differ,
            "identical_images": self.identical,
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.mean_abs_diff,
            "differing_values": self.differing_pixels,
            "worst_image": self.worst,
            "worst_psnr": self.worst_psnr,
            "shapes_differ": list(self.shapes_differ),
        }

    def describe(self) -> str:
        if self.n_images == 0:
            return "outputs: not compared (one side recorded no output images)"
        if self.identical == self.n_images and not self.shapes_differ:
            return f"outputs: bit-identical on all {self.n_images} images"
        text = (
            f"outputs: {self.n_images - self.identical} of {self.n_images} images differ; "
            f"max |A − B| {self.max_abs_diff} of 255, mean {self.mean_abs_diff:.4f}; "
            f"{100 * self.differing_pixels:.2f}% of values differ"
        )
        if self.worst is not None:
            text += f"; farthest apart: {self.worst} (PSNR {self.worst_psnr:.2f} dB between them)"
        if self.shapes_differ:
            text += f"; sizes differ: {', '.join(self.shapes_differ[:5])}"
        return text


def output_difference(a_files: Mapping[str, Path], b_files: Mapping[str, Path]) -> OutputDifference:
    """Compare the two sides' output images of the same names, pixel by pixel."""
    names = sorted(set(a_files) & set(b_files))
    identical, max_abs, total_abs, differing, values = 0, 0, 0.0, 0, 0
    worst, worst_mean, shapes = None, -1.0, []
    for name in names:
        a = read_image(a_files[name]).astype(np.int16)
        b = read_image(b_files[name]).astype(np.int16)
        if a.shape != b.shape:
            shapes.append(name)
            continue
        difference = np.abs(a - b)
        values += difference.size
        changed = int(np.count_nonzero(difference))
        identical += changed == 0
        differing += changed
        max_abs = max(max_abs, int(difference.max()))
        total_abs += float(difference.sum())
        mean = float(difference.mean())
        if changed and mean > worst_mean:
            worst, worst_mean = name, mean
    worst_psnr = None
    if worst is not None:
        mse = float(np.mean((read_image(a_files[worst]).astype(np.float64)
                             - read_image(b_files[worst]).astype(np.float64)) ** 2))  # fmt: skip
        worst_psnr = 10 * np.log10(255.0**2 / mse)
    return OutputDifference(
        n_images=len(names),
        identical=identical,
        max_abs_diff=max_abs,
        mean_abs_diff=total_abs / values if values else 0.0,
        differing_pixels=differing / values if values else 0.0,
        worst=worst,
        worst_psnr=worst_psnr,
        shapes_differ=tuple(shapes),
    )


# -- a grid's cells against the input and against their table's best ------------------------


@dataclass(frozen=True)
class CellComparison:
    """One cell's value of one metric: its interval over images, its difference from the
    identity baseline (the degraded input) and from the best cell of its seed, each with
    Holm's adjustment across the cells of that seed."""

    spec: MetricSpec
    estimate: Estimate
    vs_identity: PairedDifference | None = None
    vs_identity_p_holm: float | None = None
    vs_best: PairedDifference | None = None  # None for the best cell itself
    vs_best_p_holm: float | None = None
    is_best: bool = False

    @property
    def worse_than_input(self) -> bool:
        return self.vs_identity is not None and self.vs_identity.a_is_worse

    @property
    def flags(self) -> list[str]:
        return flags(
            self.worse_than_input, self.vs_identity_p_holm, self.is_best, self.vs_best_p_holm
        )

    def logged(self) -> dict[str, float]:
        """The values a run logs, suffixed to the metric's key (``psnr_all_ci_low``,
        ``psnr_all_vs_identity_ci_high``, ...)."""
        key = self.spec.key
        out = {}
        if self.estimate.ci_low is not None:
            out |= {f"{key}_ci_low": self.estimate.ci_low, f"{key}_ci_high": self.estimate.ci_high}
        for name, difference, adjusted in (
            ("identity", self.vs_identity, self.vs_identity_p_holm),
            ("best", self.vs_best, self.vs_best_p_holm),
        ):
            if difference is None:
                continue
            values = {
                "diff": difference.mean_diff,
                "ci_low": difference.ci_low,
                "ci_high": difference.ci_high,
                "p_permutation": difference.p_permutation,
                "p_holm": adjusted,
            }
            out |= {f"{key}_vs_{name}_{k}": v for k, v in values.items() if v is not None}
        return out


def compare_grid(
    tables: Mapping[int, pd.DataFrame],
    seeds: Mapping[int, int],
    identity: pd.DataFrame | None,
    protocol: Protocol,
    settings: BootstrapSettings = DEFAULT_SETTINGS,
) -> dict[int, dict[str, CellComparison]]:
    """Per cell (an index into ``tables``, its per-image scores; ``seeds`` its seed), per
    headline metric that is an aggregate over images: :class:`CellComparison`."""
    out: dict[int, dict[str, CellComparison]] = {index: {} for index in tables}
    for spec in HEADLINES.get(base_of(protocol.name), ()):
        aggregate = protocol.aggregate(spec.key)
        if aggregate is None:
            continue
        present = {i: t for i, t in tables.items() if _has(t, aggregate)}
        for seed in sorted({seeds[i] for i in present}):
            family = {i: t for i, t in present.items() if seeds[i] == seed}
            for i, comparison in compare_family(family, identity, spec, aggregate, settings).items():  # fmt: skip
                out[i][spec.key] = comparison
    return out


def compare_family(
    family: Mapping[int, pd.DataFrame],
    identity: pd.DataFrame | None,
    spec: MetricSpec,
    aggregate: Aggregate,
    settings: BootstrapSettings,
) -> dict[int, CellComparison]:
    """The cells of one seed on one headline metric: each one's interval, its paired
    difference from the input and from the best cell, Holm-adjusted across the family."""
    from bench.statistics import estimate, holm

    values = {i: aggregate.value(table) for i, table in family.items()}
    best = (min if spec.lower_is_better else max)(family, key=values.__getitem__)

    def versus(table: pd.DataFrame, other: pd.DataFrame, name: str) -> PairedDifference:
        pair = pair_tables(table, other, "the cell", name)
        return paired_difference(spec.key, *pair, aggregate, spec.direction, settings)

    rows: dict[int, dict] = {}
    for i, table in family.items():
        row: dict = {"estimate": estimate(table, aggregate, settings), "is_best": i == best}
        if identity is not None and _has(identity, aggregate):
            row["vs_identity"] = versus(table, identity, "the identity baseline")
        if i != best:
            row["vs_best"] = versus(table, family[best], "the best cell")
        rows[i] = row
    for name in ("vs_identity", "vs_best"):
        order = [i for i in family if name in rows[i]]
        adjusted = holm([rows[i][name].p_permutation for i in order])
        for i, p in zip(order, adjusted, strict=True):
            rows[i][f"{name}_p_holm"] = p
    return {i: CellComparison(spec, **row) for i, row in rows.items()}


def _has(table: pd.DataFrame, aggregate: Aggregate) -> bool:
    return all(column in table for column in aggregate.columns)


def seed_spreads(
    tables: Mapping[int, pd.DataFrame],
    methods: Mapping[int, str],
    protocol: Protocol,
    settings: BootstrapSettings = DEFAULT_SETTINGS,
) -> dict[str, dict[str, SeedSpread]]:
    """Per method with two seeds or more, per headline metric that is a mean over images:
    the spread over seeds and the seeds x images interval (``seed_image_interval``). A ratio
    of sums has no per-image score to resample this way and is left to the paired tests."""
    out: dict[str, dict[str, SeedSpread]] = {}
    for method in sorted(set(methods.values())):
        runs = [tables[i] for i in tables if methods[i] == method]
        if len(runs) < 2:
            continue
        for spec in HEADLINES.get(base_of(protocol.name), ()):
            aggregate = protocol.aggregate(spec.key)
            if (
                aggregate is None
                or aggregate.denominator
                or not all(_has(t, aggregate) for t in runs)
            ):
                continue
            names = sorted(set.intersection(*(set(t["name"]) for t in runs)))
            matrix = np.stack(
                [
                    t.set_index("name").loc[names, aggregate.column].to_numpy(np.float64)
                    for t in runs
                ]
            )
            matrix = matrix[:, np.all(np.isfinite(matrix), axis=0)]
            out.setdefault(method, {})[spec.key] = seed_image_interval(matrix, settings)
    return out
