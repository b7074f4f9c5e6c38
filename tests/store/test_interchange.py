"""Import/export: round trips for every format, foreign formats, and bad files."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tritonwatch.errors import InputError
from tritonwatch.runformat import dump_run
from tritonwatch.store import Store
from tritonwatch.store.interchange import export_runs, import_files, read_file
from tritonwatch.testing import make_run

FIXTURE = Path(__file__).parent.parent / "fixtures" / "run-v1.jsonl"
T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)


def _seed(store: Store) -> None:
    store.add_runs(read_file(FIXTURE).runs)
    for i in range(3):
        store.add_run(make_run(seed=i, started_at=T0 + timedelta(days=i), label=f"n{i}"))


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
    stored = {(d.summary.uuid, r.operator, r.provider, json.dumps(r.shape, sort_keys=True), r.metric):
              (r.value, None if r.samples is None else r.samples.tolist())
              for d in store.iter_runs() for r in d.results}
    for row in rows:
        key = (row["run_id"], row["operator"], row["provider"], row["shape"], row["metric"])
        value, samples = stored[key]
        assert (float(row["value"]) if row["value"] else None) == value
        assert (json.loads(row["samples"]) if row["samples"] else None) == samples
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert len(table) == len(rows)
    for item in table:
        value, samples = stored[(item["run_id"], item["operator"], item["provider"], item["shape"],
                                 item["metric"])]
        assert item["value"] == value and item["samples"] == samples


def test_tritonbench_json_import(sqlite_url: str, tmp_path: Path) -> None:
    data = {
        "name": "nightly",
        "metrics": {
            "tritonbench_bf16_gemm_fwd[x_(4096, 4096, 4096)-triton_tutorial_matmul]_latency": 0.21,
            "tritonbench_bf16_gemm_fwd[x_(4096, 4096, 4096)-aten_matmul]_latency": 0.2,
            "tritonbench_bf16_gemm_fwd[x_(4096, 4096, 4096)-triton_tutorial_matmul]_tflops": 650.5,
            "tritonbench_softmax_fwd[x_(4096, 8192)-triton_softmax]_gbps": "CUDA OOM",
            "tritonbench_bf16_gemm_fwd[triton_tutorial_matmul]-speedup": 0.95,
            "tritonbench_bf16_gemm_fwd-pass": 1,
            "tritonbench_bf16_gemm_fwd[x_average-aten_matmul]_latency": 1.0,
        },
        "env": {"device": "NVIDIA H100", "cuda_version": "12.8", "triton_commit": "deadbeef1234",
                "triton_branch": "main", "pytorch_commit": "cafe0001"},
    }
    path = tmp_path / "tb.json"
    path.write_text(json.dumps(data))
    with Store.open(sqlite_url) as store:
        report = import_files(store, [str(path)])
        assert report.files == [(str(path), "tritonbench", 1)] and report.results == 5
        assert import_files(store, [str(path)]).skipped == 1  # stable run id: no duplicate
        d = store.get_run(store.runs()[0].uuid)
    by = {(r.provider, r.metric): r for r in d.results}
    lat = by[("triton_tutorial_matmul", "latency")]
    assert (lat.operator, lat.dtype, lat.mode, lat.unit, lat.value) == ("gemm", "bf16", "fwd", "ms", 0.21)
    assert lat.shape == {"input": "(4096, 4096, 4096)"}
    assert by[("triton_softmax", "gbps")].status == "error"
    assert by[("triton_tutorial_matmul", "speedup")].shape == {"input": "aggregate"}
    assert d.summary.triton_commit == "deadbeef1234"


def test_foreign_hud_records_group_into_runs(sqlite_url: str, tmp_path: Path) -> None:
    def rec(ts: int, sha: str, runner: str, model: str, values: list[float]) -> dict:
        return {"timestamp": ts, "schema_version": "v3", "repo": "pytorch/pytorch", "head_sha": sha,
                "head_branch": "main", "benchmark": {"name": "tb", "mode": "fwd", "dtype": "bf16"},
                "model": {"name": model, "backend": "triton"},
                "metric": {"name": "latency", "benchmark_values": values, "extra_info": {"input_shape": "(8, 8)"}},
                "runners": [{"name": runner, "gpu_info": "NVIDIA B200", "gpu_count": 1}],
                "dependencies": {"triton": {"sha": sha, "version": "3.9.0+git" + sha[:6]}}}
    records = [rec(1000, "aaaaaa11", "r1", "gemm", [1.0, 1.1]), rec(1000, "aaaaaa11", "r1", "softmax", [2.0]),
               rec(1000, "aaaaaa11", "r2", "gemm", [1.2]), rec(2000, "bbbbbb22", "r1", "gemm", [0.9])]
    path = tmp_path / "hud.json"
    path.write_text(json.dumps(records))
    with Store.open(sqlite_url) as store:
        assert import_files(store, [str(path)]).added == 3
        assert import_files(store, [str(path)]).added == 0
        runs = store.runs()
        assert sorted(r.n_results for r in runs) == [1, 1, 2]
        assert {r.gpu_model for r in runs} == {"NVIDIA B200"}


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
