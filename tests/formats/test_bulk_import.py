"""Bulk imports of a long HUD/ClickHouse history: streamed in every layout, written in batches,
all or nothing, without the garbage collector's rescans (issue #12's performance item)."""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tritonwatch.errors import InputError
from tritonwatch.formats import jsontext
from tritonwatch.formats.exchange import import_files, read_file, write_export
from tritonwatch.store import Store
from tritonwatch.store import runs as store_runs
from tritonwatch.testing import make_run

TRITONBENCH_V3 = (
    Path(__file__).parent.parent / "fixtures" / "interop" / "hud" / "hud_tritonbench_v3.json"
)
RECORDS: list[dict[str, Any]] = json.loads(TRITONBENCH_V3.read_text())


def _nights(n: int) -> list[dict[str, Any]]:
    """The fixture's records on ``n`` nights (new timestamps, so new runs)."""
    out = []
    for night in range(n):
        for r in RECORDS:
            out.append({**r, "timestamp": r["timestamp"] + 86400 * night})
    return out


def _guard_whole_reads(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """Fail on any JSON text longer than ``limit`` parsed in one call: a file read whole."""

    def guard(loads: Callable[..., Any]) -> Callable[..., Any]:
        def checked(text: Any, *a: Any, **kw: Any) -> Any:
            assert len(text) <= limit, f"parsed {len(text):,} characters of JSON in one call"
            return loads(text, *a, **kw)

        return checked

    monkeypatch.setattr(json, "loads", guard(json.loads))
    monkeypatch.setattr(jsontext, "loads", guard(jsontext.loads))


def test_clickhouse_format_json_streams_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``{"meta": [...], "data": [...], "rows": N}`` as clickhouse-client writes it is read one
    record at a time, and gives what the same records as JSON each row give."""
    records = _nights(3)
    for r in records:
        r["workflow_id"] = str(r["workflow_id"])  # ClickHouse quotes 64-bit integers
    ch = tmp_path / "history.json"
    meta = [{"name": "timestamp", "type": "UInt64"}, {"name": "metric", "type": "Tuple"}]
    ch.write_text(
        json.dumps(
            {"meta": meta, "data": records, "rows": len(records), "statistics": {}}, indent=1
        )
    )
    rows = tmp_path / "history.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in records))
    expected = read_file(rows)
    monkeypatch.setattr(jsontext, "CHUNK", 4096)
    _guard_whole_reads(
        monkeypatch, limit=len(json.dumps(max(records, key=lambda r: len(json.dumps(r)))))
    )
    got = read_file(ch)
    assert got.format == "hud"
    assert [r.run.id for r in got.runs] == [r.run.id for r in expected.runs]
    assert (got.tally.items, got.tally.results) == (len(records), expected.tally.results)


def test_clickhouse_json_without_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ch.json"
    path.write_text(json.dumps({"meta": [], "rows": 0}))
    with pytest.raises(InputError, match="without 'data'"):
        read_file(path)


def test_a_list_on_one_long_line_is_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``json.dump(records, f)`` writes one line: it is streamed, not parsed whole to sniff it and
    again to read it; lists and records that follow it are read too."""
    records = _nights(2)
    path = tmp_path / "one-line.json"
    path.write_text(json.dumps(records[:-1]) + "\n" + json.dumps(records[-1]) + "\n")
    longest = max(len(json.dumps(r)) for r in records)
    monkeypatch.setattr(jsontext, "SNIFF_LINE", 4 * longest)
    monkeypatch.setattr(jsontext, "CHUNK", 4096)
    _guard_whole_reads(monkeypatch, limit=4 * longest)
    f = read_file(path)
    assert (f.format, f.tally.items, f.tally.results) == ("hud", len(records), len(records))


def test_json_that_orjson_refuses_is_read_as_before(tmp_path: Path) -> None:
    """NaN and integers past 64 bits are valid to Python's json (and the uploader)."""
    nan = {**RECORDS[0], "metric": {**RECORDS[0]["metric"], "benchmark_values": [math.nan]}}
    big = {**RECORDS[1], "run_attempt": 2**70}
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(nan) + "\n" + json.dumps(big) + "\n")
    f = read_file(path)
    assert (f.tally.items, f.tally.results) == (2, 1)
    assert f.tally.skipped["no benchmark_values"] == 1  # NaN is not a measurement


def test_add_many_writes_in_batches_not_statements_per_run(store: Store) -> None:
    runs = [make_run(n_results=2, n_samples=10, seed=i) for i in range(40)]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        added = store.runs.add_many(iter(runs))
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert all(a.created for a in added) and len(added) == len(runs)
    assert len(statements) < len(runs) / 2, statements
    assert store.info().counts["results"] == sum(len(r.results) for r in runs)


def test_batches_are_all_or_nothing_and_a_repeated_run_is_stored_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_runs, "BATCH_RESULTS", 5)  # a batch every two runs
    runs = [make_run(n_results=2, n_samples=10, seed=i) for i in range(6)]
    long_shape = {f"dim_{i:03d}": "x" * 20 for i in range(60)}  # longer than series.shape
    bad = make_run(results=[{**make_run(n_results=1).results[0].model_dump(), "shape": long_shape}])
    with pytest.raises(InputError, match=r"results\.0\.shape"):
        store.runs.add_many([*runs, bad])
    assert store.info().counts["runs"] == 0
    added = store.runs.add_many([runs[0], *runs, runs[3]])
    assert [a.created for a in added] == [True, False, True, True, True, True, True, False]
    assert added[0].id == added[1].id and added[4].id == added[7].id
    assert store.info().counts["runs"] == len(runs)


def test_import_runs_the_garbage_collector_rarely(tmp_path: Path) -> None:
    """At the default thresholds the collector rescanned every loaded module many times per
    thousand records (about 30% of an import); records hold no cycles, so it may wait."""
    records = _nights(8)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    collections = 0

    def tally(phase: str, info: dict[str, Any]) -> None:
        nonlocal collections
        collections += phase == "start"

    before = gc.get_threshold()
    gc.callbacks.append(tally)
    try:
        with Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
            assert import_files(store, [str(path)]).results == len(records)
    finally:
        gc.callbacks.remove(tally)
    assert gc.get_threshold() == before
    assert collections < len(records) / 100, collections


def test_export_writes_each_run_before_reading_the_next(store: Store) -> None:
    """HUD export is streamed: one run's records are written before the next run is read."""
    for i in range(3):
        store.runs.add(make_run(seed=i))
    written: list[int] = []

    class Out:
        lines = 0

        def write(self, text: str) -> None:
            self.lines += text.count("\n")

    out = Out()

    def details() -> Iterator[Any]:
        for s in store.runs.find(newest_first=False):
            written.append(out.lines)
            yield store.runs.get(s.uuid)

    assert write_export(details(), out, "hud") == 3  # type: ignore[arg-type]
    assert written[0] == 0 and 0 < written[1] < written[2]
