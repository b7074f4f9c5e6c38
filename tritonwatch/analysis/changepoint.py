"""Change points in nightly series: E-Divisive means with a permutation test, plus guards.

Pure functions on arrays (no I/O). A batch is a matrix of nightly values, one series per row, NaN
where a night is missing. The pipeline, explained with every default in ``docs/detection.md``:

1. work on log values, so a change is a ratio and noise is relative;
2. drop single-night spikes that revert the next night (outlier rule);
3. screen every series at once with a cheap vectorised statistic (max two-segment t over all
   splits, noise from the median absolute first difference);
4. on the screened series only, E-Divisive means (Matteson & James 2014; as used by MongoDB and
   Apache Otava) with a permutation test, recursively, with a minimum segment length; a last
   "tail" split covers changes too new for E-Divisive's edge-weighted statistic;
5. test each change on windows around it (pooled t on nightly values, Bonferroni over the splits
   tried), require the relative change to clear a per-series floor and the newest points to
   persist; :mod:`.detect` adds the raw-sample test and CIs, then FDR control over the pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import special as _special

from .splits import WINDOW, edivisive_split, epidemic_split, recurse, screen_t, segment_screen
from .stats import MAD_SCALE, benjamini_hochberg, pooled_t, ratio_of_medians_ci, robust_sigma


@dataclass(frozen=True)
class DetectConfig:
    """Thresholds of the detector; docs/detection.md says why each default is what it is."""

    min_size: int = 3  # nights in a segment between two changes
    persist: int = 2  # newest nights a change must have lasted before it is reported
    window: int = 20  # nights each side of a change used to size and test it
    min_change: float = 0.01  # relative change below which nothing is reported
    noise_floor: float = 1.5  # ... nor below this many noise standard deviations of the series
    screen_t: float = 4.0  # screening |t| a series needs to reach E-Divisive
    permutations: int = 19  # permutation test of each E-Divisive split
    perm_alpha: float = 0.05  # split kept when the permutation p-value is at most this
    outlier_k: float = 4.0  # a spike is this many noise sds from both neighbours
    fdr: float = 0.05  # false discovery rate over all series tested in one pass
    max_changes: int = 6  # per series and pass
    seed: int = 0


@dataclass(frozen=True)
class Change:
    """A change found in row ``row`` of a batch; indices are columns of the input matrix."""

    row: int
    first_bad: int
    last_good: int
    method: str  # "e-divisive", "window" (epidemic rule) or "tail"
    log_change: float  # median(after) - median(before), log space
    ratio: float  # exp(log_change), the value ratio after / before
    sigma: float  # pooled noise sd of the two windows (log space)
    floor: float  # relative change the series had to clear
    p_night: float  # pooled t on nightly values, Bonferroni over the splits tried
    p_perm: float | None  # permutation p of the E-Divisive split (None for tail splits)
    before: tuple[int, int]  # [start, stop) columns of the window before
    after: tuple[int, int]  # [start, stop) columns of the window after
    before_cols: tuple[int, ...] = ()  # the columns the test used (no spikes, no gaps)
    after_cols: tuple[int, ...] = ()
    p_samples: float | None = None
    p: float = 1.0
    q: float = 1.0
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class ChangeSet:
    """Everything one pass found, with how many series it tested and screened."""

    changes: list[Change]
    n_series: int
    n_screened: int


# -- batch helpers ---------------------------------------------------------------------------
def _compact(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move each row's finite values to the left; returns (values, lengths, original columns)."""
    finite = np.isfinite(v)
    order = np.argsort(~finite, axis=1, kind="stable")
    y = np.take_along_axis(v, order, axis=1)
    lengths = finite.sum(axis=1)
    y[np.arange(v.shape[1])[None, :] >= lengths[:, None]] = np.nan
    return y, lengths, order


