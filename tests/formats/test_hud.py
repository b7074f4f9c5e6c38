"""PyTorch HUD v3 import and export on real records (tests/fixtures/interop/hud)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tritonwatch.errors import UsageError
from tritonwatch.formats import hud, hud_export
from tritonwatch.formats.exchange import export_runs, import_files, read_file
from tritonwatch.store import Store
from tritonwatch.testing import make_run

HUD = Path(__file__).parent.parent / "fixtures" / "interop" / "hud"
TRITONBENCH_V3 = HUD / "hud_tritonbench_v3.json"

# clickhouse_db_schema/benchmark.oss_ci_benchmark_v3/schema.sql (pytorch/test-infra)
COLUMNS = {
    "timestamp",
    "schema_version",
    "name",
    "repo",
    "head_branch",
    "head_sha",
    "workflow_id",
    "run_attempt",
    "job_id",
    "servicelab_experiment_id",
    "servicelab_trial_id",
    "_meta",
    "runners",
    "benchmark",
    "model",
    "inputs",
    "dependencies",
    "metric",
}
RUNNER = {
    "name",
    "type",
    "cpu_info",
    "cpu_count",
    "mem_info",
    "avail_mem_in_gb",
    "gpu_info",
    "gpu_count",
    "gpu_mem_info",
    "avail_gpu_mem_in_gb",
    "extra_info",
}
BENCHMARK = {"name", "mode", "dtype", "extra_info"}
MODEL = {"name", "type", "backend", "origins", "extra_info"}
DEPENDENCY = {"repo", "branch", "sha", "version", "extra_info"}
METRIC = {"name", "benchmark_values", "target_value", "extra_info"}
CI_FIELDS = (
    "timestamp",
    "name",
    "repo",
    "head_branch",
    "head_sha",
    "workflow_id",
    "run_attempt",
    "job_id",
)


def _canon(records: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in records)


def _exported(store: Store, tmp_path: Path, **kw: Any) -> list[dict[str, Any]]:
    out = tmp_path / "out.hud.jsonl"
    export_runs(store, str(out), "hud", **kw)
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_tritonbench_records_import_as_hud_groups_them(store: Store) -> None:
    report = import_files(store, [str(TRITONBENCH_V3)])
    f = report.files[0]
    assert (f.format, f.runs, f.tally.items, f.stored) == ("hud", 4, 244, 244)
    runs = store.runs.find(newest_first=False)
    assert {(r.machine, r.device, r.gpu_model) for r in runs} == {
        ("NVIDIA H100 80GB HBM3", "cuda", "NVIDIA H100 80GB HBM3"),
        ("NVIDIA B200", "cuda", "NVIDIA B200"),
    }
    assert [r.triton_commit[:8] for r in runs] == ["3e217414"] * 2 + ["4919b01e"] * 2
    d = store.runs.get(runs[0].uuid)
    assert d.machine_info["runner_name"] == "gcp-h100-runner-x7k2p-runner-9qz4d"
    by = {
        (r.operator, r.provider, r.metric, json.dumps(r.shape, sort_keys=True)): r
        for r in d.results
    }
    lat = by[("gemm", "aten_matmul", "latency", json.dumps({"K": 1024, "M": 1024, "N": 1024}))]
    assert (lat.unit, lat.better, lat.dtype) == ("ms", "lower", "fp16")
    assert by[("softmax", "quack", "speedup-avg", "{}")].better == "higher"
    assert by[("gemm", "aten_matmul", "tflops-avg", "{}")].unit == "TFLOP/s"
    failed = by[("fp8_gemm_rowwise", "(benchmark)", "pass", "{}")]
    assert failed.status == "error" and failed.value is None  # the 0.0 is a failure, not a value


def test_round_trip_gives_hud_back_its_records(store: Store, tmp_path: Path) -> None:
    """HUD -> tritonwatch -> HUD: every field of every record, so HUD's pages find them."""
    original = json.loads(TRITONBENCH_V3.read_text())
    import_files(store, [str(TRITONBENCH_V3)])
    back = _exported(store, tmp_path)
    assert len(back) == len(original)
    assert _canon(back) == _canon(original)
    # and the exported file re-imports as the same runs
    assert import_files(store, [str(tmp_path / "out.hud.jsonl")]).added == 0


