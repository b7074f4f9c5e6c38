"""Statistics used by detection and comparisons: pure numpy/scipy functions, no I/O.

Every function takes arrays and returns numbers or a small dataclass; none reads the database.
The methods and their defaults are explained in ``docs/detection.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special as _special

# 1.4826 * MAD estimates the standard deviation of a normal distribution.
MAD_SCALE = 1.4826


@dataclass(frozen=True)
class RatioCI:
    """A ratio of medians (``after / before``) with its bootstrap confidence interval."""

    ratio: float
    low: float
    high: float
    level: float


@dataclass(frozen=True)
class TestResult:
    """A test statistic and its two-sided p-value."""

    statistic: float
    p: float


def median(x: Sequence[float] | np.ndarray) -> float:
    """Median of the finite values of ``x``.

    Parameters
    ----------
    x : array_like
        Values; NaN entries are ignored.

    Returns
    -------
    float
        The median, or NaN when there is no finite value.
    """
    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else float("nan")


def geomean(x: Sequence[float] | np.ndarray) -> float:
    """Geometric mean of positive values (the mean of ratios across cases).

    Parameters
    ----------
    x : array_like
        Positive values such as speedups or ratios.

    Returns
    -------
    float
        ``exp(mean(log(x)))``; NaN for an empty input.

    Raises
    ------
    ValueError
        If any value is zero or negative.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return float("nan")
    if np.any(a <= 0):
        raise ValueError("geomean needs positive values")
    return float(np.exp(np.mean(np.log(a))))


