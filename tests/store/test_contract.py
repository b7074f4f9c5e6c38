"""The Store contract: every test runs against SQLite and a real PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tritonwatch.errors import NotFoundError, UsageError
from tritonwatch.formats.exchange import read_file
from tritonwatch.formats.run1 import run_document
from tritonwatch.runformat import dump_run, parse_run
from tritonwatch.store import Store
from tritonwatch.store import runs as runs_module
from tritonwatch.store.database import Database
from tritonwatch.store.rows import utc
from tritonwatch.testing import make_run

FIXTURE = Path(__file__).parent.parent / "fixtures" / "run-v1.jsonl"
T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)


def test_add_run_is_idempotent_by_uuid(store: Store) -> None:
    run = make_run(n_results=4, started_at=T0)
    first = store.runs.add(run)
    again = store.runs.add(run)
    assert first.created and not again.created
    assert first.id == again.id
    counts = store.info().counts
    assert counts["runs"] == 1 and counts["results"] == 4 and counts["series"] == 4


def test_run_round_trips_through_the_database(store: Store) -> None:
    (run,) = read_file(FIXTURE).runs
    store.runs.add(run)
    doc = run_document(store.runs.get(str(run.run.id)))
    original = dump_run(run)
    assert doc["run"] == original["run"]
    assert doc["machine"] == original["machine"]
    assert doc["build"] == original["build"]
    for got, want in zip(doc["results"], original["results"], strict=True):
        assert got.get("samples") == want.get("samples")
        for key in (
            "operator",
            "provider",
            "variant",
            "shape",
            "dtype",
            "mode",
            "metric",
            "unit",
            "status",
            "error",
            "correct",
        ):
            assert got.get(key) == want.get(key), key
        assert got.get("extra", {}) == want.get("extra", {})
    # a result given as samples is summarised by their median
    assert doc["results"][0]["value"] == pytest.approx(np.median(original["results"][0]["samples"]))


def test_failed_results_keep_status_and_error(store: Store) -> None:
    (run,) = read_file(FIXTURE).runs
    store.runs.add(run)
    detail = store.runs.get(str(run.run.id)[:8])
    by_op = {r.operator: r for r in detail.results}
    assert by_op["attention"].status == "error" and "out of memory" in by_op["attention"].error
    assert by_op["rmsnorm"].status == "incorrect" and by_op["rmsnorm"].correct is False
    assert detail.summary.n_failed == 2


def test_add_runs_is_all_or_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = make_run(seed=1), make_run(seed=2)
    real = runs_module.result_rows

    def explode(run, *args):  # type: ignore[no-untyped-def]
        if run is bad:
            raise RuntimeError("disk full")
        return real(run, *args)

    monkeypatch.setattr(runs_module, "result_rows", explode)
    with pytest.raises(RuntimeError):
        store.runs.add_many([good, bad])
    assert store.info().counts["runs"] == 0
    assert store.info().counts["results"] == 0


def test_runs_are_listed_newest_first_and_filtered(store: Store) -> None:
    for i in range(5):
        store.runs.add(
            make_run(
                seed=i,
                started_at=T0 + timedelta(days=i),
                machine="a" if i % 2 else "b",
                label=f"night{i}",
                org="acme",
            )
        )
    runs = store.runs.find()
    assert [r.label for r in runs] == ["night4", "night3", "night2", "night1", "night0"]
    assert {r.label for r in store.runs.find(machine="a")} == {"night1", "night3"}
    assert [r.label for r in store.runs.find(since=T0 + timedelta(days=3))] == ["night4", "night3"]
    assert [r.label for r in store.runs.find(limit=2, offset=1)] == ["night3", "night2"]
    assert store.runs.find(org="other") == []
    assert all(r.org == "acme" for r in runs)


def test_run_lookup_by_prefix(store: Store) -> None:
    run = make_run()
    store.runs.add(run)
    uid = str(run.run.id)
    assert store.runs.get(uid[:6]).summary.uuid == uid
    with pytest.raises(NotFoundError, match="tritonwatch runs"):
        store.runs.get("ffffffff")
    with pytest.raises(UsageError, match="too short"):
        store.runs.get("ab")


def test_series_points_are_ordered_and_keep_raw_samples(store: Store) -> None:
    runs = [make_run(n_results=2, seed=i, started_at=T0 + timedelta(days=i)) for i in range(6)]
    for run in reversed(runs):  # stored out of order on purpose
        store.runs.add(run)
    (info, _) = store.series.find(operator="matmul")
    points = store.series.points(info.id, info.machine_id, with_samples=True)
    assert [p.run_uuid for p in points] == [str(r.run.id) for r in runs]
    want = runs[3].results[info.shape["M"] // 256 - 1].samples
    assert points[3].samples is not None and points[3].samples.tolist() == want
    assert points[3].value == pytest.approx(np.median(want))
    assert points[3].ci_low <= points[3].value <= points[3].ci_high
    newest_two = store.series.points(info.id, info.machine_id, limit=2)
    assert [p.run_uuid for p in newest_two] == [str(r.run.id) for r in runs[-2:]]


def test_cpu_results_never_join_gpu_series(store: Store) -> None:
    gpu = make_run(n_results=1, machine="box", seed=1)
    cpu = make_run(n_results=1, machine="box", gpu_model=None, seed=2)
    store.runs.add(gpu)
    store.runs.add(cpu)
    rows = store.series.find(operator="matmul")
    assert len(rows) == 2 and rows[0].id == rows[1].id
    assert {m.device for m in store.series.machines()} == {"cuda", "cpu"}


def test_concurrent_writers_of_one_run_store_it_once(store: Store) -> None:
    run = make_run(n_results=50)
    created: list[bool] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with Store.open(store.engine.url.render_as_string(hide_password=False)) as own:
                created.append(own.runs.add(run).created)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and created.count(True) == 1
    assert store.info().counts["results"] == 50


def test_machine_peaks(store: Store) -> None:
    assert store.series.peaks("m", "cuda", "H100", 1) is None
    store.series.set_peaks("m", "cuda", "H100", 1, {"gbps": 3000.0, "bf16_tflops": 700.0})
    assert store.series.peaks("m", "cuda", "H100", 1) == {"gbps": 3000.0, "bf16_tflops": 700.0}


def test_run_document_is_valid_run_format(store: Store) -> None:
    store.runs.add(make_run(seed=3))
    (summary,) = store.runs.find()
    doc = run_document(store.runs.get(summary.uuid))
    assert parse_run(doc).run.id.hex == summary.uuid.replace("-", "")


def test_a_rolled_back_write_leaves_no_stale_ids(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Series/machine/build ids created in a failed transaction must not be reused later."""
    fresh = make_run(machine="new-box", triton="9.9.9", n_results=3, seed=7)
    real = Database.bulk_insert

    def fail(self, conn, table, columns, rows):  # type: ignore[no-untyped-def]
        raise RuntimeError("connection lost")

    monkeypatch.setattr(Database, "bulk_insert", fail)
    with pytest.raises(RuntimeError):
        store.runs.add(fresh)
    monkeypatch.setattr(Database, "bulk_insert", real)
    assert store.runs.add(fresh).created
    assert len(store.runs.get(str(fresh.run.id)).results) == 3


