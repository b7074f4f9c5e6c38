"""Banded series: two levels night to night (clock states, memory placements) and clock records.

Pure functions on log values (no I/O). A banded series is modelled as a level plus a fixed gap on
the nights in the upper band; once each night's band is known, the gap is taken out and the
series is tested for changes like any other. ``docs/detection.md`` explains the rules.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# The median of |N(0, s)| is 0.6745 s.
HALF_NORMAL_MEDIAN = 0.6745
SPREAD = 3.0  # a recurring jump's spread is under a third of its size


@dataclass(frozen=True)
class BandScreen:
    """Which rows are banded, with the gap between the bands (log) and the noise of a diff."""

    banded: np.ndarray  # bool per row
    gap: np.ndarray  # log gap between the levels (0 where not banded)
    diff_sd: np.ndarray  # sd of the first differences inside one band


def screen_bands(
    y: np.ndarray, lengths: np.ndarray, *, min_jumps: int = 6, separation: float = 3.0
) -> BandScreen:
    """Find rows whose night-to-night jumps have two sizes: noise, and one recurring gap.

    Parameters
    ----------
    y : ndarray
        Log values, one row per series, finite values first (compacted), NaN after.
    lengths : ndarray
        Number of finite values per row.
    min_jumps : int
        A banded series changes band at least this often: three visits to the other band (a
        regression window and a spike of the same size make two).
    separation : float
        The gap must be at least this many standard deviations of a within-band difference.

    Returns
    -------
    BandScreen
        A row is banded when splitting its absolute first differences into a small and a large
        class (Otsu's rule on their logs) gives at least ``min_jumps`` large ones whose median,
        the gap, is ``separation`` sds of the small ones away, whose own spread is under a
        third of the gap and under 4 sds of a small one (under the two-level model a jump is the
        gap plus the noise of one difference: one recurring size, not steps and spikes of
        several sizes), and whose
        signs alternate (up, down, up, ...: up and down counts differ by at most a quarter).
    """
    s, n = y.shape
    out = BandScreen(np.zeros(s, bool), np.zeros(s), np.zeros(s))
    if n < 2 * min_jumps + 2:
        return out
    d = np.diff(y, axis=1)
    m = np.maximum(lengths - 1, 0)
    a = np.where(np.isfinite(d), np.abs(d), np.inf)
    srt = np.sort(a, axis=1)
    la = np.log(np.maximum(np.where(np.isfinite(srt), srt, 1.0), 1e-12))
    cs = np.cumsum(la, axis=1)
    k = np.arange(1, n)[None, :]  # small class = the k smallest
    tot = cs[np.arange(s), np.maximum(m - 1, 0)][:, None]
    kb = m[:, None] - k
    with np.errstate(divide="ignore", invalid="ignore"):
        mu0 = cs / k
        mu1 = (tot - cs) / kb
        between = k * kb * (mu0 - mu1) ** 2
    ok = (kb >= min_jumps) & (k >= 0.3 * m[:, None])
    between = np.where(ok, between, -np.inf)
    best = np.argmax(between, axis=1)
    kk = best + 1
    big = m - kk
    valid = np.isfinite(between[np.arange(s), best]) & (big >= min_jumps)
    rows = np.arange(s)

    def at(pos: np.ndarray) -> np.ndarray:
        return srt[rows, np.clip(pos, 0, n - 2)]

    gap = at(kk + big // 2)
    small_med = at(kk // 2)
    diff_sd = small_med / HALF_NORMAL_MEDIAN
    spread = (at(kk + (3 * big) // 4) - at(kk + big // 4)) / 1.349
    thr = np.sqrt(np.maximum(gap * small_med, 1e-24))
    with np.errstate(invalid="ignore"):
        jump = np.abs(np.nan_to_num(d)) > thr[:, None]
        up = (jump & (d > 0)).sum(axis=1)
        down = (jump & (d < 0)).sum(axis=1)
        banded = (
            valid
            & (gap >= separation * diff_sd)
            & (spread <= np.minimum(gap / SPREAD, 4 * diff_sd))
            & (np.abs(up - down) <= 1 + big / 4)
        )
    return BandScreen(banded, np.where(banded, gap, 0.0), np.where(banded, diff_sd, 0.0))


def fit_bands(y: np.ndarray, gap: float) -> np.ndarray:
    """Which nights of one series (no NaN) sit in the upper band, for a known gap.

    Parameters
    ----------
    y : ndarray
        Log values of one series (or one segment of it), no NaN.
    gap : float
        The log gap between the bands.

    Returns
    -------
    ndarray
        Bool per night: True in the upper band. The lower level ``mu`` minimises the L1 cost
        ``sum(min(|y - mu|, |y - mu - gap|))`` (each night is charged to its nearer level), which a
        few spikes cannot move; a night is upper when it is nearer ``mu + gap``.
    """
    if y.size == 0 or gap <= 0:
        return np.zeros(y.size, bool)
    cand = np.concatenate([y, y - gap])
    dev = y[None, :] - cand[:, None]
    cost = np.minimum(np.abs(dev), np.abs(dev - gap)).sum(axis=1)
    mu = cand[int(np.argmin(cost))]
    return np.abs(y - mu - gap) < np.abs(y - mu)


def fit_bands_local(
    y: np.ndarray, gap: float, half: int = 10, *, share: float = 0.5, scale: float = 0.0
) -> np.ndarray:
    """Which nights sit in the upper band, with a level that may step (no NaN in ``y``).

    Parameters
    ----------
    y : ndarray
        Log values of one series, no NaN.
    gap : float
        The log gap between the bands.
    half : int
        Nights on each side used to place a night's lower level.
    share, scale : float
        The series' share of upper-band nights and its noise sd (log): an upper night costs
        ``scale * log((1 - share) / share)`` more, the L1 form of the mixture's prior odds. It
        breaks the tie a window with every night in one band leaves (is it all lower or all
        upper?) in favour of the band most nights are in.

    Returns
    -------
    ndarray
        Bool per night, True in the upper band. Each night's lower level comes from a two-level
        L1 fit (:func:`fit_bands`) on the ``half + 1`` nights ending at it and on those starting at
        it; the side that fits better (lower cost per night) decides, so a step of the level
        contaminates one side only and the nights next to it are still placed by the other.
        Only full sides count (near the start and end of the history that is the inner one).
    """
    n = y.size
    if n == 0 or gap <= 0:
        return np.zeros(n, bool)
    if n <= half + 1:
        return fit_bands(y, gap)
    pad = np.concatenate([np.full(half, np.nan), y, np.full(half, np.nan)])
    win = np.lib.stride_tricks.sliding_window_view(pad, half + 1)
    left, right = win[:n], win[half : half + n]  # nights [t-half, t] and [t, t+half]
    best_cost = np.full(n, np.inf)
    upper = np.zeros(n, bool)
    p = min(max(share, 0.02), 0.98)
    pen = scale * np.log((1 - p) / p)
    for w in (left, right):
        cand = np.concatenate([w, w - gap], axis=1)  # (n, C)
        dev = w[:, None, :] - cand[:, :, None]  # (n, C, half+1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN candidates (padding)
            cost = np.nanmean(np.minimum(np.abs(dev), np.abs(dev - gap) + pen), axis=2)
        # a side cut short by the start or end of the history has too few nights to place
        # the level (two upper nights alone look like a lower level): only full sides count
        full = np.isfinite(w).all(axis=1)
        cost = np.where(np.isfinite(cost) & full[:, None], cost, np.inf)
        j = np.argmin(cost, axis=1)
        c = cost[np.arange(n), j]
        mu = cand[np.arange(n), j]
        take = c < best_cost
        best_cost = np.where(take, c, best_cost)
        upper = np.where(take, np.abs(y - mu - gap) + pen < np.abs(y - mu), upper)
    return upper


def clock_explained(clocks: np.ndarray, *, tolerance: float = 0.02) -> np.ndarray:
    """Nights run at a lower GPU clock than the series' usual one (True = explained).

    Parameters
    ----------
    clocks : ndarray
        Recorded SM clock per night (MHz), same shape as the values; NaN where not recorded.
    tolerance : float
        A night is at a lower clock when its clock is more than this fraction under the median
        clock of its series (NVML reports clocks in steps of about 15 MHz, under 1% of a
        datacenter GPU's boost clock, so 2% is two steps).

    Returns
    -------
    ndarray
        Bool, same shape: True where the night's value is explained by its clock and is left out
        of change detection (never alerted, and never used as evidence).
    """
    c = np.asarray(clocks, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with no clock at all
        ref = np.nanmedian(c, axis=1)
    with np.errstate(invalid="ignore"):
        return np.isfinite(c) & (c < (ref * (1 - tolerance))[:, None])
