"""Import/export: round trips for every format, foreign formats, and bad files."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tritonwatch.errors import InputError
from tritonwatch.formats.exchange import export_runs, import_files, read_file
from tritonwatch.runformat import dump_run
from tritonwatch.store import Store
from tritonwatch.testing import make_run

FIXTURE = Path(__file__).parent.parent / "fixtures" / "run-v1.jsonl"
T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)


def _seed(store: Store) -> None:
    store.runs.add_many(read_file(FIXTURE).runs)
    for i in range(3):
        store.runs.add(make_run(seed=i, started_at=T0 + timedelta(days=i), label=f"n{i}"))


def test_jsonl_round_trip_is_identical_across_backends(store: Store, tmp_path: Path) -> None:
    """export jsonl -> import into an empty SQLite database -> export jsonl: same bytes."""
    _seed(store)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert export_runs(store, str(first), "jsonl") == 4
    with Store.open(f"sqlite:///{tmp_path / 'other.db'}") as other:
        report = import_files(other, [str(first)])
        assert report.added == 4 and report.skipped == 0
        export_runs(other, str(second), "jsonl")
    assert first.read_bytes() == second.read_bytes()


def test_hud_round_trip_is_identical_and_lossless(store: Store, tmp_path: Path) -> None:
    _seed(store)
    hud, hud2, jsonl, jsonl2 = (tmp_path / n for n in ("a.hud", "b.hud", "a.jsonl", "b.jsonl"))
    export_runs(store, str(hud), "hud")
    export_runs(store, str(jsonl), "jsonl")
    records = [json.loads(line) for line in hud.read_text().splitlines()]
    assert records[0]["schema_version"] == "v3"
    timed = [r for r in records if r["metric"]["name"] == "time" and r["model"]["name"] == "matmul"]
    assert len(timed[0]["metric"]["benchmark_values"]) >= 10  # every sample, not just the median
    assert {r["dependencies"]["triton"]["version"] for r in records} == {"3.9.0"}
    with Store.open(f"sqlite:///{tmp_path / 'other.db'}") as other:
        assert import_files(other, [str(hud)]).added == 4
        export_runs(other, str(hud2), "hud")
        export_runs(other, str(jsonl2), "jsonl")
    assert hud.read_bytes() == hud2.read_bytes()
    assert jsonl.read_bytes() == jsonl2.read_bytes()


def test_csv_and_parquet_hold_every_result(store: Store, tmp_path: Path) -> None:
    _seed(store)
    export_runs(store, str(tmp_path / "r.csv"), "csv")
    export_runs(store, str(tmp_path / "r.parquet"), "parquet")
    with (tmp_path / "r.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == store.info().counts["results"]
    stored = {
        (d.summary.uuid, r.operator, r.provider, json.dumps(r.shape, sort_keys=True), r.metric): (
            r.value,
            None if r.samples is None else r.samples.tolist(),
        )
        for d in store.runs.iter()
        for r in d.results
    }
    for row in rows:
        key = (row["run_id"], row["operator"], row["provider"], row["shape"], row["metric"])
        value, samples = stored[key]
        assert (float(row["value"]) if row["value"] else None) == value
        assert (json.loads(row["samples"]) if row["samples"] else None) == samples
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert len(table) == len(rows)
    for item in table:
        value, samples = stored[
            (item["run_id"], item["operator"], item["provider"], item["shape"], item["metric"])
        ]
        assert item["value"] == value and item["samples"] == samples


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ('{"format": "tritonwatch.run/1", "run": {"id": "x"', r"bad.jsonl:1: not valid JSON"),
        ("[1, 2]", "not of PyTorch HUD"),
        ('{"hello": 1}\n', "cannot tell the format"),
        ('{"format": "tritonwatch.run/9"}\n', "tritonwatch.run/9"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_file(path)


def test_truncated_file_reports_line_and_writes_nothing(sqlite_url: str, tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    lines = [json.dumps(dump_run(make_run(seed=i))) for i in range(3)]
    good.write_text("\n".join(lines) + "\n")
    truncated = tmp_path / "cut.jsonl"
    truncated.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    with Store.open(sqlite_url) as store:
        with pytest.raises(InputError, match=r"cut.jsonl:2: not valid JSON.*truncated"):
            import_files(store, [str(good), str(truncated)])
        assert store.info().counts["runs"] == 0  # the good file was not half-imported


def test_invalid_run_names_the_field(tmp_path: Path) -> None:
    doc = dump_run(make_run())
    del doc["results"][1]["unit"]
    doc["results"][2]["samples"] = []
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(dump_run(make_run())) + "\n" + json.dumps(doc) + "\n")
    with pytest.raises(InputError) as e:
        read_file(path)
    text = str(e.value)
    assert "bad.jsonl:2:" in text and "results.1.unit" in text and "samples" in text


INTEROP = Path(__file__).parent.parent / "fixtures" / "interop"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"a": 1, "b": [2]}',
            r"cannot tell the format: the first line is a JSON object with keys a, b; "
            r"tritonwatch reads tritonwatch.run/1 JSONL; tritonbench",
        ),
        ("hello world\n", "not JSON and not a ';'-separated tritonbench CSV"),
        ("run_id,started_at,label\n1,2,3\n", "tritonwatch's own CSV export"),
        (
            '{"tritonbench_gemm_fwd[x_1-a]_latency": "1.0",\n',
            r"bad.jsonl:2: not valid JSON.*truncated",
        ),
    ],
)
def test_files_of_no_known_format_say_what_they_looked_like(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_file(path)


def test_a_forced_format_that_does_not_fit_names_the_real_one(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a hud file: it looks like a tritonbench nightly"):
        read_file(INTEROP / "tritonbench" / "nightly_result_A-h100.json", "hud")
    with pytest.raises(InputError, match="not a jsonl file: it looks like PyTorch HUD"):
        read_file(INTEROP / "hud" / "json-each-row.json", "jsonl")
    with pytest.raises(InputError, match="no tritonbench output in this folder"):
        read_file(tmp_path)


def test_an_error_in_a_later_file_writes_nothing(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"metric": "not an object"}]))
    with pytest.raises(InputError, match="'metric' must be an object"):
        import_files(
            store,
            [
                str(INTEROP / "tritonbench" / "nightly_result_A-h100.json"),
                str(INTEROP / "hud" / "hud_tritonbench_v3.json"),
                str(bad),
            ],
        )
    counts = store.info().counts
    assert counts["runs"] == counts["results"] == counts["series"] == 0


def test_jsonl_with_lines_longer_than_the_sniffed_head(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    lines = [json.dumps(dump_run(make_run(n_results=400, seed=i))) for i in range(2)]
    assert len(lines[0]) > 70_000
    path.write_text("\n".join(lines) + "\n")
    f = read_file(path)
    assert (f.format, len(f.runs)) == ("jsonl", 2)


def test_csv_export_neutralises_spreadsheet_formulas(store: Store, tmp_path: Path) -> None:
    """`tritonwatch export --format csv` writes through the same formula-safe writer as the API."""
    results = [
        {
            "operator": "=cmd|' /C calc'!A0",
            "provider": "@SUM(1+1)",
            "variant": "-2+3",
            "shape": {"M": 1},
            "dtype": "-1.5",
            "metric": "time",
            "unit": "ms",
            "samples": [1.0, 1.1, 1.2],
        }
    ]
    store.runs.add(make_run(results=results, label="+1+1", machine="\tgpu"))
    export_runs(store, str(tmp_path / "r.csv"), "csv")
    with (tmp_path / "r.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["operator"] == "'=cmd|' /C calc'!A0"
    assert row["provider"] == "'@SUM(1+1)"
    assert row["variant"] == "'-2+3"
    assert row["label"] == "'+1+1"
    assert row["machine"] == "'\tgpu"
    assert row["dtype"] == "-1.5"  # a plain number is left as it is
