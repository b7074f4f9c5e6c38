"""Labelled nightly corpora with the behaviours real GPU nightlies show.

:func:`make_corpus` builds series, each with one *behaviour* (a step, a regression window that
gets fixed, two clock bands, slow drift, ...) on top of realistic nuisance (night-to-night noise,
single-night spikes, missing nights), with the ground truth as :class:`Event` s.
:func:`score_corpus` scores a detector's alerts against it, per behaviour and pooled. Re-exported
by :mod:`tritonwatch.testing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

BEHAVIOURS = (
    "flat",  # nothing happens
    "step",  # one lasting step
    "window",  # a regression that is fixed 5-15 nights later
    "multi",  # two or three steps a few nights apart
    "banded",  # two levels at random night to night (clock states, memory placement)
    "clock",  # nights at a lower GPU clock, with the clock recorded
    "drift",  # a slow ramp over a range of nights
    "variance",  # the noise changes, the level does not
    "fresh",  # a step with only 2-3 nights after it
    "short",  # a series that started 12-25 nights ago, with a step
    "single",  # one value per night (no median over samples): heavier noise, with a step
)


@dataclass(frozen=True)
class CorpusParams:
    """Parameter ranges of a corpus; ``(lo, hi)`` ranges are drawn uniformly (log-uniformly for
    ``noise``, ``step`` and ``band_gap``)."""

    noise: tuple[float, float] = (0.002, 0.03)  # relative night-to-night sd
    step: tuple[float, float] = (0.01, 0.20)  # relative size of a step
    window_nights: tuple[int, int] = (5, 15)
    band_gap: tuple[float, float] = (0.03, 0.08)
    band_share: tuple[float, float] = (0.15, 0.5)  # share of nights in the slow band
    clock_drop: tuple[float, float] = (0.05, 0.15)  # relative clock drop on a throttled night
    clock_share: tuple[float, float] = (0.05, 0.3)
    drift_total: tuple[float, float] = (0.02, 0.06)
    drift_nights: tuple[int, int] = (20, 45)
    variance_factor: tuple[float, float] = (2.0, 4.0)
    multi_gap: tuple[int, int] = (4, 10)
    outlier_rate: float = 0.01
    outlier_size: tuple[float, float] = (0.05, 0.30)
    missing_rate: float = 0.02
    regression_share: float = 0.7
    within_night: float = 0.5  # within-night sd of one sample, as a multiple of the night noise
    samples: int = 10  # samples per night behind each nightly median (1 for "single")


TUNING = CorpusParams()
# Held out from tuning: other seeds and other ranges (wider noise, larger and smaller steps,
# narrower and wider bands, steeper and flatter drift, more spikes and gaps).
HELD_OUT = CorpusParams(
    noise=(0.0015, 0.04),
    step=(0.008, 0.30),
    band_gap=(0.02, 0.12),
    band_share=(0.1, 0.6),
    clock_drop=(0.03, 0.2),
    clock_share=(0.03, 0.4),
    drift_total=(0.015, 0.08),
    drift_nights=(15, 55),
    variance_factor=(1.7, 5.0),
    multi_gap=(3, 12),
    outlier_rate=0.02,
    outlier_size=(0.04, 0.5),
    missing_rate=0.04,
    regression_share=0.6,
    within_night=0.8,
    samples=5,
)


@dataclass(frozen=True)
class Event:
    """Ground truth: in series ``row``, a ``kind`` change ("step", "drift" or "stability").

    ``night`` is the first night that shows it (the first observed one); ``end`` is the night a
    regression window reverted (steps) or the drift's last night; ``size`` is relative, signed.
    """

    row: int
    kind: str
    night: int
    size: float
    end: int | None = None


@dataclass(frozen=True)
class Corpus:
    """Nightly values (rows = series, columns = nights, NaN = none), clocks, truth, behaviours."""

    values: np.ndarray
    clocks: np.ndarray  # MHz per night, NaN where not recorded
    behaviour: np.ndarray  # behaviour name per series
    noise: np.ndarray  # relative sd of a night's value per series (night-to-night + within)
    events: list[Event]


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]))))


def _int(rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
    return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


def _series(
    rng: np.random.Generator, r: int, kind: str, n: int, noise: float, p: CorpusParams
) -> tuple[np.ndarray, np.ndarray, list[Event], float]:
    """One series of behaviour ``kind``: (values, clocks, events, noise of its nightly values)."""
    clock_row = np.full(n, np.nan)
    events: list[Event] = []
    level = np.zeros(n)  # log level from behaviours
    sd = np.full(n, noise)
    start = 0
    changes: list[int] = []  # nights around which no spike or gap may fall

    def step_size() -> float:
        s = _log_uniform(rng, p.step)
        return s if rng.random() < p.regression_share else -s / (1 + s)

    def add_step(night: int) -> None:
        s = step_size()
        level[night:] += np.log1p(s)
        events.append(Event(r, "step", night, s))
        changes.append(night)

    if kind in ("step", "single"):
        add_step(_int(rng, (8, n - 3)))
    elif kind == "window":  # a regression, reverted ``length`` nights later
        length = _int(rng, p.window_nights)
        night = _int(rng, (8, n - length - 3))
        s = _log_uniform(rng, p.step)
        level[night : night + length] += np.log1p(s)
        events.append(Event(r, "step", night, s, night + length))
        changes += [night, night + length]
    elif kind == "multi":
        gaps = [_int(rng, p.multi_gap) for _ in range(_int(rng, (2, 3)) - 1)]
        first = _int(rng, (8, n - 3 - sum(gaps)))
        for night in np.cumsum([first, *gaps]):
            add_step(int(night))
    elif kind == "fresh":
        add_step(n - _int(rng, (2, 3)))
    elif kind == "short":
        start = n - _int(rng, (12, 25))
        add_step(_int(rng, (start + 5, n - 3)))
    elif kind == "banded":
        gap = np.log1p(_log_uniform(rng, p.band_gap))
        share = np.full(n, rng.uniform(*p.band_share))
        if rng.random() < 0.5:  # the band mix changes: not a regression
            share[_int(rng, (15, n - 10)) :] = rng.uniform(*p.band_share)
        level += gap * (rng.random(n) < share)
        if rng.random() < 0.5:
            add_step(_int(rng, (10, n - 5)))
    elif kind == "clock":
        base = 1980.0
        throttled = np.zeros(n, bool)
        if rng.random() < 0.5:
            throttled = rng.random(n) < rng.uniform(*p.clock_share)
        else:  # a run of hot nights: a regression window to whoever ignores the clocks
            a = _int(rng, (5, n - 12))
            throttled[a : a + _int(rng, (3, 10))] = True
        clock = np.where(throttled, base * (1 - rng.uniform(*p.clock_drop, size=n)), base)
        beta = rng.uniform(0.6, 1.0)  # time ~ clock^-beta: not every kernel is compute bound
        level += beta * np.log(base / clock)
        clock_row[:] = clock * np.exp(0.002 * rng.standard_normal(n))
        if rng.random() < 0.5:
            add_step(_int(rng, (10, n - 5)))
    elif kind == "drift":
        total = _log_uniform(rng, p.drift_total) * (1 if rng.random() < 0.5 else -1)
        length = min(_int(rng, p.drift_nights), n - 10)
        a = _int(rng, (3, n - length - 1))
        level += np.log1p(total) * np.clip((np.arange(n) - a) / length, 0.0, 1.0)
        events.append(Event(r, "drift", a + 1, total, a + length))
    elif kind == "variance":
        night = _int(rng, (15, n - 10))
        f = rng.uniform(*p.variance_factor)
        sd[night:] *= f if rng.random() < 0.5 else 1 / f
        events.append(Event(r, "stability", night, 0.0))
    k_samples = 1 if kind == "single" else p.samples
    within = p.within_night * noise
    if k_samples == 1:  # one timing: heavy-tailed (t with 3 dof, scaled to sd `within`)
        err = within / np.sqrt(3.0) * rng.standard_t(3, size=n)
    else:  # the median of k samples: sd about sqrt(pi / 2k) of one sample's
        err = within * np.sqrt(np.pi / (2 * k_samples)) * rng.standard_normal(n)
    y = level + sd * rng.standard_normal(n) + err
    guard = np.zeros(n, bool)
    for c in changes:  # a spike on the night of a change would make its night unknowable
        guard[max(0, c - 1) : c + 2] = True
    spikes = (rng.random(n) < p.outlier_rate) & ~guard
    spikes[-1] = False  # the newest night's spike has not reverted yet
    y[spikes] += np.log1p(rng.uniform(*p.outlier_size, size=int(spikes.sum())))
    v = np.exp(np.log(rng.uniform(0.01, 100.0)) + y)
    gone = rng.random(n) < p.missing_rate
    for c in changes:  # keep the nights that define a change observed
        gone[max(0, c - 1) : c + 2] = False
    v[gone] = np.nan
    v[:start] = np.nan
    return v, clock_row, events, float(np.hypot(noise, within))


def make_corpus(
    n_series: int = 1000,
    n_nights: int = 60,
    *,
    params: CorpusParams = TUNING,
    behaviours: Sequence[str] = BEHAVIOURS,
    weights: Sequence[float] | None = None,
    seed: int = 0,
) -> Corpus:
    """A labelled corpus with one behaviour per series, drawn from ``behaviours``.

    Parameters
    ----------
    n_series, n_nights : int
        Shape of the corpus (at least 30 nights).
    params : CorpusParams
        Parameter ranges; :data:`TUNING` and :data:`HELD_OUT` are the benchmark's two sets.
    behaviours : sequence of str
        Behaviours to draw from (names in :data:`BEHAVIOURS`).
    weights : sequence of float, optional
        Relative frequency of each behaviour; equal by default.
    seed : int
        Random seed; the same seed and parameters give the same corpus.

    Returns
    -------
    Corpus
        Values (positive, like times in ms), recorded clocks for "clock" series, and the truth:
        steps (with the fix night for windows), drifts and variance changes ("stability").
    """
    unknown = set(behaviours) - set(BEHAVIOURS)
    if unknown:
        raise ValueError(f"unknown behaviours {sorted(unknown)}; choose from {BEHAVIOURS}")
    if n_nights < 30:
        raise ValueError("make_corpus needs at least 30 nights")
    p = params
    rng = np.random.default_rng(seed)
    n = n_nights
    w = np.ones(len(behaviours)) if weights is None else np.asarray(weights, dtype=np.float64)
    kinds = rng.choice(np.asarray(behaviours), size=n_series, p=w / w.sum())
    noise = np.exp(rng.uniform(np.log(p.noise[0]), np.log(p.noise[1]), size=n_series))
    values = np.full((n_series, n), np.nan)
    clocks = np.full((n_series, n), np.nan)
    events: list[Event] = []
    for r in range(n_series):
        values[r], clocks[r], evs, noise[r] = _series(rng, r, str(kinds[r]), n, noise[r], p)
        events += evs
    return Corpus(values=values, clocks=clocks, behaviour=kinds, noise=noise, events=events)


Found = tuple[int, str, int, float, int | None]


@dataclass(frozen=True)
class BehaviourScore:
    """Alerts scored against the truth of one behaviour (or all of them)."""

    series: int
    nights: int  # series-nights observed
    events: int  # events that should be alerted (steps and drifts)
    tp: int
    fp: int
    fn: int
    exact: int  # true positives whose first bad night is exactly the true one
    fixed: int  # windows whose reversion was reported at the right night (within tolerance)
    windows: int
    precision: float
    recall: float
    f1: float
    false_alarms: float  # per 1,000 series-nights


@dataclass(frozen=True)
class CorpusScore:
    """Per-behaviour and pooled scores, and the two subsets the detector's targets are set on
    (docs/detection.md)."""

    by_behaviour: dict[str, BehaviourScore]
    pooled: BehaviourScore
    steps_target: BehaviourScore  # steps >= 3% on series with noise <= 1% ("step", "flat")
    windows_target: BehaviourScore  # windows >= 5 nights, >= 3%, noise <= 1%
    extras: dict[str, float] = field(default_factory=dict)


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def _tally(
    rows: np.ndarray,
    corpus: Corpus,
    matched: dict[int, tuple[Event, Found]],
    alerts_by_row: dict[int, list[Found]],
    ignored: set[int],
    wanted: set[int],
    tolerance: int,
) -> BehaviourScore:
    """Score the series ``rows``: events in ``wanted`` (ids) count, alerts in ``ignored`` don't."""
    rowset = {int(r) for r in rows}
    evs = [e for i, e in enumerate(corpus.events) if i in wanted and e.row in rowset]
    tp = sum(1 for i in wanted if i in matched and corpus.events[i].row in rowset)
    fp = sum(
        1
        for r in rowset
        for a in alerts_by_row.get(r, [])
        if id(a) not in ignored and not any(m[1] is a for m in matched.values())
    )
    exact = sum(
        1
        for i, (e, a) in matched.items()
        if i in wanted
        and e.row in rowset
        and e.kind == "step"
        and (a[2] == e.night or (a[4] == e.night and np.sign(a[3]) != np.sign(e.size)))
    )
    windows = [
        i for i in wanted if corpus.events[i].end is not None and corpus.events[i].kind == "step"
    ]
    windows = [i for i in windows if corpus.events[i].row in rowset]
    fixed = 0
    for i in windows:
        end = matched[i][1][4] if i in matched else None
        if end is not None and abs(int(end) - int(corpus.events[i].end or 0)) <= tolerance:
            fixed += 1
    nights = int(np.isfinite(corpus.values[list(rowset)]).sum()) if rowset else 0
    prec, rec = _ratio(tp, tp + fp), _ratio(tp, len(evs))
    return BehaviourScore(
        series=len(rowset),
        nights=nights,
        events=len(evs),
        tp=tp,
        fp=fp,
        fn=len(evs) - tp,
        exact=exact,
        fixed=fixed,
        windows=len(windows),
        precision=prec,
        recall=rec,
        f1=2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        false_alarms=1000 * fp / nights if nights else 0.0,
    )