def test_round_trip_field_by_field_for_hud_tritonbench_query(store: Store, tmp_path: Path) -> None:
    """The fields torchci/clickhouse_queries/tritonbench_benchmark/query.sql reads."""
    original = json.loads(TRITONBENCH_V3.read_text())
    import_files(store, [str(TRITONBENCH_V3)])
    back = _exported(store, tmp_path)

    def key(r: dict[str, Any]) -> tuple:
        return (
            r["timestamp"],
            r["workflow_id"],
            r["model"]["name"],
            r["model"]["backend"] or "",
            r["metric"]["name"],
            r["metric"]["extra_info"].get("input_shape", ""),
        )

    def query_fields(r: dict[str, Any]) -> dict[str, Any]:
        ru = r["runners"][0]
        return {
            "timestamp": r["timestamp"],
            "benchmark.name": r["benchmark"]["name"],
            "mode": r["benchmark"]["mode"],
            "dtype": r["benchmark"]["dtype"],
            "model.name": r["model"]["name"],
            "model.type": r["model"]["type"],
            "model.backend": r["model"]["backend"],
            "repo": r["repo"],
            "head_sha": r["head_sha"],
            "head_branch": r["head_branch"],
            "workflow_id": r["workflow_id"],
            **{
                f"{d}.{k}": r["dependencies"][d][k]
                for d in ("pytorch", "triton", "tritonbench")
                for k in ("repo", "sha")
            },
            "dependencies.triton.commit_time": r["dependencies"]["triton"]["extra_info"][
                "commit_time"
            ],
            "gpu_info": ru["gpu_info"],
            "cuda_version": ru["extra_info"]["cuda_version"],
            "runner.name": ru["name"],
            "input_shape": r["metric"]["extra_info"].get("input_shape"),
            "aggregation": r["metric"]["extra_info"].get("aggregation"),
            "metric.name": r["metric"]["name"],
            "benchmark_values": r["metric"]["benchmark_values"],
        }

    got = {key(r): query_fields(r) for r in back}
    for r in original:
        assert got[key(r)] == query_fields(r)


def test_test_infra_fixtures_import_as_the_uploader_reads_them(
    store: Store, tmp_path: Path
) -> None:
    rows = import_files(store, [str(HUD / "json-each-row.json")])
    assert rows.files[0].tally.items == 3 and rows.results == 3  # a line may be a list
    assert (
        import_files(store, [str(HUD / "add_loop_eager.json")]).results == 1
    )  # no benchmark runner
    pretty = tmp_path / "pretty.json"
    pretty.write_text(
        json.dumps(json.loads((HUD / "do_not_overwrite_runners_info.json").read_text()), indent=2)
    )
    assert import_files(store, [str(pretty)]).results == 1
    no_bench = tmp_path / "no_benchmark.json"
    no_bench.write_text(
        json.dumps(
            {"model": {"name": "m"}, "metric": {"name": "latency", "benchmark_values": [1.5]}}
        )
    )
    assert import_files(store, [str(no_bench)]).results == 1
    devices = {(r.machine, r.device) for r in store.runs.find()}
    assert ("cpu", "cpu") in devices and ("cuda", "cuda") in devices
    assert ("Apple iPhone 15", "cpu") in devices


def _record(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "timestamp": 1755137112,
        "schema_version": "v3",
        "name": "inductor",
        "repo": "pytorch/pytorch",
        "head_branch": "main",
        "head_sha": "a" * 40,
        "workflow_id": 1,
        "run_attempt": 1,
        "job_id": 2,
        "runners": [
            {
                "name": "cuda",
                "type": "NVIDIA H100 80GB HBM3",
                "gpu_count": 1,
                "extra_info": {"hostname": "host-1"},
            }
        ],
        "benchmark": {"name": "llm", "mode": "inference", "dtype": "bfloat16"},
        "model": {"name": "llama", "type": "OSS model", "backend": "inductor"},
        "metric": {"name": "tokens_per_second", "benchmark_values": [100.0, 101.0]},
    }
    r.update(over)
    return r


def test_test_infra_runners_device_gpu_and_builds(store: Store, tmp_path: Path) -> None:
    a100 = _record(runners=[{"name": "cuda", "type": "NVIDIA A100-SXM4-80GB", "gpu_count": 1}])
    path = tmp_path / "r.json"
    path.write_text(json.dumps([_record(), a100]))
    import_files(store, [str(path)])
    runs = store.runs.find()
    assert sorted((r.machine, r.device) for r in runs) == [
        ("NVIDIA A100-SXM4-80GB", "cuda"),
        ("NVIDIA H100 80GB HBM3", "cuda"),
    ]
    d = store.runs.get(runs[0].uuid)
    assert d.summary.triton_version == "unknown"  # no triton dependency: no Triton build
    assert d.build_info["torch"]["commit"] == "a" * 40  # head_sha, named as PyTorch's
    (r,) = d.results
    assert (r.better, r.unit, r.n) == ("higher", "tokens/s", 2)  # HUD's direction table


