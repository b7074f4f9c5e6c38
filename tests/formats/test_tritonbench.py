"""tritonbench import on the files tritonbench really writes (tests/fixtures/interop/tritonbench)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tritonwatch.formats.exchange import import_files, read_file
from tritonwatch.formats.options import ImportOptions
from tritonwatch.formats.tritonbench_ids import parse_id
from tritonwatch.store import Store

TB = Path(__file__).parent.parent / "fixtures" / "interop" / "tritonbench"


def _only_run(store: Store):  # noqa: ANN202 - RunDetail
    (summary,) = store.runs.find()
    return store.runs.get(summary.uuid)


def _accounted(report) -> None:  # noqa: ANN001
    """Every id read is a stored result or a skipped item with its reason."""
    for f in report.files:
        assert f.tally.items == f.stored + sum(f.tally.skipped.values()), f.tally


def test_output_json_file_imports_with_units_directions_and_errors(store: Store) -> None:
    report = import_files(store, [str(TB / "tb_gemm.json")])
    assert [(f.format, f.runs) for f in report.files] == [("tritonbench", 1)]
    _accounted(report)
    d = _only_run(store)
    assert d.summary.device == "unknown"  # the file does not say; never a CPU run by default
    by = {(r.provider, r.metric, r.shape.get("M")): r for r in d.results}
    lat = by[("aten_matmul", "latency", 1024)]
    assert (lat.operator, lat.mode, lat.unit, lat.better, lat.value) == (
        "gemm",
        "fwd",
        "ms",
        "lower",
        0.00750510584142562,
    )  # tritonbench writes it as a string
    assert lat.shape == {"M": 1024, "N": 1024, "K": 1024}
    tf = by[("aten_matmul", "tflops", 1024)]
    assert (tf.unit, tf.better) == ("TFLOP/s", "higher")
    oom = by[("triton_persistent_matmul", "latency", 8192)]
    assert (oom.status, oom.error) == ("error", "CUDA OOM")
    assert not any(r.error == "None" for r in d.results)
    assert by[("triton_tutorial_matmul", "speedup", 1024)].correct is True  # from accuracy
    avg = by[("triton_persistent_matmul", "tflops-avg", None)]
    assert (avg.unit, avg.better, avg.shape) == ("TFLOP/s", "higher", {})
    assert by[("triton_persistent_matmul", "accuracy-avg", None)].value == 0.9375
    assert by[("triton_tutorial_matmul", "speedup-avg", None)].better == "higher"
    assert report.files[0].tally.skipped["x_average row (tritonbench's own summary, not an input)"]


def test_dict_metrics_go_to_extra_and_walltime_has_its_unit(store: Store) -> None:
    report = import_files(store, [str(TB / "tb_gemm_more_metrics.json")])
    _accounted(report)
    d = _only_run(store)
    by = {(r.provider, r.metric, r.shape.get("M")): r for r in d.results}
    tut = by[("triton_tutorial_matmul", "latency", 1024)]
    assert tut.extra["config"] == {
        "BLOCK_SIZE_M": 128,
        "BLOCK_SIZE_N": 256,
        "BLOCK_SIZE_K": 64,
        "GROUP_SIZE_M": 8,
        "num_warps": 8,
        "num_ctas": 1,
        "num_stages": 3,
    }
    assert tut.extra["x_val"] == "(1024, 1024, 1024)"
    assert (by[("aten_matmul", "walltime", 1024)].unit, by[("aten_matmul", "gbps", 1024)].unit) == (
        "ms",
        "GB/s",
    )
    assert by[("aten_matmul", "compile_time", 1024)].value == 0.0  # aten compiles nothing: real 0
    assert not any(r.metric.startswith("best_config") for r in d.results)


def test_cpu_run_and_failed_backend_message(store: Store) -> None:
    import_files(store, [str(TB / "tb_softmax_cpu_real.json")], opts=ImportOptions(device="cpu"))
    d = _only_run(store)
    assert d.summary.device == "cpu" and d.summary.gpu_model is None
    errors = [r for r in d.results if r.status == "error"]
    assert len(errors) == 3 and {r.provider for r in errors} == {"triton_softmax"}
    assert all(r.error.startswith("0 active drivers") for r in errors)
    ok = [r for r in d.results if r.provider == "naive_softmax" and r.metric == "latency"]
    assert sorted(r.shape["N"] for r in ok) == [2176, 2240, 2304]


def test_semicolon_csv(store: Store) -> None:
    report = import_files(
        store,
        [str(TB / "tb_softmax_cpu_real_output.csv")],
        opts=ImportOptions(operator="softmax", device="cpu"),
    )
    assert report.files[0].format == "tritonbench"
    _accounted(report)
    d = _only_run(store)
    got = {(r.shape["N"], r.metric): r.value for r in d.results}
    assert got == {
        (2176, "latency"): 1.2235679626464844,
        (2176, "gbps"): 6.855857832249938,
        (2240, "latency"): 2.037156105041504,
        (2240, "gbps"): 6.176704852838779,
    }
    assert {r.operator for r in d.results} == {"softmax"}


def test_nightly_result_json_keeps_environment(store: Store) -> None:
    report = import_files(store, [str(TB / "nightly_result_A-h100.json")])
    _accounted(report)
    d = _only_run(store)
    assert d.summary.started_at.isoformat() == "2025-08-14T02:03:12+00:00"  # env.benchmark_date
    assert d.summary.device == "cuda" and d.summary.gpu_model == "NVIDIA H100 80GB HBM3"
    assert d.summary.triton_commit == "3e21741477a2323a5fb397cdc4a0afc5b1bd0ddb"
    assert d.info["github"]["GITHUB_RUN_ID"] == "16950000001"
    assert d.machine_info["runner_name"] == "gcp-h100-runner-x7k2p-runner-9qz4d"
    assert d.machine_info["runner_type"] == "gcp-h100-runner"
    assert d.machine_info["gpu_state"]["clocks.current.sm"] == "1980"
    assert d.build_info["torch"]["commit"] == "5462a3393212c1af494b94b3dfa7f2d1a94b4f73"
    failed = [r for r in d.results if r.metric == "pass" and r.status == "error"]
    assert [(r.operator, r.dtype) for r in failed] == [("fp8_gemm_rowwise", "fp8")]
    gemm = [r for r in d.results if r.operator == "gemm" and r.metric == "tflops"]
    assert {r.dtype for r in gemm} == {"fp16"} and {r.provider for r in gemm} == {
        "aten_matmul",
        "triton_tutorial_matmul",
        "triton_persistent_matmul",
    }


def test_history_orders_by_benchmark_date_not_file_time(store: Store, tmp_path: Path) -> None:
    """Copied in reverse order, the nightly files still sit on the nights they ran."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    shutil.copy(TB / "nightly_result_A-h100.json", a)
    shutil.copy(TB / "nightly_result_B-h100.json", b)
    os.utime(a, (2_000_000_000, 2_000_000_000))  # the older night has the newer file time
    os.utime(b, (1_000_000_000, 1_000_000_000))
    import_files(store, [str(b), str(a)])
    runs = store.runs.find(newest_first=False)
    assert [r.triton_commit[:8] for r in runs] == ["3e217414", "4919b01e"]
    (series,) = [
        s
        for s in store.series.find(operator="gemm", provider="aten_matmul", metric="tflops")
        if s.shape == {"M": 4096, "N": 4096, "K": 4096}
    ]
    assert (series.better, series.unit, series.points) == ("higher", "TFLOP/s", 2)
    a_value = json.loads((TB / "nightly_result_A-h100.json").read_text())["metrics"][
        "tritonbench_fp16_gemm_fwd[x_(4096, 4096, 4096)-aten_matmul]_tflops"
    ]
    first = store.runs.get(runs[0].uuid)
    assert [r.value for r in first.results if r.series_id == series.id] == [a_value]


