"""One detection pass over nightly series, behaviour by behaviour; pure, no I/O.

On top of :mod:`.changepoint` (steps): nights at a lower recorded GPU clock are explained and
left out; banded series have their band gap taken out (:mod:`.bands`); a change better explained
by a ramp is a drift (:mod:`.drift`); a regression followed by its reversion is one alert marked
fixed; a variance-only change is a stability note; a change too new to report says how many more
nights it needs. ``docs/detection.md`` gives every rule and its measured effect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .bands import clock_explained, fit_bands, fit_bands_local, screen_bands
from .changepoint import Change, DetectConfig, _compact, locate, outlier_mask
from .drift import fit_ramp, prefers_ramp
from .notes import Note, pending_notes, stability_tests
from .stats import benjamini_hochberg, robust_sigma


@dataclass(frozen=True)
class NightlyConfig:
    """Thresholds of the behaviour rules; the step detector's are in ``detect``."""

    detect: DetectConfig = field(default_factory=DetectConfig)
    clock_tolerance: float = 0.02  # a night > 2% under the series' median clock is explained
    band_separation: float = 3.0  # band gap in sds of a within-band night-to-night difference
    drift_nights: int = 15  # a change spread over at least this many nights can be a drift
    revert_share: float = 0.5  # a fix takes the level back by at least half the regression
    stability_ratio: float = 1.5  # noise change (either way) worth a stability note
    stability_min: int = 8  # nights each side of a noise change


@dataclass(frozen=True)
class NightlyAlert:
    """A change to file: a step (possibly fixed since) or a drift, with its evidence.

    Night indices are columns of the input matrix. For a drift, ``first_bad`` is the first night
    of the ramp and ``end`` its last; for a step that reverted, ``fixed_at`` is the first night
    back at the old level.
    """

    row: int
    kind: str  # "step" | "drift"
    first_bad: int
    last_good: int
    ratio: float  # after / before (a drift: over the whole ramp)
    p: float
    q: float = 1.0
    fixed_at: int | None = None
    fixed_ratio: float | None = None  # level after the fix / level before the regression
    end: int | None = None  # a drift's last night
    change: Change | None = None  # the step, as :mod:`.changepoint` found it
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Analysis:
    """Everything one pass found."""

    alerts: list[NightlyAlert]
    notes: list[Note]
    n_series: int
    n_screened: int
    banded: dict[int, dict[str, float]]  # row -> band model (gap, upper share)


def _band_adjust(
    y: np.ndarray, lengths: np.ndarray, cfg: NightlyConfig
) -> tuple[np.ndarray, dict[int, dict[str, float]]]:
    """Take the band gap out of every banded row (log values, compacted)."""
    bs = screen_bands(y, lengths, separation=cfg.band_separation)
    out = y.copy()
    models: dict[int, dict[str, float]] = {}
    for r in np.flatnonzero(bs.banded):
        n = int(lengths[r])
        share = float(fit_bands(y[r, :n], float(bs.gap[r])).mean())
        upper = fit_bands_local(
            y[r, :n], float(bs.gap[r]), share=share, scale=float(bs.diff_sd[r]) / np.sqrt(2)
        )
        out[r, :n] -= np.where(upper, bs.gap[r], 0.0)
        models[int(r)] = {"gap": float(np.expm1(bs.gap[r])), "upper_share": float(upper.mean())}
    return out, models