def outlier_mask(y: np.ndarray, sigma: np.ndarray, cfg: DetectConfig) -> np.ndarray:
    """True where a night is a one-night spike that reverts the next night.

    A point is a spike when it sits on the same side of both neighbours by more than
    ``max(outlier_k * sigma, min_change)`` and the neighbours agree with each other to within
    half that distance; two adjacent points are a spiked pair under the same rule with the nights
    before and after the pair as neighbours (a pair is shorter than a ``min_size`` segment). The newest point is never called a spike: whether it reverts is not yet
    known, which is what the persistence rule is for.
    """
    thr = np.maximum(cfg.outlier_k * sigma, np.log1p(cfg.min_change))[:, None]
    mid = y[:, 1:-1]
    d1 = mid - y[:, :-2]
    d2 = mid - y[:, 2:]
    small = np.minimum(np.abs(d1), np.abs(d2))
    with np.errstate(invalid="ignore"):
        spike = (
            (np.sign(d1) == np.sign(d2))
            & (small > thr)
            & (np.abs(y[:, 2:] - y[:, :-2]) < 0.5 * small)
        )
    out = np.zeros_like(y, dtype=bool)
    out[:, 1:-1] = spike
    if y.shape[1] >= 4:
        # a pair of spiked nights (shorter than a min_size segment): both on the same side of
        # the nights around the pair, which agree with each other
        a, b = y[:, 1:-2], y[:, 2:-1]
        lo, hi = y[:, :-3], y[:, 3:]
        d1 = np.minimum((a - lo) * np.sign(a - lo), (a - hi) * np.sign(a - lo))
        d2 = np.minimum((b - lo) * np.sign(a - lo), (b - hi) * np.sign(a - lo))
        small2 = np.minimum(d1, d2)
        with np.errstate(invalid="ignore"):
            pair = (
                (np.sign(a - lo) == np.sign(a - hi))
                & (np.sign(b - lo) == np.sign(a - lo))
                & (np.sign(b - hi) == np.sign(a - lo))
                & (small2 > thr)
                & (np.abs(hi - lo) < 0.5 * small2)
            )
        out[:, 1:-2] |= pair
        out[:, 2:-1] |= pair
    return out


# (log change, sd, floor, p_night, before window, after window)
Assessed = tuple[float, float, float, float, tuple[int, int], tuple[int, int]]


def _lag1(left: np.ndarray, right: np.ndarray) -> float:
    """Lag-1 autocorrelation of the two windows' residuals (pairs inside one window), in [0, 0.8].

    Negative estimates are taken as 0 (differences of independent noise); 0.8 caps the
    correction where two windows of 20 nights cannot tell a strong correlation from a trend.
    """
    num = den = 0.0
    for w in (left, right):
        r = w - w.mean()
        num += float(np.dot(r[:-1], r[1:]))
        den += float(np.dot(r, r))
    if den <= 0:
        return 0.0
    # the lag-1 coefficient of a short demeaned series is biased low by about (1 + 3 rho) / n
    # (Kendall 1954); the first-order correction is (n r + 1) / (n - 3)
    n = left.size + right.size
    r = (n * num / den + 1) / max(n - 3, 1)
    return float(min(max(r, 0.0), 0.8))


def _sd(w: np.ndarray) -> float:
    return float(np.std(w, ddof=1)) if w.size > 1 else 0.0


def _near_sd(w: np.ndarray) -> float:
    """Robust noise of a stretch from its night-to-night differences (0 when under 6 nights)."""
    if w.size < 6:
        return 0.0
    return float(MAD_SCALE * np.median(np.abs(np.diff(w))) / np.sqrt(2.0))


def _lim(w: np.ndarray, med: float, sigma_mad: float) -> float:
    """Winsorising distance for one window: 4 robust sds (its own MAD when it has 5 nights)."""
    own = MAD_SCALE * float(np.median(np.abs(w - med))) if w.size >= 5 else 0.0
    return 4 * max(sigma_mad, own, 1e-6)


