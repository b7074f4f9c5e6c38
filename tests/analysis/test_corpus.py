"""The behaviour corpus (tritonwatch.testing.make_corpus), its scorer, and held-out figures."""

from __future__ import annotations

import numpy as np
import pytest

from tritonwatch.analysis.nightly import analyse
from tritonwatch.testing import (
    BEHAVIOURS,
    HELD_OUT,
    TUNING,
    Corpus,
    Event,
    make_corpus,
    score_corpus,
)


def test_corpus_has_every_behaviour_with_its_truth() -> None:
    c = make_corpus(1100, 60, seed=3)
    assert c.values.shape == (1100, 60) and set(c.behaviour) == set(BEHAVIOURS)
    by_kind: dict[str, list[Event]] = {}
    for e in c.events:
        by_kind.setdefault(str(c.behaviour[e.row]), []).append(e)
    assert all(e.end is not None and 5 <= e.end - e.night <= 15 for e in by_kind["window"])
    assert all(e.kind == "drift" and e.end is not None for e in by_kind["drift"])
    assert all(e.kind == "stability" for e in by_kind["variance"])
    assert all(e.night >= 57 for e in by_kind["fresh"])
    assert "flat" not in by_kind
    assert {
        len([e for e in by_kind["multi"] if e.row == r]) for r in {e.row for e in by_kind["multi"]}
    } <= {2, 3}
    # clocks are recorded for clock series only, and some of their nights ran slower
    rec = np.isfinite(c.clocks).any(axis=1)
    assert set(c.behaviour[rec]) == {"clock"}
    assert np.nanmin(c.clocks) < 0.97 * np.nanmedian(c.clocks)
    # short series start late; every change's own nights are observed
    short = np.flatnonzero(c.behaviour == "short")
    assert np.all(np.isnan(c.values[short, :30]))
    assert all(np.isfinite(c.values[e.row, e.night]) for e in c.events if e.kind == "step")
    # deterministic, and the held-out ranges differ from the tuning ones
    again = make_corpus(1100, 60, seed=3)
    assert np.array_equal(c.values, again.values, equal_nan=True)
    assert HELD_OUT != TUNING and HELD_OUT.noise != TUNING.noise
    with pytest.raises(ValueError, match="unknown behaviours"):
        make_corpus(10, 60, behaviours=["sideways"])


def _tiny() -> Corpus:
    values = np.ones((4, 40))
    return Corpus(
        values=values,
        clocks=np.full_like(values, np.nan),
        behaviour=np.array(["step", "window", "drift", "flat"]),
        noise=np.full(4, 0.005),
        events=[
            Event(0, "step", 20, 0.05),
            Event(1, "step", 10, 0.05, 18),
            Event(2, "drift", 5, 0.03, 30),
        ],
    )


def test_score_corpus_matches_kind_sign_and_night() -> None:
    c = _tiny()
    alerts = [
        (0, "step", 21, 0.05, None),  # one night off: matches
        (1, "step", 10, 0.05, 18),  # a window, fixed at the right night
        (2, "step", 12, 0.01, None),  # a step on a drift: a false alarm
        (2, "drift", 8, 0.03, 28),  # overlaps the true drift: matches
        (3, "step", 30, -0.02, None),  # on a flat series: a false alarm
    ]
    sc = score_corpus(c, alerts)
    assert (sc.pooled.tp, sc.pooled.fp, sc.pooled.fn) == (3, 2, 0)
    assert sc.by_behaviour["window"].fixed == 1 and sc.by_behaviour["step"].exact == 0
    assert sc.by_behaviour["drift"].fp == 1 and sc.by_behaviour["drift"].tp == 1
    assert sc.pooled.false_alarms == pytest.approx(1000 * 2 / 160)
    wrong_sign = score_corpus(c, [(0, "step", 20, -0.05, None)])
    assert wrong_sign.pooled.tp == 0 and wrong_sign.pooled.fp == 1


def test_held_out_targets_on_a_small_corpus() -> None:
    """The issue's targets, on a held-out corpus the rules were not tuned on (small, for CI)."""
    c = make_corpus(2500, 60, params=HELD_OUT, behaviours=("flat", "step", "window"), seed=77)
    an = analyse(c.values, c.clocks)
    sc = score_corpus(
        c,
        [(a.row, a.kind, a.first_bad, a.ratio - 1, a.fixed_at) for a in an.alerts],
    )
    assert sc.steps_target.events >= 100 and sc.windows_target.events >= 100
    assert sc.steps_target.f1 >= 0.95
    assert sc.windows_target.f1 >= 0.95
    assert sc.windows_target.fixed >= 0.9 * sc.windows_target.events
    assert sc.by_behaviour["flat"].false_alarms <= 0.5


def test_a_fixed_alert_also_finds_the_step_that_reverted_it() -> None:
    values = np.ones((1, 40))
    c = Corpus(
        values=values,
        clocks=np.full_like(values, np.nan),
        behaviour=np.array(["multi"]),
        noise=np.full(1, 0.005),
        events=[
            Event(0, "step", 10, 0.08),
            Event(0, "step", 20, -0.07),
            Event(0, "step", 30, 0.05),
        ],
    )
    sc = score_corpus(c, [(0, "step", 10, 0.08, 20), (0, "step", 30, 0.05, None)])
    assert (sc.pooled.tp, sc.pooled.fp, sc.pooled.fn, sc.pooled.exact) == (3, 0, 0, 3)
    # an alert that did not close at that night does not get the credit
    sc2 = score_corpus(c, [(0, "step", 10, 0.08, None), (0, "step", 30, 0.05, None)])
    assert (sc2.pooled.tp, sc2.pooled.fn) == (2, 1)
