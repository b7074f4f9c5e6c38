"""Statistics against scipy and known values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from tritonwatch.analysis import stats


def test_median_and_geomean() -> None:
    assert stats.median([3.0, 1.0, np.nan, 2.0]) == 2.0
    assert np.isnan(stats.median([np.nan]))
    assert stats.geomean([1.0, 4.0]) == pytest.approx(2.0)
    assert stats.geomean([2.0, 8.0, 4.0]) == pytest.approx(st.gmean([2.0, 8.0, 4.0]))
    with pytest.raises(ValueError):
        stats.geomean([1.0, 0.0])


def test_mann_whitney_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.01, 40), rng.normal(1.01, 0.01, 30)
    got = stats.mann_whitney(a, b)
    want = st.mannwhitneyu(a, b, alternative="two-sided")
    assert got.statistic == pytest.approx(want.statistic)
    assert got.p == pytest.approx(want.pvalue)
    assert got.p < 1e-3
    # identical distributions: a large p-value
    assert stats.mann_whitney(a, a).p == pytest.approx(1.0)
    with pytest.raises(ValueError):
        stats.mann_whitney([], [1.0])


def test_pooled_t_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 25), rng.normal(0.8, 1, 7)
    got = stats.pooled_t(a, b)
    want = st.ttest_ind(b, a, equal_var=True)
    assert got.statistic == pytest.approx(want.statistic)
    assert got.p == pytest.approx(want.pvalue)
    # a noise floor makes the test more conservative, never less
    assert stats.pooled_t(a, b, min_sd=5.0).p > got.p


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    p = np.concatenate([rng.uniform(size=200), rng.uniform(0, 1e-4, size=20)])
    q = stats.benjamini_hochberg(p)
    assert np.allclose(q, st.false_discovery_control(p, method="bh"))
    # known small case: p = [0.01, 0.04, 0.03] -> q = [0.03, 0.04, 0.04]
    assert np.allclose(stats.benjamini_hochberg([0.01, 0.04, 0.03]), [0.03, 0.04, 0.04])
    assert stats.benjamini_hochberg([]).size == 0
    assert stats.benjamini_hochberg([np.nan])[0] == 1.0


def test_ratio_of_medians_ci_covers_the_truth() -> None:
    rng = np.random.default_rng(3)
    before = [rng.normal(1.0, 0.01, 20) for _ in range(15)]
    after = [rng.normal(1.05, 0.01, 20) for _ in range(5)]
    ci = stats.ratio_of_medians_ci(before, after, seed=1)
    assert ci.low < ci.ratio < ci.high
    assert ci.low < 1.05 < ci.high
    assert ci.high - ci.low < 0.03
    # the same data and seed give the same interval (idempotent alerts need this)
    assert stats.ratio_of_medians_ci(before, after, seed=1) == ci
    # plain values work too
    vals = stats.ratio_of_medians_ci(np.array([1.0, 1.01, 0.99, 1.0]), np.array([2.0, 2.02, 1.98]))
    assert vals.ratio == pytest.approx(2.0)
    with pytest.raises(ValueError):
        stats.ratio_of_medians_ci(np.array([]), np.array([1.0]))


def test_robust_sigma_ignores_steps_and_spikes() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(0, 0.01, (1, 400))
    y[0, 200:] += 0.5  # a huge step
    y[0, 50] += 1.0  # a huge spike
    assert stats.robust_sigma(y, axis=1)[0] == pytest.approx(0.01, rel=0.15)
