"""Where a nightly series may have changed: the candidate splits the detector then tests.

A vectorised screen over every series at once (the largest two-segment t over all splits), then,
on the series that pass it, E-Divisive means (Matteson & James 2014) with a permutation test,
applied recursively, and a two-change "epidemic" window split for a change that came and went.
:mod:`.changepoint` assesses each candidate; ``docs/detection.md`` explains the defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .changepoint import DetectConfig


def screen_t(
    y: np.ndarray, lengths: np.ndarray, sigma: np.ndarray, cfg: DetectConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Max over splits of the two-segment t statistic, for every row at once.

    Splits leave ``min_size`` nights before and ``persist`` after. Returns (max |t|, split).
    """
    s, n = y.shape
    if n < 2:  # one night (or none): there is no split to test
        return np.zeros(s), np.ones(s, dtype=np.int64)
    valid = np.isfinite(y)
    z = np.where(valid, y, 0.0)
    cs = np.cumsum(z, axis=1)
    total = cs[np.arange(s), np.maximum(lengths - 1, 0)]
    tau = np.arange(1, n)[None, :]  # split before column tau
    nl = tau.astype(np.float64)
    nr = lengths[:, None] - tau
    left = cs[:, :-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = (total[:, None] - left) / nr - left / nl
        t = diff / (np.maximum(sigma, 1e-9)[:, None] * np.sqrt(1 / nl + 1 / nr))
    ok = (
        (tau >= cfg.min_size)
        & (nr >= cfg.persist)
        & (np.abs(diff) >= 0.5 * np.log1p(cfg.min_change))
    )
    t = np.where(ok, np.abs(t), 0.0)
    best = np.argmax(t, axis=1)
    return t[np.arange(s), best], best + 1


def energy_q(x: np.ndarray, min_size: int) -> np.ndarray:
    """E-Divisive means statistic Q(tau) for every split of every row (alpha = 1).

    ``Q(tau) = nl*nr/n * (2/(nl*nr) sum|a-b| - sum_{a<a'}|a-a'|/C(nl,2) - sum_{b<b'}|b-b'|/C(nr,2))``
    for left part ``a = x[:tau]`` and right part ``b = x[tau:]``; splits leaving fewer than
    ``min_size`` values on a side get -inf. ``x`` is (rows, n) with no NaN. Distances are
    computed in float32: the statistic only ranks splits and permutations.
    """
    rows, n = x.shape
    xf = x.astype(np.float32)
    d = np.empty((rows, n, n), np.float32)
    np.subtract(xf[:, :, None], xf[:, None, :], out=d)
    np.abs(d, out=d)
    # r[j] = sum_{i<j} |x_j - x_i|; full row sums give c[i] = sum_{j>i} |x_i - x_j| = F - r
    r = np.einsum("kij,ij->ki", d, np.tril(np.ones((n, n), np.float32), -1)).astype(np.float64)
    full = np.matmul(d, np.ones(n, np.float32)).astype(np.float64)
    c = full - r
    lc = np.cumsum(r, axis=1)  # pairs inside x[:j+1]
    rc = np.cumsum(c[:, ::-1], axis=1)[:, ::-1]  # pairs inside x[i:]
    tau = np.arange(1, n)
    total = lc[:, -1:]
    within_l = lc[:, :-1]
    within_r = rc[:, 1:]
    cross = total - within_l - within_r
    nl = tau.astype(np.float64)
    nr = n - nl
    with np.errstate(divide="ignore", invalid="ignore"):
        e = 2 * cross / (nl * nr) - within_l / (nl * (nl - 1) / 2) - within_r / (nr * (nr - 1) / 2)
        q = nl * nr / n * e
    q[:, (tau < max(min_size, 2)) | (nr < max(min_size, 2))] = -np.inf
    return q


def edivisive_split(
    x: np.ndarray, cfg: DetectConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Best E-Divisive split of each row and its permutation p-value.

    Returns (split index tau in 1..n-1 per row, p-value per row); rows too short to split get
    tau 0 and p 1.
    """
    rows, n = x.shape
    if n < 2 * cfg.min_size:
        return np.zeros(rows, np.int64), np.ones(rows)
    b = cfg.permutations
    taus = np.empty(rows, np.int64)
    pvals = np.empty(rows)
    chunk = max(1, int(1.5e7 // ((b + 1) * n * n)))
    for lo in range(0, rows, chunk):
        xs = x[lo : lo + chunk]
        k = xs.shape[0]
        perm = np.argsort(rng.random((k, b, n)), axis=2)
        xp = np.concatenate(
            [
                xs[:, None, :],
                np.take_along_axis(np.broadcast_to(xs[:, None, :], (k, b, n)), perm, axis=2),
            ],
            axis=1,
        )
        q = energy_q(xp.reshape(k * (b + 1), n), cfg.min_size).reshape(k, b + 1, -1)
        qmax = q.max(axis=2)
        taus[lo : lo + k] = np.argmax(q[:, 0, :], axis=1) + 1
        pvals[lo : lo + k] = (1 + (qmax[:, 1:] >= qmax[:, :1]).sum(axis=1)) / (b + 1)
    return taus, pvals


def segment_screen(
    seg: np.ndarray, sigma: float, cfg: DetectConfig, tail: bool
) -> tuple[float, int]:
    """:func:`screen_t` for one segment without NaN (the per-candidate fast path)."""
    n = seg.size
    after = cfg.persist if tail else cfg.min_size
    if n < cfg.min_size + after:
        return 0.0, 0
    cs = np.cumsum(seg)
    nl = np.arange(cfg.min_size, n - after + 1, dtype=np.float64)
    left = cs[cfg.min_size - 1 : n - after]
    nr = n - nl
    diff = (cs[-1] - left) / nr - left / nl
    t = np.abs(diff) / (max(sigma, 1e-9) * np.sqrt(1 / nl + 1 / nr))
    t[np.abs(diff) < 0.5 * np.log1p(cfg.min_change)] = 0.0
    i = int(np.argmax(t))
    return float(t[i]), int(nl[i])


# marks a split found by the epidemic (window) rule in the ``found`` dicts (p_perm is None)
WINDOW = -1.0


def epidemic_split(
    seg: np.ndarray, cfg: DetectConfig, rng: np.random.Generator
) -> tuple[int, int] | None:
    """The best window ``seg[a:b]`` that differs from the rest (a change and its reversion).

    E-Divisive's single split is weak on a short excursion in the middle of a series: no single
    cut separates it, and shuffles of the same values score alike. The epidemic alternative
    (Levin & Kline 1985) compares the mean inside ``[a, b)`` with the mean outside for every
    window with ``min_size`` nights inside and on each side. The largest standardised difference
    is kept when it beats the same statistic on ``permutations`` shuffles of the segment at level
    ``perm_alpha``: the same distribution-free test E-Divisive's splits get.
    """
    n = seg.size
    m = cfg.min_size
    if n < 3 * m:
        return None
    a, b = np.triu_indices(n + 1, k=m)
    ok = (a >= m) & (b <= n - m)
    a, b = a[ok], b[ok]
    if a.size == 0:
        return None
    n_in = (b - a).astype(np.float64)
    scale = np.sqrt(1 / n_in + 1 / (n - n_in))
    xs = np.concatenate([seg[None, :], rng.permuted(np.tile(seg, (cfg.permutations, 1)), axis=1)])
    cs = np.concatenate([np.zeros((xs.shape[0], 1)), np.cumsum(xs, axis=1)], axis=1)
    inside = cs[:, b] - cs[:, a]
    diff = inside / n_in - (cs[:, n : n + 1] - inside) / (n - n_in)
    stat = np.abs(diff) / scale
    best = stat.max(axis=1)
    i = int(np.argmax(stat[0]))
    p = (1 + np.sum(best[1:] >= best[0])) / (cfg.permutations + 1)
    if p > cfg.perm_alpha or abs(diff[0, i]) < np.log1p(cfg.min_change):
        return None
    return int(a[i]), int(b[i])


def recurse(
    y: np.ndarray,
    start: int,
    stop: int,
    sigma: float,
    cfg: DetectConfig,
    rng: np.random.Generator,
    found: dict[int, float],
) -> None:
    """E-Divisive on y[start:stop] when it passes the screen; adds splits to ``found``."""
    if len(found) >= cfg.max_changes or stop - start < 2 * cfg.min_size:
        return
    seg = y[start:stop]
    stat, _ = segment_screen(seg, sigma, cfg, tail=False)
    if stat < cfg.screen_t:
        return
    tau, p = edivisive_split(seg[None, :], cfg, rng)
    if p[0] > cfg.perm_alpha or tau[0] <= 0:
        win = epidemic_split(seg, cfg, rng)
        if win is not None:
            a, b = win
            for cut in (start + a, start + b):
                found[cut] = WINDOW
            recurse(y, start, start + a, sigma, cfg, rng, found)
            recurse(y, start + b, stop, sigma, cfg, rng, found)
        return
    cut = start + int(tau[0])
    found[cut] = float(p[0])
    recurse(y, start, cut, sigma, cfg, rng, found)
    recurse(y, cut, stop, sigma, cfg, rng, found)