def _drift(
    yr: np.ndarray, cuts: list[int], sigma: float, cfg: NightlyConfig
) -> tuple[int, int, float, float, float] | None:
    """(start, stop, total, slope, p) when a ramp explains the row better than its steps."""
    dc = cfg.detect
    keep = ~outlier_mask(yr[None, :], np.array([sigma]), dc)[0]
    keep[-1] = True
    idx = np.flatnonzero(keep)
    z = yr[idx]
    ramp = fit_ramp(z, cfg.drift_nights)
    if ramp is None:
        return None
    zc = [int(np.searchsorted(idx, c)) for c in cuts]
    if not prefers_ramp(z, zc, ramp):
        return None
    resid_sd = np.sqrt(ramp.sse / max(1, z.size - 4))
    floor = max(dc.min_change, float(np.expm1(dc.noise_floor * max(resid_sd, sigma))))
    if abs(ramp.total) < np.log1p(floor):
        return None
    return int(idx[ramp.start]), int(idx[ramp.stop]), ramp.total, ramp.slope, ramp.p


def _trend_rows(y: np.ndarray, lengths: np.ndarray, sigma: np.ndarray, t_min: float) -> np.ndarray:
    """Rows whose least-squares slope over their whole history has |t| >= t_min."""
    s, n = y.shape
    t = np.arange(n, dtype=np.float64)[None, :]
    ok = np.isfinite(y)
    cnt = np.maximum(lengths, 1)
    tm = np.where(ok, t, 0).sum(axis=1) / cnt
    ym = np.where(ok, y, 0).sum(axis=1) / cnt
    tc = np.where(ok, t - tm[:, None], 0.0)
    sxx = (tc * tc).sum(axis=1)
    sxy = (tc * np.where(ok, y - ym[:, None], 0.0)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = np.abs(sxy / sxx) * np.sqrt(sxx) / np.maximum(sigma, 1e-9)
    return np.flatnonzero((lengths >= 16) & (np.nan_to_num(tstat) >= t_min))


@dataclass(frozen=True)
class _Part:
    """What one block of rows gives before the pass-wide steps (rows local to the block)."""

    drafts: list[NightlyAlert]
    notes: list[Note]  # explained and pending (pending filtered once alerts are known)
    banded: dict[int, dict[str, float]]
    n_screened: int
    stability: tuple[np.ndarray, np.ndarray, np.ndarray]  # p, noise ratio, night per row


def _rows(v: np.ndarray, clocks: np.ndarray | None, cfg: NightlyConfig, n_total: int) -> _Part:
    """Everything per series: clocks, bands, steps, drift, stability tests, pending notes."""
    dc = cfg.detect
    v = v.copy()
    notes: list[Note] = []
    if clocks is not None:
        explained = clock_explained(clocks, tolerance=cfg.clock_tolerance) & np.isfinite(v)
        for er in np.flatnonzero(explained.any(axis=1)):
            nights = [int(x) for x in np.flatnonzero(explained[er])]
            notes.append(Note(int(er), "explained", nights[0], {"nights": nights}))
        v[explained] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        logv = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
    y, lengths, cols = _compact(logv)
    y, banded = _band_adjust(y, lengths, cfg)
    adj = np.full_like(v, np.nan)
    rows_i = np.repeat(np.arange(v.shape[0]), v.shape[1]).reshape(v.shape)
    fin = np.isfinite(y)
    adj[rows_i[fin], cols[fin]] = np.exp(y[fin])
    found = locate(adj, dc)
    sigma = np.maximum(np.nan_to_num(robust_sigma(y, axis=1), nan=0.0), 1e-6)
    by_row: dict[int, list[Change]] = {}
    for ch in found.changes:
        by_row.setdefault(ch.row, []).append(ch)
    cand = set(by_row) | {int(r) for r in _trend_rows(y, lengths, sigma, dc.screen_t)}
    drafts: list[NightlyAlert] = []
    for row in sorted(cand):
        r = int(row)
        n = int(lengths[r])
        yr = y[r, :n]
        rc = cols[r, :n]
        changes = by_row.get(r, [])
        cuts = [int(np.searchsorted(rc, ch.first_bad)) for ch in changes]
        dr = _drift(yr, cuts, float(sigma[r]), cfg)
        if dr is not None:
            a, b, total, slope, p_drift = dr
            drafts.append(
                NightlyAlert(
                    row=r,
                    kind="drift",
                    first_bad=int(rc[a + 1]),
                    last_good=int(rc[a]),
                    ratio=float(np.exp(total)),
                    p=p_drift,
                    end=int(rc[b]),
                    evidence={
                        "slope_per_night": float(np.expm1(slope)),
                        "nights": int(b - a),
                        "noise": float(sigma[r]),
                    },
                )
            )
            continue
        for ch in changes:
            drafts.append(
                NightlyAlert(
                    row=r,
                    kind="step",
                    first_bad=ch.first_bad,
                    last_good=ch.last_good,
                    ratio=ch.ratio,
                    p=ch.p,
                    change=ch,
                )
            )
    notes += pending_notes(y, lengths, cols, sigma, dc, n_total)
    # the noise test sees the series without its spikes: two spikes on one side would
    # otherwise read as a noisier stretch
    spikes = outlier_mask(y, sigma, dc)
    ys, ls, cs = _compact(np.where(spikes, np.nan, y))
    cs = np.take_along_axis(cols, cs, axis=1)
    return _Part(
        drafts, notes, banded, found.n_screened, stability_tests(ys, ls, cs, cfg.stability_min)
    )


def _rows_args(args: tuple[np.ndarray, np.ndarray | None, NightlyConfig, int]) -> _Part:
    return _rows(*args)


def _shift(part: _Part, off: int) -> _Part:
    """The block's rows as rows of the whole pass."""
    if off == 0:
        return part

    def alert(a: NightlyAlert) -> NightlyAlert:
        ch = replace(a.change, row=a.change.row + off) if a.change is not None else None
        return replace(a, row=a.row + off, change=ch)

    return _Part(
        [alert(a) for a in part.drafts],
        [replace(n, row=n.row + off) for n in part.notes],
        {r + off: m for r, m in part.banded.items()},
        part.n_screened,
        part.stability,
    )


def analyse(
    values: np.ndarray,
    clocks: np.ndarray | None = None,
    cfg: NightlyConfig | None = None,
    *,
    jobs: int = 1,
    adjust: Callable[[list[Change]], list[Change]] | None = None,
) -> Analysis:
    """Find steps, fixes, drifts, stability changes and pending changes in every row.

    Parameters
    ----------
    values : ndarray
        Nightly values, one series per row, one night per column, NaN where missing.
    clocks : ndarray, optional
        Recorded GPU clock per night (same shape, NaN where not recorded).
    cfg : NightlyConfig, optional
        Thresholds; defaults documented in ``docs/detection.md``.
    jobs : int
        Worker processes; series are independent until the pass-wide false-discovery-rate
        control, which runs once here. Under 20,000 series everything runs in this process.
    adjust : callable, optional
        Applied to the steps found before false-discovery-rate control (``detect`` adds the
        raw-sample test there); gets and returns a list of :class:`.changepoint.Change`.

    Returns
    -------
    Analysis
        Alerts after false-discovery-rate control over every series of the pass (each series is
        a hypothesis; each extra change or drift adds one), and notes.
    """
    cfg = cfg or NightlyConfig()
    dc = cfg.detect
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError("values must be a 2-D array: one series per row")
    c = None if clocks is None else np.asarray(clocks, dtype=np.float64)
    if c is not None and c.shape != v.shape:
        raise ValueError(f"clocks have shape {c.shape}, values {v.shape}: give one per night")
    s = v.shape[0]
    if jobs <= 1 or s < 20_000:
        parts = [_rows(v, c, cfg, s)]
        offsets = [0]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        bounds = np.linspace(0, s, jobs + 1).astype(int)
        offsets = [int(x) for x in bounds[:-1]]
        args = [
            (
                v[lo:hi],
                None if c is None else c[lo:hi],
                replace(cfg, detect=replace(dc, seed=dc.seed + i)),
                s,
            )
            for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
        ]
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context(method)) as ex:
            parts = list(ex.map(_rows_args, args))
    parts = [_shift(pt, off) for pt, off in zip(parts, offsets, strict=True)]
    drafts = [d for pt in parts for d in pt.drafts]
    banded = {r: m for pt in parts for r, m in pt.banded.items()}
    if adjust is not None:
        steps = [i for i, d in enumerate(drafts) if d.change is not None]
        tested = adjust([drafts[i].change for i in steps])  # type: ignore[misc]
        for i, ch in zip(steps, tested, strict=True):
            drafts[i] = replace(drafts[i], change=ch, p=ch.p)
    # FDR: every series is one hypothesis (p = 1 where nothing was found), each extra one adds
    rows_with = len({d.row for d in drafts})
    pv = np.concatenate([[d.p for d in drafts], np.ones(max(0, s - rows_with))])
    q = benjamini_hochberg(pv)[: len(drafts)] if drafts else np.array([])
    kept = [replace(d, q=float(qi)) for d, qi in zip(drafts, q, strict=True) if qi <= dc.fdr]
    alerts = [
        replace(al, evidence={**al.evidence, "bands": banded[al.row]}) if al.row in banded else al
        for al in _link_fixes(kept, cfg)
    ]
    alerted = {a.row for a in alerts}
    notes = [n for pt in parts for n in pt.notes if n.kind != "pending" or n.row not in alerted]
    notes += _stability_notes(parts, offsets, cfg)
    return Analysis(
        alerts=alerts,
        notes=sorted(notes, key=lambda n: (n.row, n.night)),
        n_series=s,
        n_screened=sum(pt.n_screened for pt in parts),
        banded=banded,
    )