def test_time_filters_see_results_written_in_bulk(store: Store) -> None:
    """results.t is written by the raw bulk path; it must compare like SQLAlchemy's own values."""
    for i in range(4):
        store.runs.add(make_run(n_results=1, seed=i, started_at=T0 + timedelta(days=i)))
    (info,) = store.series.find()
    since = store.series.points(info.id, info.machine_id, since=T0 + timedelta(days=2))
    assert [p.t for p in since] == [T0 + timedelta(days=2), T0 + timedelta(days=3)]
    with store.engine.connect() as conn:
        from sqlalchemy import select

        from tritonwatch.store import schema as sch

        run_t = {utc(row[0]) for row in conn.execute(select(sch.runs.c.started_at))}
        res_t = {row[0] for row in conn.execute(select(sch.results.c.t))}
    assert run_t == res_t
    assert all(t.tzinfo is UTC for t in res_t)


def test_result_statistics_for_mixed_sample_counts(store: Store) -> None:
    """Results with different sample counts, a given value, no samples or an error keep their own
    statistics (the rows are built a column at a time, grouped by sample count)."""
    rng = np.random.default_rng(7)
    base = {"operator": "softmax", "provider": "triton", "variant": "pointers", "dtype": "fp16"}
    base |= {"metric": "time", "unit": "ms"}
    specs: list[dict[str, object]] = [
        {"samples": rng.random(11).tolist()},
        {"samples": rng.random(20).tolist()},
        {"value": 9.5},
        {"samples": rng.random(11).tolist(), "value": 1.25},
        {"status": "error", "error": "boom"},
        {"samples": rng.random(20).tolist(), "extra": {"stop": "ci"}},
    ]
    run = make_run(results=[base | {"shape": {"N": i}} | sp for i, sp in enumerate(specs)])
    store.runs.add(run)
    got = {r.shape["N"]: r for r in store.runs.get(str(run.run.id)).results}
    for i, sp in enumerate(specs):
        r = got[i]
        samples = sp.get("samples")
        if isinstance(samples, list):
            x = np.sort(np.array(samples))
            n = len(x)
            half = 1.96 * np.sqrt(n) / 2
            assert r.n == n and r.samples is not None and r.samples.tolist() == samples
            assert r.value == sp.get("value", float(np.median(x)))
            assert r.ci_low == x[int(max(0, np.floor(n / 2 - half)))]
            assert r.ci_high == x[int(min(n - 1, np.ceil(n / 2 + half) - 1))]
        else:
            assert r.n == 0 and r.samples is None and r.ci_low is None and r.ci_high is None
            assert r.value == sp.get("value")
        assert r.status == sp.get("status", "ok") and r.error == sp.get("error")
        assert r.extra == sp.get("extra", {})