def test_import_twice_adds_nothing(store: Store) -> None:
    paths = [str(TB / "nightly_result_A-h100.json"), str(TB / "tb_gemm.json")]
    first = import_files(store, paths)
    again = import_files(store, paths)
    assert (first.added, again.added, again.skipped) == (2, 0, 2)


def test_output_dir_folder_is_one_run_and_nightly_folder_uses_result_json(
    store: Store, tmp_path: Path
) -> None:
    per_op = tmp_path / "bench" / "run-20250814020312"
    per_op.mkdir(parents=True)
    shutil.copy(TB / "tb_gemm.json", per_op / "gemm.json")
    shutil.copy(TB / "tb_softmax_cpu_real_output.csv", per_op / "softmax.csv")
    nightly = tmp_path / "bench" / "run-20250815020547"
    nightly.mkdir()
    shutil.copy(TB / "nightly_result_B-h100.json", nightly / "result.json")
    shutil.copy(TB / "tb_gemm.json", nightly / "fp16_gemm_fwd.json")
    report = import_files(store, [str(tmp_path / "bench")])
    _accounted(report)
    assert report.added == 2
    older, newer = store.runs.find(newest_first=False)
    assert older.started_at.isoformat() == "2025-08-14T02:03:12+00:00"  # the folder's name
    assert {r.operator for r in store.runs.get(older.uuid).results} == {"gemm", "softmax"}
    assert newer.triton_commit.startswith("4919b01e")
    assert (
        report.files[0].tally.skipped["in a per-operator file that the folder's result.json merges"]
        == 57
    )