def test_converter_zero_is_a_failure_and_real_zero_is_kept(tmp_path: Path) -> None:
    records = [
        _record(metric={"name": "latency", "benchmark_values": [0.0]}),
        _record(metric={"name": "compile_time", "benchmark_values": [0.0]}),
        _record(metric={"name": "speedup-avg", "benchmark_values": [0.0]}),
    ]
    path = tmp_path / "z.json"
    path.write_text(json.dumps(records))
    (run,) = read_file(path).runs
    by = {r.metric: r for r in run.results}
    assert by["latency"].status == "error" and "0.0" in by["latency"].error
    assert by["speedup-avg"].status == "error"
    assert (by["compile_time"].status, by["compile_time"].value) == ("ok", 0.0)


def test_nights_without_timestamp_or_sha_never_collide(store: Store, tmp_path: Path) -> None:
    night = {
        "benchmark": {"name": "pr_time_benchmarks"},
        "model": {"name": "add_loop"},
        "metric": {"name": "compile_time_instruction_count", "benchmark_values": [3.0e9]},
    }
    other = copy.deepcopy(night)
    other["metric"]["benchmark_values"] = [3.1e9]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(night))
    b.write_text(json.dumps(other))
    first = import_files(store, [str(a), str(b)])
    assert (first.added, first.skipped) == (2, 0)
    assert import_files(store, [str(a), str(b)]).added == 0


def test_clickhouse_output_with_quoted_64_bit_integers(tmp_path: Path) -> None:
    rec = _record()
    for k in ("timestamp", "workflow_id", "job_id"):
        rec[k] = str(rec[k])
    rows = tmp_path / "ch.jsonl"
    rows.write_text(json.dumps(rec) + "\n")
    wrapped = tmp_path / "ch.json"
    wrapped.write_text(
        json.dumps(
            {"meta": [{"name": "timestamp", "type": "UInt64"}], "data": [rec], "rows": 1}, indent=1
        )
    )
    for path in (rows, wrapped):
        (run,) = read_file(path).runs
        assert run.run.started_at.isoformat() == "2025-08-14T02:05:12+00:00"
        assert run.run.model_extra["hud"]["record"]["workflow_id"] == 1


def test_a_bad_line_is_skipped_and_counted_as_the_uploader_does(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(_record()) + "\n{not json\n" + json.dumps({"no": "metric"}) + "\n")
    f = read_file(path)
    assert f.tally.items == 3 and f.tally.results == 1
    assert sum(f.tally.skipped.values()) == 2