def _stability_notes(parts: list[_Part], offsets: list[int], cfg: NightlyConfig) -> list[Note]:
    """Benjamini-Hochberg over every row's noise-change test; notes for those that pass."""
    if not parts:
        return []
    p = np.concatenate([pt.stability[0] for pt in parts])
    ratio = np.concatenate([pt.stability[1] for pt in parts])
    night = np.concatenate([pt.stability[2] for pt in parts])
    if p.size == 0:
        return []
    q = benjamini_hochberg(p)
    big = (ratio >= cfg.stability_ratio) | (ratio <= 1 / cfg.stability_ratio)
    return [
        Note(int(r), "stability", int(night[r]), {"noise_ratio": float(ratio[r])})
        for r in np.flatnonzero((q <= cfg.detect.fdr) & big)
    ]


def _link_fixes(kept: list[NightlyAlert], cfg: NightlyConfig) -> list[NightlyAlert]:
    """A regression followed by an opposite step that takes the level back is one fixed alert.

    In log terms the regression is ``d1 > 0`` (worse) and the next change ``d2``; it reverted when
    ``|d1 + d2| <= revert_share * |d1|``: the level after the fix is nearer the old level than the
    regressed one. Direction here is "up" (a larger value); the caller maps it to better/worse.
    """
    out: list[NightlyAlert] = []
    by_row: dict[int, list[NightlyAlert]] = {}
    for a in kept:
        by_row.setdefault(a.row, []).append(a)
    for _, items in sorted(by_row.items()):
        items.sort(key=lambda a: a.first_bad)
        i = 0
        while i < len(items):
            a = items[i]
            nxt = items[i + 1] if i + 1 < len(items) else None
            if (
                a.kind == "step"
                and nxt is not None
                and nxt.kind == "step"
                and np.sign(np.log(a.ratio)) != np.sign(np.log(nxt.ratio))
                and abs(np.log(a.ratio) + np.log(nxt.ratio))
                <= cfg.revert_share * abs(np.log(a.ratio))
            ):
                out.append(
                    replace(a, fixed_at=nxt.first_bad, fixed_ratio=float(a.ratio * nxt.ratio))
                )
                i += 2
                continue
            out.append(a)
            i += 1
    return out