SYNTHETIC = {
    "tritonbench_fp8_gemm_rowwise_fwd[x_(1, 2, 3)-cublas_12.8]_tflops": 10.5,
    "tritonbench_flash_attention_fwd_no_grad[x_(4, 48, 1024, 1024, 64)-cudnn]_91002-latency": "0.5",
    "tritonbench_flash_attention_bwd[x_(4, 48, 1024, 1024, 64)-cudnn]_sdpa-9-latency": "0.7",
    "tritonbench_flash_attention_fwd_bwd[cudnn]-91002-latency-avg": 0.6,
    "tritonbench_gemm_fwd[x_(8, 8, 8)-hw_roofline]_": 989.0,
    "tritonbench_gemm_fwd[x_(8, 8, 8)-triton]_latency": "0.01",
    "tritonbench_gemm_fwd[x_(8, 8, 8)-triton]_compile_time_by_stage-ttir": 1.5,
    "tritonbench_gemm_fwd[x_(8, 8, 8)-triton]_compile_time_by_stage-ptx": 9.0,
    "tritonbench_gemm_fwd[x_(8, 8, 8)-triton]_determinism": "non_deterministic",
    "tritonbench_gemm_fwd[x_(8, 8, 8)-triton]_accuracy": 0.0,
    "tritonbench_gemm_fwd[x_hashes-triton]_kernel_source_hash": "abc",
    "tritonbench_gemm_fwd-target": 1.0,
    "tritonbench_gemm_fwd[[broken": 1.0,
}


def test_provider_labels_modes_and_special_metrics(tmp_path: Path) -> None:
    path = tmp_path / "op.json"
    path.write_text(json.dumps(SYNTHETIC, indent=4))
    f = read_file(path, opts=ImportOptions(shape_names=("M", "N", "K")))
    assert f.format == "tritonbench"
    assert f.tally.items == f.tally.results + sum(f.tally.skipped.values())
    assert f.tally.skipped["metric id not understood"] == 1  # counted, and the import goes on
    (run,) = f.runs
    by = {(r.provider, r.metric, r.mode): r for r in run.results}
    assert by[("cublas_12.8", "tflops", "fwd")].dtype == "fp8"
    assert by[("cublas_12.8", "tflops", "fwd")].shape == {"M": 1, "N": 2, "K": 3}
    assert ("cudnn-91002", "latency", "fwd_no_grad") in by
    assert ("cudnn-sdpa-9", "latency", "bwd") in by
    assert ("cudnn-91002", "latency-avg", "fwd_bwd") in by
    roof = by[("(input)", "hw_roofline", "fwd")]
    assert roof.value == 989.0
    lat = by[("triton", "latency", "fwd")]
    assert lat.extra["compile_time_by_stage"] == {"ttir": 1.5, "ptx": 9.0}
    assert lat.extra["determinism"] == "non_deterministic"
    assert (lat.correct, lat.status) == (False, "incorrect")  # accuracy 0: wrong, not fast


