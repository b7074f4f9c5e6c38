"""A second, independently built corpus for sanity checks: not the one the detector was tuned on.

Written apart from ``tritonwatch.corpus`` and on purpose unlike it: the noise is AR(1)
(correlated night to night, as on a machine whose state drifts for days) with Student-t
innovations (heavy tails), levels move by multiplicative factors drawn from a discrete set of
"realistic" regressions, spikes come in bursts of one or two nights, and whole weeks can be
missing. Only the result containers (``Corpus``, ``Event``) are shared, so the same scorer runs.
"""

from __future__ import annotations

import numpy as np

from tritonwatch.corpus import Corpus, Event

KINDS = ("quiet", "jump", "revert", "heavy")
# the scorer's behaviour names (its targets use "flat", "step" and "window")
NAMES = {"quiet": "flat", "jump": "step", "revert": "window", "heavy": "heavy-tailed"}


def make_independent(n_series: int, n_nights: int = 60, seed: int = 7) -> Corpus:
    """Series of four kinds: quiet, one jump, a jump that reverts after 5-15 nights, heavy tails.

    ``noise`` is the marginal sd of the AR(1) noise; a ``jump`` or ``revert`` is 3-20% either
    way (reverts are always slowdowns); ``heavy`` is quiet with t(2) innovations.
    """
    g = np.random.default_rng(seed)
    kinds = g.choice(np.array(KINDS), size=n_series, p=[0.45, 0.25, 0.15, 0.15])
    vals = np.empty((n_series, n_nights))
    sd_marg = g.choice(np.array([0.002, 0.004, 0.007, 0.01, 0.02]), size=n_series)
    events: list[Event] = []
    sizes = np.array([0.03, 0.04, 0.06, 0.08, 0.12, 0.2])
    for i in range(n_series):
        phi = g.uniform(0.0, 0.5)
        df = 2.0 if kinds[i] == "heavy" else 4.0
        innov = g.standard_t(df, n_nights) / np.sqrt(df / (df - 2) if df > 2 else 3.0)
        e = np.empty(n_nights)
        e[0] = innov[0]
        for t in range(1, n_nights):
            e[t] = phi * e[t - 1] + np.sqrt(1 - phi * phi) * innov[t]
        logv = np.log(g.uniform(0.05, 20.0)) + sd_marg[i] * e
        if kinds[i] == "jump":
            at = int(g.integers(10, n_nights - 4))
            f = float(g.choice(sizes)) * (1 if g.random() < 0.6 else -1)
            f = f if f > 0 else f / (1 - f)
            logv[at:] += np.log1p(f)
            events.append(Event(i, "step", at, f))
        elif kinds[i] == "revert":
            at = int(g.integers(10, n_nights - 20))
            length = int(g.integers(5, 16))
            f = float(g.choice(sizes))
            logv[at : at + length] += np.log1p(f)
            events.append(Event(i, "step", at, f, at + length))
        burst = g.random(n_nights) < 0.01
        for t in np.flatnonzero(burst[: n_nights - 3]):
            if any(abs(t - ev.night) < 3 or abs(t - (ev.end or -99)) < 3 for ev in events[-1:]):
                continue
            logv[t : t + int(g.integers(1, 3))] += np.log1p(g.uniform(0.05, 0.4))
        v = np.exp(logv)
        if g.random() < 0.1:  # a missing week
            w = int(g.integers(0, n_nights - 7))
            if not any(ev.row == i for ev in events):
                v[w : w + 7] = np.nan
        vals[i] = v
    return Corpus(
        values=vals,
        clocks=np.full_like(vals, np.nan),
        behaviour=np.array([NAMES[k] for k in kinds]),
        noise=sd_marg,
        events=events,
    )
