"""The detect pass and notifications on both backends (the `store` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tritonwatch.analysis.detect import detect
from tritonwatch.notify import notification
from tritonwatch.runformat import parse_run
from tritonwatch.store import Store
from tritonwatch.testing import history_runs, make_histories


def test_detect_files_alerts_once_with_what_changed(store: Store) -> None:
    h = make_histories(
        8,
        30,
        step_fraction=0.5,
        noise_levels=(0.005,),
        step_sizes=(0.2,),
        samples_per_night=5,
        outlier_rate=0.0,
        missing_rate=0.0,
        new_case_fraction=0.0,
        min_after=5,
        seed=4,
    )
    assert h.truth
    store.runs.add_many(parse_run(d) for d in history_runs(h))
    first = detect(store)
    assert first.n_series == 8
    assert len(first.created) == len(h.truth)
    rows = store.alerts.find()
    for a in rows:
        t = next(t for t in h.truth if a.shape["M"] == 128 * (t.row + 1))
        assert a.direction == ("regression" if t.size > 0 else "improvement")
        assert a.ci is not None and a.ci[0] < a.ratio < a.ci[1]
        assert a.details["p_samples"] is not None
        # the first bad run is the night the step was planted
        assert a.first_bad_at == datetime(2026, 9, 1, 2, tzinfo=UTC) + timedelta(days=t.night)
        changes = a.details["changes"]
        assert changes["triton commit"]["to"] == a.first_bad_build["triton_commit"]
    second = detect(store)
    assert second.created == [] and len(second.unchanged) == len(h.truth)
    n = notification(store)
    assert sum(len(g.alerts) for g in n.groups) == len(rows)
    assert all(g.title.count("->") == 1 for g in n.groups)
    assert detect(store, pattern="no-such-thing").n_series == 0


def test_alert_details_summarise_generated_code_changes(store: Store) -> None:
    from tritonwatch.store import schema as s

    h = make_histories(
        4,
        24,
        step_fraction=1.0,
        noise_levels=(0.005,),
        step_sizes=(0.3,),
        outlier_rate=0.0,
        missing_rate=0.0,
        new_case_fraction=0.0,
        min_after=5,
        regression_share=1.0,
        seed=8,
    )
    docs = history_runs(h)
    store.runs.add_many(parse_run(d) for d in docs)
    now = datetime.now(UTC)
    changes = [t.night for t in h.truth[:3]] + [10_000] * 3
    with store.engine.begin() as conn:
        builds = dict(
            conn.execute(
                s.builds.select().with_only_columns(s.builds.c.triton_commit, s.builds.c.id)
            ).all()
        )
        rows = []
        for commit, bid in builds.items():
            night = int(commit[1:8], 16)
            for k in range(3):
                # kernel k changes its code on the night step k was planted
                rows.append(
                    {
                        "build_id": bid,
                        "kernel": f"kern{k}",
                        "spec": "s",
                        "target": "sm90",
                        "stage_hashes": {"ttir": "a" if night < changes[k] else "b"},
                        "metrics": {},
                        "created_at": now,
                    }
                )
        conn.execute(s.codegen.insert(), rows)
    detect(store)
    alerts = store.alerts.find()
    assert len(alerts) == len(h.truth)
    for a in alerts:
        night = int(a.first_bad_build["triton_commit"][1:8], 16)
        cg = a.details["codegen"]
        assert cg["kernels_compared"] == 3
        assert cg["kernels_changed"] == sum(1 for k in range(3) if night == changes[k]) >= 1
        assert all(name.startswith("kern") for name in cg["changed"])