@pytest.mark.parametrize(
    "key", ["tritonbench_gemm_fwd", "gemm_fwd[x_1-a]_latency", "tritonbench_gemm_fwd[x_1]_latency"]
)
def test_ids_that_are_not_tritonbench_ids(key: str) -> None:
    assert parse_id(key) is None


@pytest.mark.parametrize(
    ("name", "op"),
    [
        ("softmax.csv", "softmax"),
        ("op_layer_norm_k3_x9a1b.csv", "layer_norm"),
        ("my-results.csv", "my-results"),
    ],
)
def test_csv_operator_from_the_names_tritonbench_gives(tmp_path: Path, name: str, op: str) -> None:
    path = tmp_path / name
    shutil.copy(TB / "tb_softmax_cpu_real_output.csv", path)
    (run,) = read_file(path).runs
    assert {r.operator for r in run.results} == {op}


# -- real CPU runs of tritonbench (meta-pytorch/tritonbench db2155c8, --device cpu) ----------
def test_tuple_metric_in_json_is_its_median_with_the_tuple_kept(store: Store) -> None:
    """vector_add's gbps is a tuple (at p50, max and min latency); json.dump writes a list."""
    report = import_files(
        store, [str(TB / "tb_vector_add_cpu_real.json")], opts=ImportOptions(device="cpu")
    )
    _accounted(report)
    assert "not a number" not in report.files[0].tally.skipped
    d = _only_run(store)
    gbps = {r.shape["x"]: r for r in d.results if r.metric == "gbps"}
    assert sorted(gbps) == [4096, 8192]
    r = gbps[4096]
    assert (r.provider, r.status, r.unit, r.value) == ("torch_add", "ok", "GB/s", 25.16743510313539)
    assert r.extra["gbps"] == [25.16743510313539, 12.058881737279512, 27.879749846787004]


def test_tuple_metric_in_csv_is_a_value_not_an_error(store: Store) -> None:
    """The CSV writes the same tuple as its text, ``(26.38..., 24.91..., 27.58...)``."""
    report = import_files(
        store,
        [str(TB / "tb_vector_add_cpu_real_output.csv")],
        opts=ImportOptions(operator="vector_add", device="cpu"),
    )
    _accounted(report)
    d = _only_run(store)
    assert {r.provider for r in d.results if r.status == "error"} == {"triton_add"}
    gbps = {r.shape["x"]: r.value for r in d.results if r.metric == "gbps"}
    assert gbps == {4096: 26.383253056916658, 8192: 43.43968179736449}


def test_averages_diluted_by_the_hashes_row_are_not_stored(store: Store) -> None:
    """With kernel_source_hash, tritonbench counts its x_hashes row as an input when it
    averages: aten_matmul's one tflops of 0.0211 averages to 0.0141 (-avg) and 0.0070
    (x_average)."""
    report = import_files(
        store,
        [str(TB / "tb_gemm_kernel_source_hash_cpu_real.json")],
        opts=ImportOptions(device="cpu"),
    )
    _accounted(report)
    d = _only_run(store)
    assert not [r for r in d.results if r.metric.endswith("-avg")]
    skipped = report.files[0].tally.skipped
    assert (
        skipped[
            "a -avg too low: with kernel_source_hash, tritonbench averages over its x_hashes row too"
        ]
        == 2
    )
    tflops = [r for r in d.results if r.metric == "tflops"]
    assert [(r.provider, r.value) for r in tflops] == [("aten_matmul", 0.02113478559693289)]


def test_a_failed_backends_null_dict_and_text_metrics_are_counted_as_its_failure() -> None:
    """triton_tutorial_matmul failed (its latency holds the message): its null best_config and
    kernel_source_hash are nulls of that failure; aten_matmul's (not a Triton kernel) are nulls."""
    skipped = read_file(TB / "tb_gemm_kernel_source_hash_cpu_real.json").tally.skipped
    # triton: tflops, gbps, speedup, accuracy, best_config, kernel_source_hash
    assert skipped["no value: the backend failed"] == 6
    assert skipped["no value (null)"] == 2  # aten_matmul: best_config, kernel_source_hash


