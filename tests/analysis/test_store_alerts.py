"""The Store's alert methods, against SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tritonwatch.errors import NotFoundError, UsageError
from tritonwatch.store import Store
from tritonwatch.store.alerts import AlertDraft
from tritonwatch.testing import make_run


def _two_runs(store: Store) -> tuple[int, int, int, int]:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    a = store.runs.add(
        make_run(n_results=2, triton="3.8.0", commit="aaaa1111", started_at=t0, seed=1)
    )
    b = store.runs.add(
        make_run(
            n_results=2,
            triton="3.9.0",
            commit="bbbb2222",
            started_at=t0 + timedelta(days=1),
            seed=2,
        )
    )
    series = store.series.find()
    return a.id, b.id, series[0].id, series[0].machine_id


def _draft(lg: int, fb: int, sid: int, mid: int, **kw: Any) -> AlertDraft:
    base: dict[str, Any] = dict(
        series_id=sid,
        machine_id=mid,
        last_good_run_id=lg,
        first_bad_run_id=fb,
        direction="regression",
        ratio=1.1,
        ci_low=1.05,
        ci_high=1.15,
        p=1e-4,
        q=1e-3,
        details={"changes": {"triton": {"from": "3.8.0", "to": "3.9.0"}}},
    )
    base.update(kw)
    return AlertDraft(**base)


def test_upsert_is_idempotent_and_rows_carry_builds(store: Store) -> None:
    lg, fb, sid, mid = _two_runs(store)
    first = store.alerts.upsert([_draft(lg, fb, sid, mid)])
    assert len(first.created) == 1 and not first.updated
    again = store.alerts.upsert([_draft(lg, fb, sid, mid)])
    assert again.created == [] and again.unchanged == first.created
    changed = store.alerts.upsert([_draft(lg, fb, sid, mid, ratio=1.2)])
    assert changed.updated == first.created
    (row,) = store.alerts.find()
    assert row.ratio == pytest.approx(1.2)
    assert row.status == "new" and row.direction == "regression"
    assert row.first_bad_build["triton_version"] == "3.9.0"
    assert row.first_bad_build["triton_commit"] == "bbbb2222"
    assert row.last_good_build["triton_version"] == "3.8.0"
    assert row.ci == (pytest.approx(1.05), pytest.approx(1.15))
    assert row.operator == "matmul" and row.machine == "test-gpu" and isinstance(row.shape, dict)
    js = row.to_json()
    assert list(js) == [
        "id",
        "status",
        "direction",
        "operator",
        "provider",
        "variant",
        "shape",
        "dtype",
        "mode",
        "metric",
        "machine",
        "last_good_run",
        "first_bad_run",
        "last_good_build",
        "first_bad_build",
        "ratio",
        "ci",
        "p",
        "q",
    ]
    assert len(store.alerts.history(row.id)) == 1


def test_triage_history_and_errors(store: Store) -> None:
    lg, fb, sid, mid = _two_runs(store)
    (aid,) = store.alerts.upsert([_draft(lg, fb, sid, mid)]).created
    row = store.alerts.set_status(aid, "acknowledged", actor="ana", note="looking")
    assert row.status == "acknowledged"
    store.alerts.set_status(aid, "fixed", actor="bo", note="fixed in abc")
    hist = store.alerts.history(aid)
    assert [(e.old_status, e.new_status, e.actor) for e in hist] == [
        (None, "new", "tritonwatch detect"),
        ("new", "acknowledged", "ana"),
        ("acknowledged", "fixed", "bo"),
    ]
    assert hist[-1].note == "fixed in abc"
    # detect updating the numbers keeps the triage status
    store.alerts.upsert([_draft(lg, fb, sid, mid, ratio=1.3)])
    assert store.alerts.get(aid).status == "fixed"
    with pytest.raises(UsageError, match="false_positive"):
        store.alerts.set_status(aid, "bogus", actor="x")
    with pytest.raises(NotFoundError):
        store.alerts.set_status(aid + 999, "fixed", actor="x")
    with pytest.raises(NotFoundError):
        store.alerts.get(aid + 999)
    assert [a.id for a in store.alerts.find(status="fixed")] == [aid]


def test_filters_and_severity_order(store: Store) -> None:
    lg, fb, sid, mid = _two_runs(store)
    other = [x for x in store.series.find() if x.id != sid][0]
    store.alerts.upsert(
        [
            _draft(lg, fb, sid, mid, ratio=1.05),
            _draft(lg, fb, other.id, mid, ratio=0.5, direction="improvement"),
            _draft(fb, fb, sid, mid, ratio=0.8, direction="regression", first_bad_run_id=lg),
        ]
    )
    rows = store.alerts.find()
    assert [r.ratio for r in rows] == [pytest.approx(0.8), pytest.approx(1.05), pytest.approx(0.5)]
    assert [r.direction for r in store.alerts.find(direction="improvement")] == ["improvement"]
    assert len(store.alerts.find(status="new", limit=1)) == 1
    assert len(store.alerts.find(status="new", offset=1)) == 2
    assert store.alerts.find(machine="nope") == []
    assert len(store.alerts.find(operator="matmul")) == 3
    with pytest.raises(UsageError):
        store.alerts.find(status="open")


def test_bulk_reads(store: Store) -> None:
    lg, fb, sid, mid = _two_runs(store)
    pts = store.history.points()
    assert len(pts.pairs) == 2 and len(pts.value) == 4
    assert list(pts.run_id[:2]) == [lg, fb]
    samples = store.history.samples([(lg, sid), (fb, sid)])
    assert set(samples) == {(lg, sid), (fb, sid)} and len(samples[(lg, sid)]) == 20
    refs = store.history.runs([lg, fb])
    infos = store.history.builds([refs[lg]["build_id"], refs[fb]["build_id"]])
    assert infos[refs[fb]["build_id"]]["triton"]["commit"] == "bbbb2222"
    assert store.history.codegen_hashes([refs[lg]["build_id"]]) == {refs[lg]["build_id"]: {}}
    assert store.history.points(machine="nope").pairs == []
