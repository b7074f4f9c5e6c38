"""Notes of a detection pass that are not alerts: noise (stability) changes, pending changes.

Pure functions on compacted log values (no I/O), used by :mod:`.nightly`; the rules are in
``docs/detection.md``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as _st

from .changepoint import DetectConfig

# sd of log(mean |d|) times sqrt(n) for differences of independent normal nights: the
# half-normal's 0.756, inflated by sqrt(1 + 2 * 0.224) for the correlation of neighbouring |d|
ABS_DIFF_LOG_SD = 0.756 * np.sqrt(1 + 2 * 0.224)


@dataclass(frozen=True)
class Note:
    """Not an alert: a ``stability`` change (noise up or down), a ``pending`` change that needs
    ``detail['needs']`` more nights, or ``explained`` nights (lower clock)."""

    row: int
    kind: str
    night: int
    detail: dict[str, Any] = field(default_factory=dict)


def stability_tests(
    y: np.ndarray, lengths: np.ndarray, cols: np.ndarray, min_nights: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise changes: the mean absolute night-to-night difference before and after a split.

    ``log(mean |d|)`` of ``n`` independent half-normal values has sd ``0.756 / sqrt(n)``;
    consecutive differences share a night (correlation -0.5, so 0.224 between their absolute
    values), which multiplies the variance of their mean by ``1 + 2 * 0.224``: sd
    ``0.910 / sqrt(n)``. The split with the largest |z| is tested with Bonferroni over the splits. Returns per row (p, noise ratio,
    first night of the new noise); Benjamini-Hochberg over rows is applied by the caller.
    """
    s, n = y.shape
    m = min_nights
    if n < 2 * m + 2 or s == 0:
        return np.ones(s), np.ones(s), np.zeros(s, np.int64)
    d = np.abs(np.diff(y, axis=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(d, axis=1)
    d = np.minimum(d, 5 * med[:, None])  # a step or a spike is one or two huge differences
    nd = np.maximum(lengths - 1, 0)
    z = np.where(np.isfinite(d), d, 0.0)
    cs = np.cumsum(z, axis=1)
    k = np.arange(1, n)[None, :]
    tot = cs[np.arange(s), np.maximum(nd - 1, 0)][:, None]
    nr = nd[:, None] - k
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = ((tot - cs) / nr) / (cs / k)
        zz = np.log(ratio) / (ABS_DIFF_LOG_SD * np.sqrt(1 / k + 1 / nr))
    ok = (k >= m) & (nr >= m) & np.isfinite(zz)
    zz = np.where(ok, np.abs(zz), 0.0)
    best = np.argmax(zz, axis=1)
    zb = zz[np.arange(s), best]
    splits = np.maximum(nd - 2 * m + 1, 1)
    p = np.where(zb > 0, np.minimum(1.0, 2 * _st.norm.sf(zb) * splits), 1.0)
    rb = np.nan_to_num(ratio[np.arange(s), best], nan=1.0, posinf=1.0, neginf=1.0)
    # split k puts differences d[k:] (d[k] = y[k+1] - y[k]) after it: night k + 1 is first
    first = cols[np.arange(s), np.clip(best + 2, 0, np.maximum(lengths - 1, 0))]
    return p, rb, first


def pending_notes(
    y: np.ndarray,
    lengths: np.ndarray,
    cols: np.ndarray,
    sigma: np.ndarray,
    dc: DetectConfig,
    n_total: int | None = None,
) -> list[Note]:
    """Changes in the newest nights not reported yet, with the nights they still need.

    For the newest ``j`` nights (``j < min_size + persist``), all past the midpoint between the
    level before them (median of up to ``window`` nights) and their median: the need is the
    number of further nights at that level after which the change's t would pass the strictest
    Benjamini-Hochberg threshold of the pass (``fdr / n_series``, Bonferroni over the splits of
    the series), and at least the persistence rule. Noted when the change clears the series'
    floor and its t is already 3 or more (visible, not yet provable).
    """
    s, width = y.shape
    if s == 0 or width < dc.min_size + 1:
        return []
    rows = np.arange(s)
    best_t = np.zeros(s)
    best_j = np.zeros(s, np.int64)
    best_d = np.zeros(s)
    best_nb = np.ones(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for j in range(1, dc.min_size + dc.persist):
            nb = np.minimum(dc.window, lengths - j)
            idx = (lengths - j - nb)[:, None] + np.arange(dc.window)[None, :]
            ok = (np.arange(dc.window)[None, :] < nb[:, None]) & (idx >= 0)
            before = np.where(ok, y[rows[:, None], np.clip(idx, 0, width - 1)], np.nan)
            ml = np.nanmedian(before, axis=1)
            tidx = (lengths - j)[:, None] + np.arange(j)[None, :]
            tail = y[rows[:, None], np.clip(tidx, 0, width - 1)] - ml[:, None]
            delta = np.median(tail, axis=1)
            same = np.all(tail * np.sign(delta)[:, None] >= 0.5 * np.abs(delta)[:, None], axis=1)
            t = np.abs(delta) / (sigma * np.sqrt(1 / np.maximum(nb, 1) + 1 / j))
            t = np.where(same & (nb >= dc.min_size) & np.isfinite(t), t, 0.0)
            better = t > best_t
            best_t = np.where(better, t, best_t)
            best_j = np.where(better, j, best_j)
            best_d = np.where(better, delta, best_d)
            best_nb = np.where(better, nb, best_nb)
    floor = np.maximum(dc.min_change, np.expm1(dc.noise_floor * sigma))
    tried = np.maximum(1, lengths - dc.min_size - dc.persist + 1)
    t_req = _st.norm.isf(dc.fdr / (n_total or s) / tried / 2)
    room = (best_d / (sigma * t_req)) ** 2 - 1 / best_nb
    hit = (best_t >= 3.0) & (np.abs(best_d) >= np.log1p(floor)) & (room > 0)
    notes = []
    for r in np.flatnonzero(hit):
        j = int(best_j[r])
        need = max(int(np.ceil(1 / room[r])), dc.persist) - j
        notes.append(
            Note(
                int(r),
                "pending",
                int(cols[r, lengths[r] - j]),
                {"needs": max(need, 1), "ratio": float(np.exp(best_d[r])), "nights": j},
            )
        )
    return notes