@pytest.mark.parametrize(
    ("name", "opts", "operator", "mode", "dtype", "shape", "errors"),
    [
        ("tb_layer_norm_bwd_cpu_real.json", {}, "layer_norm", "bwd", "unknown", {"x": 1024}, 1),
        (
            "tb_rms_norm_fwd_bwd_cpu_real.json",
            {},
            "rms_norm",
            "fwd_bwd",
            "unknown",
            {"M": 2048, "H": 1024},
            1,
        ),
        (
            "tb_embedding_fwd_no_grad_cpu_real.json",
            {},
            "embedding",
            "fwd_no_grad",
            "unknown",
            {"B": 32, "T": 512, "D": 768, "V": 1024},
            1,
        ),
        (  # --precision fp32 --benchmark-name fp32_softmax_fwd_no_grad
            "tb_softmax_benchmark_name_cpu_real.json",
            {},
            "softmax",
            "fwd_no_grad",
            "fp32",
            {"N": 2176},
            1,
        ),
        ("tb_sum_input_shape_cpu_real.json", {}, "sum", "fwd", "unknown", {"x": 512}, 2),
        (  # the CSV's x label "(M, H)" names the sizes
            "tb_rms_norm_cpu_real_output.csv",
            {"operator": "rms_norm"},
            "rms_norm",
            "fwd",
            "unknown",
            {"M": 2048, "H": 1024},
            2,
        ),
        (  # a multi-line error message, quoted over 24 lines
            "tb_gemm_cpu_real_output.csv",
            {"operator": "gemm"},
            "gemm",
            "fwd",
            "unknown",
            {"M": 128, "N": 128, "K": 128},
            4,
        ),
    ],
)
def test_real_cpu_runs_import_every_id(
    store: Store,
    name: str,
    opts: dict[str, str],
    operator: str,
    mode: str,
    dtype: str,
    shape: dict[str, int],
    errors: int,
) -> None:
    path = TB / name
    report = import_files(store, [str(path)], opts=ImportOptions(device="cpu", **opts))
    _accounted(report)
    if path.suffix == ".json":
        assert report.files[0].tally.items == len(json.loads(path.read_text()))
    d = _only_run(store)
    assert {(r.operator, r.mode, r.dtype) for r in d.results} == {(operator, mode, dtype)}
    assert shape in [r.shape for r in d.results]
    failed = [r for r in d.results if r.status == "error"]
    assert len(failed) == errors and all(r.error for r in failed)
    assert all(r.value is not None for r in d.results if r.status != "error")


@pytest.mark.parametrize(
    "name", ["tb_layer_norm_bwd_cpu_real.json", "tb_rms_norm_cpu_real_output.csv"]
)
def test_dtype_names_the_precision_a_file_leaves_out_and_a_new_run(name: str) -> None:
    """A per-op file or CSV names no dtype: --dtype fills it in, and makes another run (the same
    file imported with another precision is another measurement); without it, a warning."""
    opts = {"device": "cpu", "operator": "rms_norm"} if name.endswith(".csv") else {"device": "cpu"}
    plain = read_file(TB / name, opts=ImportOptions(**opts))
    given = read_file(TB / name, opts=ImportOptions(dtype="bf16", **opts))
    (run,), (run_bf16,) = plain.runs, given.runs
    assert {r.dtype for r in run.results} == {"unknown"}
    assert {r.dtype for r in run_bf16.results} == {"bf16"}
    assert any("--dtype" in w for w in plain.tally.warnings)
    assert not any("--dtype" in w for w in given.tally.warnings)
    assert run_bf16.run.id != run.run.id
    assert read_file(TB / name, opts=ImportOptions(**opts)).runs[0].run.id == run.run.id


def test_dtype_never_overrides_the_one_a_benchmark_name_carries() -> None:
    got = read_file(
        TB / "tb_softmax_benchmark_name_cpu_real.json",
        opts=ImportOptions(device="cpu", dtype="bf16"),
    )
    assert {r.dtype for r in got.runs[0].results} == {"fp32"}
    assert not any("--dtype" in w for w in got.tally.warnings)