def robust_sigma(y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Noise of a series from its first differences, robust to steps and outliers.

    Parameters
    ----------
    y : ndarray
        Values (usually log nightly medians); NaN entries are skipped.
    axis : int
        The time axis.

    Returns
    -------
    ndarray
        ``1.4826 * median(|diff(y)|) / sqrt(2)``: a step changes one difference, an outlier two,
        so neither moves the median of the differences much.
    """
    d = np.abs(np.diff(np.asarray(y, dtype=np.float64), axis=axis))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, on purpose
        return MAD_SCALE * np.nanmedian(d, axis=axis) / np.sqrt(2.0)


def mann_whitney(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> TestResult:
    """Two-sided Mann-Whitney U test of two samples (raw timings of two segments).

    Parameters
    ----------
    a, b : array_like
        The two samples; at least one value each.

    Returns
    -------
    TestResult
        U of ``a`` and the two-sided p-value (exact for small samples without ties, otherwise
        the normal approximation with tie and continuity corrections, as scipy computes it).
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("mann_whitney needs at least one value in each sample")
    # scipy.stats takes half a second to import and only this test needs it: a measured A/B
    # comparison (which imports this module) never runs it.
    from scipy import stats

    r = stats.mannwhitneyu(x, y, alternative="two-sided", method="auto")
    return TestResult(statistic=float(r.statistic), p=float(r.pvalue))


def pooled_t(left: np.ndarray, right: np.ndarray, *, min_sd: float = 0.0) -> TestResult:
    """Two-sample t-test with a pooled variance (both segments share one noise level).

    Used on log nightly values: the long segment before a change pins the noise, so a change
    seen on only two new nights can still be tested with many degrees of freedom.

    Parameters
    ----------
    left, right : ndarray
        The two segments; together at least three values.
    min_sd : float
        A lower bound on the pooled standard deviation (a noise level known from elsewhere, so
        a window that happens to be very quiet does not make a tiny change significant).

    Returns
    -------
    TestResult
        t (right minus left) and its two-sided p-value with ``n1 + n2 - 2`` degrees of freedom.
    """
    x = np.asarray(left, dtype=np.float64)
    y = np.asarray(right, dtype=np.float64)
    n1, n2 = x.size, y.size
    if n1 < 1 or n2 < 1 or n1 + n2 < 3:
        raise ValueError("pooled_t needs one value per segment and three in all")
    ss = np.sum((x - x.mean()) ** 2) + np.sum((y - y.mean()) ** 2)
    df = n1 + n2 - 2
    sd = max(float(np.sqrt(ss / df)), min_sd)
    diff = y.mean() - x.mean()
    if sd == 0:
        return TestResult(float("inf") if diff else 0.0, 0.0 if diff else 1.0)
    t = diff / (sd * np.sqrt(1.0 / n1 + 1.0 / n2))
    return TestResult(statistic=float(t), p=float(2 * _special.stdtr(df, -abs(t))))


def benjamini_hochberg(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) controlling the false discovery rate.

    Parameters
    ----------
    p : array_like
        p-values of all hypotheses tested together (NaN counts as 1).

    Returns
    -------
    ndarray
        ``q`` with ``q[i] <= alpha`` exactly for the hypotheses BH rejects at level ``alpha``;
        the same order as ``p``.
    """
    a = np.asarray(p, dtype=np.float64)
    a = np.where(np.isfinite(a), a, 1.0)
    m = a.size
    if m == 0:
        return a
    order = np.argsort(a, kind="mergesort")
    ranked = a[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(ranked, 1.0)
    return q


def _boot_medians(
    groups: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap medians of a segment made of nights (groups of samples).

    Two stages, as the data were made: resample the nights, then the samples inside each chosen
    night; the statistic is the median of the nights' medians. With one value per night this is
    the ordinary bootstrap of the median.
    """
    k = len(groups)
    night_meds = np.empty((n_boot, k))
    by_size: dict[int, list[int]] = {}
    for j, g in enumerate(groups):
        by_size.setdefault(int(np.size(g)), []).append(j)
    for size, idxs in by_size.items():
        block = np.array([np.asarray(groups[j], dtype=np.float64) for j in idxs])  # (k_s, size)
        if size <= 1:
            night_meds[:, idxs] = block[:, 0] if size else np.nan
            continue
        pick = rng.integers(0, size, size=(n_boot, len(idxs), size))
        night_meds[:, idxs] = np.median(
            np.take_along_axis(block[None, :, :].repeat(n_boot, 0), pick, axis=2), axis=2
        )
    pick = rng.integers(0, k, size=(n_boot, k))
    return np.median(np.take_along_axis(night_meds, pick, axis=1), axis=1)


def ratio_of_medians_ci(
    before: Sequence[np.ndarray] | np.ndarray,
    after: Sequence[np.ndarray] | np.ndarray,
    *,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> RatioCI:
    """Ratio of medians ``after / before`` with a percentile bootstrap confidence interval.

    Parameters
    ----------
    before, after : ndarray or sequence of ndarray
        Either 1-D arrays of values, or sequences of per-night sample arrays (the raw samples),
        which are resampled in two stages (nights, then samples within a night).
    level : float
        Confidence level of the interval.
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling, so the same data always give the same interval.

    Returns
    -------
    RatioCI
        The point estimate (ratio of the medians of nightly medians) and the interval.
    """
    rng = np.random.default_rng(seed)
    if _is_values(before) and _is_values(after):
        # one value per night: the ordinary bootstrap, fully vectorised
        b = np.asarray(before, dtype=np.float64)
        a = np.asarray(after, dtype=np.float64)
        b, a = b[np.isfinite(b)], a[np.isfinite(a)]
        if not b.size or not a.size:
            raise ValueError("ratio_of_medians_ci needs values on both sides")
        mb, ma = float(np.median(b)), float(np.median(a))
        rb = np.median(b[rng.integers(0, b.size, size=(n_boot, b.size))], axis=1)
        ra = np.median(a[rng.integers(0, a.size, size=(n_boot, a.size))], axis=1)
    else:
        bg = _as_groups(before)
        ag = _as_groups(after)
        if not bg or not ag:
            raise ValueError("ratio_of_medians_ci needs values on both sides")
        mb = float(np.median(_night_medians(bg)))
        ma = float(np.median(_night_medians(ag)))
        rb = _boot_medians(bg, n_boot, rng)
        ra = _boot_medians(ag, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = ra / rb
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(ratios, [alpha, 1 - alpha])
    return RatioCI(
        ratio=ma / mb if mb else float("nan"), low=float(lo), high=float(hi), level=level
    )


def _is_values(x: Sequence[np.ndarray] | np.ndarray) -> bool:
    return isinstance(x, np.ndarray) and x.ndim == 1


def _night_medians(groups: Sequence[np.ndarray]) -> np.ndarray:
    out = np.empty(len(groups))
    by_size: dict[int, list[int]] = {}
    for j, g in enumerate(groups):
        by_size.setdefault(g.size, []).append(j)
    for idxs in by_size.values():
        out[idxs] = np.median(np.array([groups[j] for j in idxs]), axis=1)
    return out


def _as_groups(x: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    if isinstance(x, np.ndarray) and x.ndim == 1:
        return [np.array([v]) for v in x if np.isfinite(v)]
    out = []
    for g in x:
        a = np.atleast_1d(np.asarray(g, dtype=np.float64))
        a = a[np.isfinite(a)]
        if a.size:
            out.append(a)
    return out
