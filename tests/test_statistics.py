"""Paired intervals and tests against independent computations: scipy called on the paired
differences directly, small cases worked by hand, and a seeds x images case whose spread is
known in closed form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.statistics import (
    Aggregate,
    BootstrapSettings,
    holm,
    paired_difference,
    seed_image_interval,
)


def frames(a, b, column="psnr"):
    return pd.DataFrame({column: a}), pd.DataFrame({column: b})


def test_paired_interval_and_tests_equal_scipy_on_the_differences():
    rng = np.random.default_rng(7)
    a = rng.normal(25, 2, 40)
    b = a - rng.normal(0.2, 0.6, 40)
    result = paired_difference("psnr", *frames(a, b), Aggregate("psnr"), "higher")
    d = a - b
    reference = stats.bootstrap(
        (d,), np.mean, n_resamples=10_000, method="BCa", rng=np.random.default_rng(0)
    )
    assert result.mean_diff == pytest.approx(d.mean(), abs=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx(
        tuple(reference.confidence_interval), abs=0.02
    )
    assert result.p_wilcoxon == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-12)
    permutation = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=10_000,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    # sign flips of d and swaps of (a, b) are the same permutations: the same p-value
    assert result.p_permutation == pytest.approx(permutation.pvalue, abs=0.01)
    assert result.n_images == 40 and result.a_wins == int((d > 0).sum())
    assert result.ci_low > 0 and result.excludes_zero and not result.a_is_worse


def test_a_hand_computed_case():
    """Differences 1, 2, 3, 4: every one of the 16 sign patterns is equally likely under the
    null. Only all-positive and all-negative reach |mean| >= 2.5, and W+ = 10 is the largest
    signed-rank sum: both two-sided p-values are 2/16."""
    a = np.array([11.0, 12.0, 13.0, 14.0])
    b = np.array([10.0, 10.0, 10.0, 10.0])
    result = paired_difference("psnr", *frames(a, b), Aggregate("psnr"), "higher")
    assert result.mean_diff == 2.5
    assert result.p_wilcoxon == pytest.approx(2 / 16)
    assert result.p_permutation == pytest.approx(2 / 16)
    assert result.a_wins == 4


def test_a_hand_computed_percentile_interval():
    """Differences 0 and 2: a resample's mean is 0, 1 or 2 with probabilities 1/4, 1/2, 1/4,
    so the 2.5 % and 97.5 % quantiles of the bootstrap distribution are 0 and 2."""
    settings = BootstrapSettings(method="percentile")
    result = paired_difference(
        "psnr", *frames([10.0, 12.0], [10.0, 10.0]), Aggregate("psnr"), "higher", settings
    )
    assert (result.ci_low, result.ci_high) == (0.0, 2.0)


def test_lower_is_better_counts_wins_and_worse_the_other_way():
    a = np.array([0.30, 0.32, 0.31, 0.35, 0.33, 0.34, 0.36, 0.30])
    b = a - 0.05 - np.linspace(0, 0.01, 8)  # B has lower (better) LPIPS everywhere
    result = paired_difference("lpips", *frames(a, b, "lpips"), Aggregate("lpips"), "lower")
    assert result.a_wins == 0 and result.ci_low > 0 and result.a_is_worse


def test_identical_scores_give_a_point_and_no_tests():
    a = np.array([20.0, 21.0, 22.0])
    result = paired_difference("psnr", *frames(a, a), Aggregate("psnr"), "higher")
    assert result.mean_diff == 0 and (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.p_wilcoxon is None and result.p_permutation is None
    assert "same on every image" in result.note


def test_a_ratio_of_sums_resamples_images_and_says_what_it_cannot_test():
    """ISTD's per-pixel MAE: all Lab errors over all pixels. The interval comes from paired
    resampling of images; a signed-rank test needs per-image differences, which a ratio of
    sums does not have."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(100, 400, 30).astype(float)
    a_sum = pixels * rng.uniform(4, 6, 30)
    b_sum = a_sum + pixels * rng.uniform(0.5, 1.5, 30)
    a = pd.DataFrame({"lab_sum": a_sum, "pixels": pixels})
    b = pd.DataFrame({"lab_sum": b_sum, "pixels": pixels})
    result = paired_difference("mae_pp", a, b, Aggregate("lab_sum", "pixels"), "lower")
    assert result.mean_diff == pytest.approx(
        a_sum.sum() / pixels.sum() - b_sum.sum() / pixels.sum()
    )
    assert result.ci_high < 0 and result.p_wilcoxon is None and result.a_wins is None
    assert "ratio of sums" in result.resampled and "signed-rank" in result.note
    # A better on every image: no swap pattern gives a larger |difference| than the observed
    assert result.p_permutation < 0.001


def test_images_without_a_value_are_left_out_and_counted():
    a = np.array([20.0, np.nan, 22.0, 23.0, 21.5])
    b = np.array([19.0, 18.0, 21.0, 22.5, 20.0])
    result = paired_difference("mae_s", *frames(a, b), Aggregate("psnr"), "higher")
    assert result.n_images == 4 and "1 image(s) without a value" in result.note
    assert result.mean_diff == pytest.approx(np.mean([1.0, 1.0, 0.5, 1.5]))


def test_holm_adjustment_by_hand():
    # sorted 0.01, 0.03, 0.04 of m = 3: 0.03, 0.06, max(0.06, 0.04) = 0.06
    assert holm([0.01, 0.04, None, 0.03]) == [pytest.approx(0.03), pytest.approx(0.06), None,
                                              pytest.approx(0.06)]  # fmt: skip
    assert holm([0.5, 0.9]) == [pytest.approx(1.0), pytest.approx(1.0)]


def test_seeds_by_images_interval_has_the_closed_form_spread():
    """scores[s, i] = seed effect + image effect. Resampling seeds and images independently,
    the grand mean's bootstrap variance is v_s / S + v_i / N (plug-in variances of the two
    effects), so the 95 % interval is about 2 x 1.96 of its square root wide."""
    seeds = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    images = np.random.default_rng(11).normal(20, 3, 200)
    scores = seeds[:, None] + images[None, :]
    spread = seed_image_interval(scores)
    expected_se = np.sqrt(seeds.var() / seeds.size + images.var() / images.size)
    width = spread.ci_high - spread.ci_low
    assert width / (2 * 1.96) == pytest.approx(expected_se, rel=0.06)
    assert spread.mean == pytest.approx(scores.mean())
    assert spread.std == pytest.approx(np.std(scores.mean(axis=1), ddof=1))
    assert spread.n_seeds == 5 and spread.n_images == 200
    # one seed: no seed spread, no interval
    single = seed_image_interval(scores[:1])
    assert single.std is None and single.ci_low is None