def test_a_run_with_no_results_is_stored_on_both_backends(store: Store) -> None:
    # A nightly whose every case crashed before reporting is a fact worth seeing; SQLite used to
    # fail with "Incorrect number of bindings supplied" while PostgreSQL stored it.
    run = make_run(results=[], started_at=T0)
    added = store.runs.add(run)
    assert added.created
    (summary,) = store.runs.find()
    assert summary.uuid == str(run.run.id) and summary.n_results == 0
    assert store.runs.get(summary.uuid).results == []


def test_heatmap_change_is_the_one_geometric_mean(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overview's heatmap takes its geomean from analysis.stats, not from a copy."""
    from tritonwatch.analysis import stats

    older = make_run(n_results=3, n_samples=10, started_at=T0, seed=1)
    newer = make_run(n_results=3, n_samples=10, started_at=T0 + timedelta(days=1), seed=2)
    steps = (1.05, 1.1, 1.2)
    for old, new, k in zip(older.results, newer.results, steps, strict=True):
        new.samples = [x * k for x in old.samples or []]
    store.runs.add_many([older, newer])
    real, calls = stats.geomean, []

    def spy(x: list[float]) -> float:
        calls.append(sorted(x))
        return real(x)

    monkeypatch.setattr(stats, "geomean", spy)
    (cell,) = store.overview.heatmap()
    assert calls == [pytest.approx(list(steps))]
    assert cell.change == pytest.approx(real(steps)) and cell.worst == pytest.approx(max(steps))


def test_series_catalog_pages_and_filter_menus_follow_new_series(store: Store) -> None:
    ops = ["matmul", "softmax", "layernorm"]
    for i, op in enumerate(ops):
        results = [
            {
                "operator": op,
                "provider": "triton",
                "shape": {"M": 64 * (k + 1)},
                "dtype": "fp16",
                "metric": "time",
                "unit": "ms",
                "samples": [1.0, 1.1, 1.2],
            }
            for k in range(5)
        ]
        store.runs.add(make_run(results=results, seed=i, started_at=T0 + timedelta(days=i)))
        # the filter menus see every operator stored so far, including the newest
        assert store.series.facets()["operator"] == sorted(ops[: i + 1])
    everything = store.series.catalog(limit=100)
    assert len(everything) == 15
    paged = [r for off in range(0, 15, 4) for r in store.series.catalog(limit=4, offset=off)]
    assert paged == everything
    # a second machine, so the cursor must also step within one series across machines
    store.runs.add(make_run(results=results, seed=9, machine="other-gpu"))
    everything = store.series.catalog(limit=100)
    assert len(everything) == 20
    walked, after = [], None
    while True:
        page = store.series.catalog(limit=3, after=after)
        walked += page
        if len(page) < 3:
            break
        after = page[-1].listing_key()
    assert walked == everything
    with pytest.raises(UsageError, match="offset"):
        store.series.catalog(offset=2**63)