def score_corpus(corpus: Corpus, alerts: Sequence[Found], *, tolerance: int = 1) -> CorpusScore:
    """Score ``alerts`` against the corpus truth, per behaviour and pooled.

    Parameters
    ----------
    corpus : Corpus
        The labelled corpus.
    alerts : sequence of (row, kind, night, signed relative change, end)
        ``kind`` is "step" or "drift"; for a step, ``end`` is the night it was reported fixed
        (None while open); for a drift, its last night.
    tolerance : int
        Nights a step's first bad night may be off and still match.

    Returns
    -------
    CorpusScore
        A step alert matches a true step (or regression window) of the same sign within
        ``tolerance`` nights; a step alert closed as fixed also matches a true step of the
        opposite sign at its fix night (the change that reverted it); a drift alert matches a
        true drift of the same sign whose range it overlaps. Each event and alert matches once; every other alert is a false alarm
        (including a step reported on a drift, or anything on a variance-only change).
    """
    by_row: dict[int, list[Found]] = {}
    for a in alerts:
        by_row.setdefault(int(a[0]), []).append(a)
    matched: dict[int, tuple[Event, Found]] = {}
    used: set[int] = set()
    for i, e in enumerate(corpus.events):
        if e.kind == "stability":
            continue
        best: Found | None = None
        for a in by_row.get(e.row, []):
            if id(a) in used or a[1] != e.kind or np.sign(a[3]) != np.sign(e.size):
                continue
            if e.kind == "step":
                d = abs(a[2] - e.night)
                if d <= tolerance and (best is None or d < abs(best[2] - e.night)):
                    best = a
            else:
                hi = a[4] if a[4] is not None else a[2]
                if a[2] <= (e.end or e.night) + tolerance and hi >= e.night - tolerance:
                    best = best or a
        if best is not None:
            used.add(id(best))
            matched[i] = (e, best)
    # a step alert closed as fixed has also found the change that took the level back: a true
    # step of the opposite sign at its fix night (consecutive steps that revert)
    for i, e in enumerate(corpus.events):
        if e.kind != "step" or i in matched:
            continue
        for a in by_row.get(e.row, []):
            if (
                a[1] == "step"
                and a[4] is not None
                and id(a) in used
                and abs(a[4] - e.night) <= tolerance
                and np.sign(a[3]) != np.sign(e.size)
                and not any(m[1] is a and m[0].end is not None for m in matched.values())
            ):
                matched[i] = (e, a)
                break
    every = {i for i, e in enumerate(corpus.events) if e.kind != "stability"}
    by_b = {
        b: _tally(
            np.flatnonzero(corpus.behaviour == b), corpus, matched, by_row, set(), every, tolerance
        )
        for b in [*BEHAVIOURS, *sorted(set(corpus.behaviour.tolist()) - set(BEHAVIOURS))]
        if np.any(corpus.behaviour == b)
    }
    pooled = _tally(
        np.arange(corpus.values.shape[0]), corpus, matched, by_row, set(), every, tolerance
    )
    quiet = corpus.noise <= 0.01

    def target(behaviours: tuple[str, ...], windows: bool) -> BehaviourScore:
        rows = np.flatnonzero(np.isin(corpus.behaviour, behaviours) & quiet)
        want = {
            i
            for i in every
            if corpus.events[i].kind == "step"
            and abs(np.log1p(corpus.events[i].size)) >= np.log(1.03) - 1e-12
            and (corpus.events[i].end is not None) == windows
        }
        small = {id(a) for i, (e, a) in matched.items() if i not in want}
        # an alert on a planted change below 3% is neither a hit nor a false alarm here
        small |= {
            id(a)
            for i, e in enumerate(corpus.events)
            if i in every and i not in want and i not in matched
            for a in by_row.get(e.row, [])
            if (a[1] == "step" and abs(a[2] - e.night) <= tolerance)
            or (a[1] == "drift" and a[2] - tolerance <= e.night <= (a[4] or a[2]) + tolerance)
        }
        return _tally(rows, corpus, matched, by_row, small, want, tolerance)

    return CorpusScore(
        by_behaviour=by_b,
        pooled=pooled,
        steps_target=target(("step", "flat"), False),
        windows_target=target(("window", "flat"), True),
    )