def _upload(records: list[dict[str, Any]], metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """What test-infra's upload_benchmark_results.py keeps: records with a metric, merged as
    {**metadata, **record}, and only with a non-zero workflow_id and job_id."""
    merged = [{**metadata, **r} for r in records if "metric" in r]
    return [r for r in merged if r.get("workflow_id") and r.get("job_id")]


def test_own_export_is_accepted_by_the_uploader_and_fits_the_schema(
    store: Store, tmp_path: Path
) -> None:
    store.runs.add(make_run(seed=1))
    records = _exported(store, tmp_path)
    assert records and not any(k in r for r in records for k in CI_FIELDS)
    ci = {
        "timestamp": 1,
        "schema_version": "v3",
        "name": "ci",
        "repo": "triton-lang/triton",
        "head_branch": "main",
        "head_sha": "b" * 40,
        "workflow_id": 7,
        "run_attempt": 1,
        "job_id": 8,
    }
    uploaded = _upload(records, ci)
    assert len(uploaded) == len(records) and {r["workflow_id"] for r in uploaded} == {7}
    for r in records:
        assert set(r) <= COLUMNS
        assert set(r["benchmark"]) <= BENCHMARK and set(r["model"]) <= MODEL
        assert set(r["metric"]) <= METRIC and all(set(u) <= RUNNER for u in r["runners"])
        assert all(set(d) <= DEPENDENCY for d in r["dependencies"].values())
        maps = [
            r["benchmark"]["extra_info"],
            r["model"]["extra_info"],
            r["metric"]["extra_info"],
            *(u["extra_info"] for u in r["runners"]),
            *(d["extra_info"] for d in r["dependencies"].values()),
        ]
        assert all(isinstance(v, str) for m in maps for v in m.values())  # Map(String, String)
        assert r["model"]["type"] == "tritonwatch"
    shaped = [r for r in records if r["model"]["name"] == "matmul"]
    assert shaped and all("input_shape" in r["metric"]["extra_info"] for r in shaped)


def test_ci_metadata_only_when_asked(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.runs.add(make_run(seed=1))
    repo_only = _exported(
        store, tmp_path, hud_options=hud_export.ExportOptions(repo="acme/kernels")
    )
    assert {r["repo"] for r in repo_only} == {"acme/kernels"}
    with pytest.raises(UsageError, match="GITHUB_RUN_ID"):
        _exported(store, tmp_path, hud_options=hud_export.ExportOptions(from_ci_env=True))
    env = {
        "GITHUB_WORKFLOW": "nightly",
        "GITHUB_REPOSITORY": "acme/kernels",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SHA": "c" * 40,
        "GITHUB_RUN_ID": "123",
        "GITHUB_RUN_ATTEMPT": "2",
        "JOB_ID": "456",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ci = _exported(store, tmp_path, hud_options=hud_export.ExportOptions(from_ci_env=True))
    assert {(r["workflow_id"], r["job_id"], r["run_attempt"], r["head_sha"]) for r in ci} == {
        (123, 456, 2, "c" * 40)
    }


def test_records_stream_into_runs_without_reading_everything_first() -> None:
    """Bulk imports hold a bounded number of open runs, not the whole file."""
    from datetime import UTC, datetime

    from tritonwatch.formats.options import ImportOptions, Tally

    consumed = 0

    def records():  # noqa: ANN202 - a generator of (line, record)
        nonlocal consumed
        for night in range(10_000):
            for op in ("a", "b"):
                consumed += 1
                yield (
                    consumed,
                    _record(
                        timestamp=1_700_000_000 + night * 86400,
                        model={"name": op, "backend": "triton"},
                    ),
                )

    runs = hud.read_runs(records(), "<gen>", ImportOptions(), Tally(), datetime.now(UTC))
    first = next(runs)
    assert len(first.results) == 2
    assert consumed < 200  # a few open runs' worth, not 20,000 records


def test_a_pretty_printed_list_streams_and_a_cut_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tritonwatch.errors import InputError
    from tritonwatch.formats import jsontext

    monkeypatch.setattr(jsontext, "CHUNK", 1000)  # many buffer refills across records
    f = read_file(TRITONBENCH_V3)
    assert (f.format, len(f.runs), f.tally.items, f.tally.results) == ("hud", 4, 244, 244)
    cut = tmp_path / "cut.json"
    cut.write_text(TRITONBENCH_V3.read_text()[:-5000])
    with pytest.raises(InputError, match="looks truncated"):
        read_file(cut)


def test_records_sharing_no_run_fields_are_split_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from tritonwatch.formats.options import ImportOptions, Tally

    monkeypatch.setattr(hud, "_MAX_RUN", 50)
    recs = (
        (
            i,
            {
                "model": {"name": f"m{i}"},
                "metric": {"name": "latency", "benchmark_values": [1.0 + i]},
            },
        )
        for i in range(120)
    )
    runs = list(hud.read_runs(recs, "<gen>", ImportOptions(), Tally(), datetime.now(UTC)))
    assert [len(r.results) for r in runs] == [50, 50, 20]
    assert len({r.run.id for r in runs}) == 3


def test_records_mapped_once_per_content_read_as_records_mapped_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bulk import maps each distinct record once (its values aside) and reuses that for
    every night that repeats it: the runs must be the runs the record-by-record mapping gives,
    with the cache emptied as it fills and with a record orjson cannot write (int past 64 bits)."""
    records = json.loads(TRITONBENCH_V3.read_text())
    records[5]["metric"]["extra_info"] = {**records[5]["metric"]["extra_info"], "big": 2**70}

    def runs() -> list[dict[str, Any]]:
        from datetime import UTC, datetime

        from tritonwatch.formats.options import ImportOptions, Tally

        recs = enumerate(copy.deepcopy(records))
        got = hud.read_runs(recs, "<list>", ImportOptions(), Tally(), datetime.now(UTC))
        return [r.model_dump(mode="json") for r in got]

    cached = runs()
    monkeypatch.setattr(hud._Mappings, "SIZE", 3)
    assert runs() == cached
    fresh: list[int] = []

    def one_by_one(self: Any, r: dict[str, Any], metric: dict[str, Any]) -> Any:
        fresh.append(1)
        return hud._mapped(r, metric, hud._part(r, metric), self.opts)

    monkeypatch.setattr(hud._Mappings, "of", one_by_one)
    assert runs() == cached
    assert len(fresh) == len(records)
    assert len({json.dumps(r["run"]["hud"]["parts"]) for r in cached}) > 1