def _assess(
    y: np.ndarray,
    cuts: list[int],
    i: int,
    sigma_mad: float,
    cfg: DetectConfig,
    tried: int | None = None,
) -> tuple[float, float, float, float, tuple[int, int], tuple[int, int]] | None:
    """Window test of split ``cuts[i]``: (log change, sd, floor, p_night, before, after) or None."""
    tau = cuts[i]
    prev = cuts[i - 1] if i > 0 else 0
    nxt = cuts[i + 1] if i + 1 < len(cuts) else y.size
    b0, a1 = max(prev, tau - cfg.window), min(nxt, tau + cfg.window)
    left, right = y[b0:tau], y[tau:a1]
    if left.size < cfg.min_size or right.size < cfg.persist:
        return None
    ml, mr = float(np.median(left)), float(np.median(right))
    change = mr - ml
    head = right[: cfg.persist] - ml
    # winsorise each window at 4 robust sds around its median: a two-night spike the outlier
    # rule cannot see must not inflate the noise and hide a real step. Each window uses its own
    # robust sd when it is noisier than the series' (a variance change must not shrink the
    # noisy side to the quiet side's scale, which would make a chance shift significant)
    left = np.clip(left, ml - _lim(left, ml, sigma_mad), ml + _lim(left, ml, sigma_mad))
    right = np.clip(right, mr - _lim(right, mr, sigma_mad), mr + _lim(right, mr, sigma_mad))
    t = pooled_t(left, right, min_sd=sigma_mad)
    t_stat, df_t = float(t.statistic), left.size + right.size - 2
    # the noise can change with the level (or without it): where the new side has nights
    # enough to say, each side's noise is taken from its own neighbourhood (robust, from
    # night-to-night differences over up to ``window`` nights, so a cut just past it does not
    # hide it) and the two are compared with Welch's t; a newer change keeps the pooled test
    if y.size - tau >= cfg.min_size + cfg.persist:
        near_l, near_r = y[max(0, tau - cfg.window) : tau], y[tau : tau + cfg.window]
        sl = max(_sd(left), _near_sd(near_l), sigma_mad)
        sr = max(_sd(right), _near_sd(near_r), sigma_mad)
        vl, vr = sl * sl / left.size, sr * sr / right.size
        t_stat = float((right.mean() - left.mean()) / np.sqrt(vl + vr))
        # Welch-Satterthwaite, each variance with the degrees of freedom of the neighbourhood it
        # was estimated on (a short segment between two cuts still has its side's nights)
        dfl, dfr = max(near_l.size, left.size) - 1, max(near_r.size, right.size) - 1
        df_t = int((vl + vr) ** 2 / (vl * vl / max(dfl, 1) + vr * vr / max(dfr, 1)))
    # nightly noise is often correlated from one night to the next (a machine's state lasts
    # days); with lag-1 autocorrelation rho the variance of a window mean grows by about
    # (1 + rho) / (1 - rho), so the t statistic shrinks by its square root
    rho = _lag1(left, right)
    t_stat *= np.sqrt((1 - rho) / (1 + rho))
    t = replace(t, statistic=t_stat, p=float(2 * _special.stdtr(max(df_t, 1), -abs(t_stat))))
    df = left.size + right.size - 2
    sd = float(
        np.sqrt((np.sum((left - left.mean()) ** 2) + np.sum((right - right.mean()) ** 2)) / df)
    )
    sd = max(sd, sigma_mad)
    floor = max(cfg.min_change, float(np.expm1(cfg.noise_floor * sd)))
    if abs(change) < np.log1p(floor):
        return None
    # persistence, for a change among the newest nights: each of its first nights is past the
    # midpoint between the old and the new level (a spike next to a normal night is not a
    # change yet); an older change has the whole segment after it as evidence
    newest = a1 == y.size and right.size < cfg.min_size + cfg.persist
    if newest and np.any(head * np.sign(change) < 0.5 * abs(change)):
        return None
    # an older change needs min_size nights of its new segment past that midpoint: a two-night
    # spike with a normal night after it is not a three-night segment
    past = int(np.sum((y[tau:a1] - ml) * np.sign(change) >= 0.5 * abs(change)))
    if not newest and past < min(cfg.min_size, a1 - tau):
        return None
    # ... and so does the segment before it, seen from the new level (a spiked pair at the start
    # of a history is not a level either)
    held = int(np.sum((y[b0:tau] - mr) * np.sign(change) <= -0.5 * abs(change)))
    if held < min(cfg.min_size, tau - b0):
        return None
    if tried is None:
        tried = max(1, y.size - cfg.min_size - cfg.persist + 1)
    return change, sd, floor, min(1.0, t.p * tried), (b0, tau), (tau, a1)


