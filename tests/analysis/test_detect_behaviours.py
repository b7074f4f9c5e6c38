"""The detect pass files what analysis.nightly finds: fixed regressions, drifts, clock nights."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tritonwatch.analysis.detect import detect
from tritonwatch.notify import notification
from tritonwatch.report import notify as render
from tritonwatch.runformat import parse_run
from tritonwatch.store import Store
from tritonwatch.testing import Histories, history_runs


def _hist(values: np.ndarray) -> Histories:
    s = values.shape[0]
    return Histories(values=values, noise=np.full(s, 0.003), step=np.zeros(s), truth=[])


def _series(nights: int, seed: int) -> np.ndarray:
    return np.exp(0.003 * np.random.default_rng(seed).standard_normal((3, nights)))


def test_a_regression_that_reverts_is_filed_once_and_closed_as_fixed(store: Store) -> None:
    v = _series(40, 1)
    v[0, 20:28] *= 1.10  # a regression window
    v[1, 25:] *= 1.10  # a regression that stays
    docs = history_runs(_hist(v))
    store.runs.add_many(parse_run(d) for d in docs)
    rep = detect(store)
    assert len(rep.created) == 2 and len(rep.fixed) == 1
    fixed = store.alerts.get(rep.fixed[0])
    assert fixed.status == "fixed" and fixed.direction == "regression"
    assert fixed.details["kind"] == "step"
    assert fixed.details["fixed"]["run"] == docs[28]["run"]["id"]
    assert fixed.first_bad_run == docs[20]["run"]["id"]
    assert abs(fixed.details["fixed"]["ratio"] - 1) < 0.01
    assert [e.new_status for e in store.alerts.history(fixed.id)] == ["new", "fixed"]
    assert store.alerts.history(fixed.id)[-1].actor == "tritonwatch detect"
    # evidence for a person: nights before and after with their dates and values
    ev = fixed.details["before"]["values"]
    assert len(ev) == 10 and ev[-1][0] == docs[19]["run"]["started_at"][:10]
    open_ = [a for a in store.alerts.find() if a.status == "new"]
    assert len(open_) == 1 and "fixed" not in open_[0].details
    # a second pass changes nothing: no new alert, no second transition
    again = detect(store)
    assert again.created == [] and again.fixed == []
    # notify announces the open regression and lists the fixed one
    n = notification(store)
    assert [a.id for a in n.fixed] == [fixed.id] and len(n.alert_ids) == 1
    md = render.markdown(n)
    assert "Fixed (the series went back)" in md and f"#{fixed.id}" in md
    assert any("Fixed" in b["text"]["text"] for b in render.slack(n)["blocks"][1:])


def test_a_slow_drift_is_one_drift_alert(store: Store) -> None:
    v = _series(60, 2)
    v[0] *= np.exp(np.log(1.04) * np.clip((np.arange(60) - 15) / 30, 0, 1))
    store.runs.add_many(parse_run(d) for d in history_runs(_hist(v)))
    rep = detect(store)
    assert len(rep.created) == 1 and rep.findings[0].kind == "drift"
    a = store.alerts.get(rep.created[0])
    assert a.details["kind"] == "drift" and a.details["method"] == "ramp"
    d = a.details["drift"]
    assert 20 <= d["nights"] <= 40 and abs(d["total"] - 0.04) < 0.01 and d["slope_per_night"] > 0
    assert a.direction == "regression"


def _with_clocks(doc: dict[str, Any], mhz: float) -> dict[str, Any]:
    for r in doc["results"]:
        state = {"sm_clock_mhz": mhz}
        r["extra"] = {"gpu_state": {"before": state, "after": state}, "throttled": mhz < 1900}
    return doc


def test_nights_at_a_lower_clock_are_explained(store: Store, tmp_path: Path) -> None:
    v = _series(40, 3)
    v[:, 20:26] *= 1980 / 1780  # a hot week on the machine
    blind = Store.open(f"sqlite:///{tmp_path / 'blind.db'}")
    try:  # without clock records the hot week is a regression window on every series
        blind.runs.add_many(parse_run(d) for d in history_runs(_hist(v)))
        assert len(detect(blind).created) == 3
    finally:
        blind.close()
    docs = [
        _with_clocks(d, 1780.0 if 20 <= i < 26 else 1980.0)
        for i, d in enumerate(history_runs(_hist(v)))
    ]
    store.runs.add_many(parse_run(d) for d in docs)
    points = store.history.points()
    keys = [(int(r), int(s)) for r, s in zip(points.run_id, points.series_id, strict=True)]
    clocks = store.history.result_clocks(keys)
    assert len(clocks) == 3 * 40 and sorted(set(clocks.values())) == [1780.0, 1980.0]
    assert detect(store).created == []


def test_alert_page_shows_fixed_and_drift(sqlite_url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from tritonwatch.web.app import create_app

    store = Store.open(sqlite_url)
    try:
        v = _series(60, 4)
        v[0, 20:28] *= 1.10
        v[1] *= np.exp(np.log(1.04) * np.clip((np.arange(60) - 15) / 30, 0, 1))
        store.runs.add_many(parse_run(d) for d in history_runs(_hist(v)))
        rep = detect(store)
        kinds = {store.alerts.get(i).details["kind"]: i for i in rep.created}
        assert set(kinds) == {"step", "drift"}
        with TestClient(create_app(store)) as client:
            fixed_html = client.get(f"/alerts/{kinds['step']}").text
            drift_html = client.get(f"/alerts/{kinds['drift']}").text
        assert 'id="alert-fixed"' in fixed_html and "went back on" in fixed_html
        assert 'id="alert-drift"' in drift_html and "Drift, not a step" in drift_html
    finally:
        store.close()


def test_a_drift_takes_over_a_step_alert_filed_inside_its_range() -> None:
    from datetime import UTC, datetime

    from tritonwatch.analysis.detect import _match
    from tritonwatch.store.alerts import ExistingAlert

    runs = np.arange(100, 160)  # run ids of nights 0..59
    step = ExistingAlert(7, 1, 1, "regression", "new", 125, datetime(2026, 9, 1, tzinfo=UTC))
    # a step alert at night 25; a drift found later over nights 16-45 is the same change
    assert _match([step], runs, 16, "regression", 45) == 7
    assert _match([step], runs, 16, "improvement", 45) is None
    # as a step finding, night 16 is too far from night 25 to be the same change
    assert _match([step], runs, 16, "regression") is None
    assert _match([step], runs, 26, "regression") == 7
