"""Change-point detection on generated histories: planted steps, flat series, spikes, FDR."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tritonwatch.analysis.changepoint import (
    ChangeSet,
    DetectConfig,
    apply_fdr,
    detect_changes,
    locate,
)
from tritonwatch.analysis.splits import edivisive_split, energy_q
from tritonwatch.testing import make_histories, score


def _flat(n_series: int, nights: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.exp(noise * rng.standard_normal((n_series, nights)))


def test_energy_q_matches_the_definition() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 12))
    q = energy_q(x, 2)[0]
    for tau in range(2, 11):
        a, b = x[0, :tau], x[0, tau:]
        nl, nr, n = a.size, b.size, x.size
        e = (
            2 * np.abs(a[:, None] - b[None, :]).mean()
            - np.abs(a[:, None] - a[None, :]).sum() / (nl * (nl - 1))
            - np.abs(b[:, None] - b[None, :]).sum() / (nr * (nr - 1))
        )
        assert q[tau - 1] == pytest.approx(nl * nr / n * e, rel=1e-5)
    assert np.isneginf(q[0]) and np.isneginf(q[-1])


def test_edivisive_finds_a_mid_step_and_rejects_noise() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.01, (2, 40))
    x[0, 25:] += 0.05
    tau, p = edivisive_split(x, DetectConfig(), rng)
    assert tau[0] == 25 and p[0] <= 0.05
    assert p[1] > 0.05


def test_planted_steps_are_found_at_the_right_night() -> None:
    h = make_histories(
        600,
        60,
        step_fraction=0.5,
        noise_levels=(0.005, 0.01),
        step_sizes=(0.05, 0.10, 0.25),
        seed=11,
    )
    found = detect_changes(h.values)
    sc = score([(c.row, c.first_bad, c.ratio - 1) for c in found], h.truth)
    assert sc.recall >= 0.9 and sc.precision >= 0.95, sc
    for c in found:
        assert c.ci_low is not None and c.ci_high is not None and c.ci_low <= c.ratio <= c.ci_high
        assert c.q <= 0.05 and c.p <= 1.0 and c.last_good < c.first_bad


def test_flat_histories_are_not_flagged() -> None:
    # A/A-like: realistic noise features (drift, clock states, spikes, gaps) but no steps
    h = make_histories(2000, 60, step_fraction=0.0, seed=5)
    found = detect_changes(h.values, with_ci=False)
    assert len(found) <= 2000 * 60 / 1000  # at most one false alarm per 1,000 series-nights
    assert detect_changes(_flat(500, 60, 0.01, 6), with_ci=False) == []


def test_one_night_spike_is_not_a_regression() -> None:
    v = _flat(50, 40, 0.005, 7)
    v[:, 20] *= 1.25  # every series spikes one night, then reverts
    assert detect_changes(v, with_ci=False) == []
    # ... but the same jump that persists is a change, found at its first night
    w = _flat(50, 40, 0.005, 8)
    w[:, 20:] *= 1.25
    found = detect_changes(w, with_ci=False)
    assert {c.first_bad for c in found} == {20} and len(found) == 50


def test_persistence_rule_for_the_newest_nights() -> None:
    v = _flat(20, 40, 0.005, 9)
    v[:, -1] *= 1.2  # only the newest night is off: not reported yet
    assert detect_changes(v, with_ci=False) == []
    v[:, -2] *= 1.2  # two nights in a row: reported, first bad = the first of them
    found = detect_changes(v, with_ci=False)
    assert len(found) == 20 and {c.first_bad for c in found} == {38}
    assert all(c.method in ("tail", "e-divisive") for c in found)


def test_relative_change_floor() -> None:
    v = _flat(30, 60, 0.0005, 10)
    v[:, 30:] *= 1.004  # 0.4%: highly significant on quiet series, but under the 1% floor
    assert detect_changes(v, with_ci=False) == []
    found = detect_changes(v, replace(DetectConfig(), min_change=0.002), with_ci=False)
    assert len(found) == 30


def test_improvements_and_missing_nights() -> None:
    v = _flat(10, 50, 0.005, 12)
    v[:, 25:] *= 0.8
    v[:, 10] = np.nan
    v[:, 24] = np.nan  # the night before the change is missing: last good is the one before
    found = detect_changes(v, with_ci=False)
    assert len(found) == 10
    assert all(c.first_bad == 25 and c.last_good == 23 and c.ratio < 1 for c in found)


def test_fdr_counts_every_series_tested() -> None:
    v = _flat(4, 40, 0.01, 13)
    v[0, 20:] *= 1.03
    found = locate(v)
    assert found.n_series == 4
    kept_small = apply_fdr(found)
    # the same change tested among 100,000 quiet series needs a far smaller p-value
    big = ChangeSet(changes=found.changes, n_series=100_000, n_screened=found.n_screened)
    kept_big = apply_fdr(big)
    assert len(kept_big) <= len(kept_small)
    if kept_big:
        assert kept_big[0].q > kept_small[0].q


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        locate(np.ones(10))
    assert locate(np.ones((3, 2))).changes == []
    assert detect_changes(np.full((2, 30), np.nan)) == []


def test_spikes_and_gaps_are_left_out_of_the_evidence() -> None:
    v = _flat(5, 40, 0.005, 14)
    v[:, 25:] *= 1.2
    v[:, 15] *= 1.5  # a spike inside the window before the change
    v[:, 18] = np.nan  # a missing night
    found = detect_changes(v)
    assert len(found) == 5
    for c in found:
        assert c.first_bad == 25 and 15 not in c.before_cols and 18 not in c.before_cols
        assert c.before_cols[-1] == 24 and c.after_cols[0] == 25
        assert c.ci_low is not None and c.ci_low > 1.15


@pytest.mark.parametrize("nights", [0, 1, 2, 3])
def test_short_histories_have_no_change_and_do_not_crash(nights: int) -> None:
    """A new machine or series starts with a few nights: nothing to test, nothing filed."""
    values = np.full((3, nights), 1.0) if nights else np.empty((3, 0))
    assert locate(values).changes == []