def _accept(
    y: np.ndarray, found: dict[int, float], sigma: float, cfg: DetectConfig
) -> dict[int, tuple[float, Assessed]]:
    """The splits that pass the window test, floor and persistence, with their numbers."""
    cuts = sorted(found)
    kept: dict[int, tuple[float, Assessed]] = {}
    m = cfg.min_size
    # a cut of the epidemic rule was chosen among every window, not every split: Bonferroni
    # counts the windows (at least min_size nights inside and on each side)
    k = max(0, y.size - 3 * m + 1)
    windows = max(1, k * (k + 1) // 2)
    for i, tau in enumerate(cuts):
        got = _assess(y, cuts, i, sigma, cfg, windows if found[tau] == WINDOW else None)
        if got is not None:
            kept[tau] = (found[tau], got)
    return kept


def locate(values: np.ndarray, cfg: DetectConfig | None = None) -> ChangeSet:
    """Find changes in every row of ``values`` (rows = series, columns = nights, NaN = missing).

    Returns changes with their nightly-value test; raw-sample tests, FDR and CIs are added by
    :func:`apply_fdr` and the caller (or :func:`detect_changes`, which does both).
    """
    cfg = cfg or DetectConfig()
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError("values must be a 2-D array: one series per row")
    with np.errstate(divide="ignore", invalid="ignore"):
        logv = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
    y, lengths, cols = _compact(logv)
    sigma = np.nan_to_num(robust_sigma(y, axis=1), nan=0.0)
    spikes = outlier_mask(y, sigma, cfg)
    # a spike's neighbours are real nights; the newest night is never a spike
    spikes &= np.arange(y.shape[1])[None, :] < (lengths - 1)[:, None]
    if spikes.any():
        y2 = np.where(spikes, np.nan, y)
        y, lengths, cols2 = _compact(y2)
        cols = np.take_along_axis(cols, cols2, axis=1)
        sigma = np.nan_to_num(robust_sigma(y, axis=1), nan=0.0)
    sigma = np.maximum(sigma, 1e-6)
    stat, _ = screen_t(y, lengths, sigma, cfg)
    cand = np.flatnonzero((stat >= cfg.screen_t) & (lengths >= cfg.min_size + cfg.persist))
    rng = np.random.default_rng(cfg.seed)
    first: dict[int, tuple[int, float]] = {}
    for n in np.unique(lengths[cand]):
        rows = cand[lengths[cand] == n]
        taus, pv = edivisive_split(y[rows, :n], cfg, rng)
        for r, t_, p_ in zip(rows, taus, pv, strict=True):
            first[int(r)] = (int(t_), float(p_))
    changes: list[Change] = []
    for r in cand:
        r = int(r)
        n = int(lengths[r])
        yr = y[r, :n]
        found: dict[int, float] = {}
        tau, p = first.get(r, (0, 1.0))
        if tau > 0 and p <= cfg.perm_alpha:
            found[tau] = p
            recurse(yr, 0, tau, float(sigma[r]), cfg, rng, found)
            recurse(yr, tau, n, float(sigma[r]), cfg, rng, found)
        else:
            win = epidemic_split(yr, cfg, rng)
            if win is not None:
                found[win[0]] = found[win[1]] = WINDOW
                recurse(yr, 0, win[0], float(sigma[r]), cfg, rng, found)
                recurse(yr, win[1], n, float(sigma[r]), cfg, rng, found)
        kept = _accept(yr, found, float(sigma[r]), cfg)
        # the tail: a change too new for E-Divisive's edge-weighted statistic
        last = max(kept) if kept else 0
        tail = yr[last:]
        if tail.size >= cfg.min_size + cfg.persist:
            st, tt = segment_screen(tail, float(sigma[r]), cfg, tail=True)
            if st >= cfg.screen_t and all(abs(last + tt - k) > 1 for k in kept):
                cuts = sorted([*kept, last + tt])
                got = _assess(yr, cuts, cuts.index(last + tt), float(sigma[r]), cfg)
                if got is not None:
                    kept[last + tt] = (float("nan"), got)
        for tau in sorted(kept):
            pp, (change, sd, floor, p_night, before, after) = kept[tau]
            changes.append(
                Change(
                    row=r,
                    first_bad=int(cols[r, tau]),
                    last_good=int(cols[r, tau - 1]),
                    method="tail" if np.isnan(pp) else "window" if pp == WINDOW else "e-divisive",
                    log_change=change,
                    ratio=float(np.exp(change)),
                    sigma=sd,
                    floor=floor,
                    p_night=p_night,
                    p_perm=None if np.isnan(pp) or pp == WINDOW else pp,
                    before=(int(cols[r, before[0]]), int(cols[r, before[1] - 1]) + 1),
                    after=(int(cols[r, after[0]]), int(cols[r, after[1] - 1]) + 1),
                    before_cols=tuple(int(cols[r, j]) for j in range(*before)),
                    after_cols=tuple(int(cols[r, j]) for j in range(*after)),
                    p=p_night,
                )
            )
    return ChangeSet(changes=changes, n_series=int(v.shape[0]), n_screened=int(cand.size))


def apply_fdr(found: ChangeSet, cfg: DetectConfig | None = None) -> list[Change]:
    """Benjamini-Hochberg over the pass; returns the changes whose q-value is within ``fdr``.

    Every series tested counts as one hypothesis (p = 1 where nothing was found) and each extra
    change in a series adds one, so screening never makes the correction easier.
    """
    cfg = cfg or DetectConfig()
    ch = found.changes
    rows_with = len({c.row for c in ch})
    m_extra = max(0, found.n_series - rows_with)
    p = np.concatenate([np.array([c.p for c in ch]), np.ones(m_extra)])
    q = benjamini_hochberg(p)[: len(ch)]
    return [replace(c, q=float(qi)) for c, qi in zip(ch, q, strict=True) if qi <= cfg.fdr]


def detect_changes(
    values: np.ndarray, cfg: DetectConfig | None = None, with_ci: bool = True, jobs: int = 1
) -> list[Change]:
    """The whole pipeline on nightly values alone (no raw samples): locate, FDR, CIs."""
    cfg = cfg or DetectConfig()
    v = np.asarray(values, dtype=np.float64)
    kept = apply_fdr(locate_parallel(v, cfg, jobs=jobs), cfg)
    if not with_ci:
        return kept
    out = []
    for c in kept:
        row = v[c.row]
        ci = ratio_of_medians_ci(
            row[list(c.before_cols)], row[list(c.after_cols)], n_boot=500, seed=cfg.seed
        )
        out.append(replace(c, ci_low=ci.low, ci_high=ci.high))
    return out


def _locate_chunk(args: tuple[np.ndarray, DetectConfig]) -> ChangeSet:
    return locate(*args)


def locate_parallel(
    values: np.ndarray, cfg: DetectConfig | None = None, *, jobs: int = 1
) -> ChangeSet:
    """:func:`locate` on ``jobs`` processes, rows split evenly; the same result shape.

    Series are independent until FDR control, which the caller applies once to the merged set.
    Small batches (under 20,000 series) run in this process: starting workers costs more.
    """
    cfg = cfg or DetectConfig()
    v = np.asarray(values, dtype=np.float64)
    if jobs <= 1 or v.shape[0] < 20_000:
        return locate(v, cfg)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    bounds = np.linspace(0, v.shape[0], jobs + 1).astype(int)
    parts = [
        (v[a:b], replace(cfg, seed=cfg.seed + i))
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context(method)) as ex:
        results = list(ex.map(_locate_chunk, parts))
    changes: list[Change] = []
    for a, res in zip(bounds[:-1], results, strict=True):
        changes += [replace(c, row=c.row + int(a)) for c in res.changes]
    return ChangeSet(
        changes=changes, n_series=int(v.shape[0]), n_screened=sum(r.n_screened for r in results)
    )
