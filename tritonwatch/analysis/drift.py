"""Slow drift versus steps: which model explains a series' changes better (pure functions).

A drift is a ramp between two flat stretches; a step detector cuts it into small steps at
arbitrary nights. Each series with changes (or a significant trend) is fitted both ways and the
model with the lower Bayesian information criterion wins. ``docs/detection.md`` has the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special as _special


@dataclass(frozen=True)
class Ramp:
    """The best flat-ramp-flat fit of one series (indices into its compacted values)."""

    start: int  # last index before the ramp
    stop: int  # last index of the ramp
    total: float  # log change over the ramp
    slope: float  # log change per index
    sse: float
    p: float  # slope t-test, Bonferroni over the (start, stop) pairs tried
    pairs: int


@lru_cache(maxsize=64)
def _design(n: int, min_nights: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred ramp regressors for every (start, stop) pair with stop - start >= min_nights."""
    a, b = np.triu_indices(n, k=min_nights)
    t = np.arange(n, dtype=np.float64)
    x = np.clip((t[None, :] - a[:, None]) / (b - a)[:, None], 0.0, 1.0)
    xc = x - x.mean(axis=1, keepdims=True)
    return np.stack([a, b], axis=1), xc, np.sum(xc * xc, axis=1)


def fit_ramp(y: np.ndarray, min_nights: int = 10) -> Ramp | None:
    """Least-squares flat-ramp-flat fit of one series (no NaN).

    Parameters
    ----------
    y : ndarray
        Log values of one series, spikes removed.
    min_nights : int
        Shortest ramp: a change spread over fewer nights is a step (or several).

    Returns
    -------
    Ramp or None
        The (start, stop) pair with the least squared error, its slope test (t with ``n - 4``
        degrees of freedom, multiplied by the number of pairs tried), or None when the series is
        too short for a ramp with flat ends.
    """
    n = y.size
    if n < min_nights + 6:
        return None
    ab, xc, sxx = _design(n, min_nights)
    yc = y - y.mean()
    sxy = xc @ yc
    sse = float(yc @ yc) - sxy * sxy / sxx
    i = int(np.argmin(sse))
    total = float(sxy[i] / sxx[i])
    s2 = max(float(sse[i]), 1e-30) / (n - 4)
    t = total / np.sqrt(s2 / sxx[i])
    p = float(min(1.0, 2 * _special.stdtr(n - 4, -abs(t)) * len(sxx)))
    a, b = int(ab[i, 0]), int(ab[i, 1])
    return Ramp(a, b, total, total / (b - a), float(sse[i]), p, len(sxx))


def steps_sse(y: np.ndarray, cuts: list[int]) -> float:
    """Squared error of the piecewise-constant fit with breaks before ``cuts``."""
    c1 = np.concatenate([[0.0], np.cumsum(y)])
    c2 = np.concatenate([[0.0], np.cumsum(y * y)])
    return _sse(c1, c2, [0, *sorted(cuts), y.size])


def _sse(c1: np.ndarray, c2: np.ndarray, edges: list[int]) -> float:
    """Piecewise-constant squared error from prefix sums of y and y**2."""
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b > a:
            s1 = c1[b] - c1[a]
            total += float(c2[b] - c2[a] - s1 * s1 / (b - a))
    return max(total, 0.0)


def refine_cuts(y: np.ndarray, cuts: list[int], reach: int = 3) -> list[int]:
    """Move each cut by up to ``reach`` places to where the piecewise fit has the least error.

    The step detector places a cut where its statistic peaks, not where the squared error is
    least; the model comparison should give the steps their best placement.
    """
    c1 = np.concatenate([[0.0], np.cumsum(y)])
    c2 = np.concatenate([[0.0], np.cumsum(y * y)])
    out = sorted(cuts)
    for i in range(len(out)):
        lo = (out[i - 1] + 1) if i else 1
        hi = (out[i + 1] - 1) if i + 1 < len(out) else y.size - 1
        left = out[i - 1] if i else 0
        right = out[i + 1] if i + 1 < len(out) else y.size
        out[i] = min(
            range(max(lo, out[i] - reach), min(hi, out[i] + reach) + 1),
            key=lambda c: _sse(c1, c2, [left, c, right]),
            default=out[i],
        )
    return out


def prefers_ramp(y: np.ndarray, cuts: list[int], ramp: Ramp) -> bool:
    """True when the ramp explains ``y`` better than steps at ``cuts`` (lower BIC).

    A piecewise-constant fit with ``k`` breaks has ``2k + 1`` parameters (a place and a level per
    break, and the first level); the ramp has four (level, change, start, stop).
    """
    n = y.size
    floor = 1e-30
    cuts = refine_cuts(y, cuts)
    bic_steps = n * np.log(max(steps_sse(y, cuts), floor) / n) + (2 * len(cuts) + 1) * np.log(n)
    bic_ramp = n * np.log(max(ramp.sse, floor) / n) + 4 * np.log(n)
    return bool(bic_ramp < bic_steps)
