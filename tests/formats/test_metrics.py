"""The one metric table: every tritonbench and HUD metric has its unit and direction."""

from __future__ import annotations

import pytest

from tritonwatch.formats.metrics import HUD, METRICS, TRITONBENCH, better_of, lookup, unit_of
from tritonwatch.runformat import metric_better

# tritonbench's BenchmarkOperatorMetrics fields (tritonbench/utils/triton_op.py) and the nightly
# -pass flag, with the unit and direction each has there.
TRITONBENCH_METRICS = {
    "latency": ("ms", "lower"),
    "tflops": ("TFLOP/s", "higher"),
    "gbps": ("GB/s", "higher"),
    "speedup": ("x", "higher"),
    "accuracy": ("", "higher"),
    "walltime": ("ms", "lower"),
    "cuda_time": ("ms", "lower"),
    "compile_time": ("ms", "lower"),
    "cpu_peak_mem": ("GB", "lower"),
    "gpu_peak_mem": ("GB", "lower"),
    "mem_footprint_compression_ratio": ("x", "higher"),
    "nsys_gpu_speedup": ("x", "higher"),
    "cosine_similarity": ("", "higher"),
    "snr": ("dB", "higher"),
    "hw_roofline": ("TFLOP/s", "higher"),
    "pass": ("", "higher"),
}
TEXT_OR_DICT = (
    "best_config",
    "compile_time_by_stage",
    "all_configs",
    "kernel_source_hash",
    "determinism",
    "error_msg",
    "compile_trace",
    "att_trace",
    "ncu_rep",
    "ncu_rep_ir",
    "nsys_rep",
    "kineto_trace",
)
# torchci/lib/benchmark/llms/common.ts IS_INCREASING_METRIC_VALUE_GOOD, verbatim.
HUD_INCREASING = {
    "memory_bandwidth(GB/s)": True,
    "token_per_sec": True,
    "flops_utilization": True,
    "compilation_time(s)": False,
    "speedup": True,
    "avg_inference_latency(ms)": False,
    "trimmean_inference_latency(ms)": False,
    "model_load_time(ms)": False,
    "peak_inference_mem_usage(mb)": False,
    "peak_load_mem_usuage(mb)": False,
    "generate_time(ms)": False,
    "latency": False,
    "median_itl_ms": False,
    "median_tpot_ms": False,
    "median_ttft_ms": False,
    "p99_itl_ms": False,
    "p99_tpot_ms": False,
    "p99_ttft_ms": False,
    "requests_per_second": True,
    "tokens_per_second": True,
    "Cold compile time (s)": False,
    "Warm compile time (s)": False,
    "Speedup": True,
    "Speedup (%)": True,
    "triton_speedup": True,
    "torch_compile_speedup": True,
    "helion_speedup": True,
}


@pytest.mark.parametrize(("name", "unit_better"), sorted(TRITONBENCH_METRICS.items()))
def test_every_tritonbench_metric_has_unit_and_direction(name: str, unit_better: tuple) -> None:
    unit, better = unit_better
    assert (unit_of(name), better_of(name)) == (unit, better)
    # tritonbench's per-provider average of a metric means the same thing
    assert (unit_of(name + "-avg"), metric_better(name + "-avg")) == (unit, better)


def test_dict_and_text_metrics_are_known() -> None:
    for name in TEXT_OR_DICT:
        assert lookup(name) is not None and lookup(name).kind in ("dict", "text"), name


@pytest.mark.parametrize(("name", "increasing"), sorted(HUD_INCREASING.items()))
def test_hud_direction_table(name: str, increasing: bool) -> None:
    assert metric_better(name) == ("higher" if increasing else "lower")


def test_every_entry_names_its_source_and_runformat_uses_the_table() -> None:
    assert all(m.source for m in METRICS.values())
    assert METRICS["tflops"].source == TRITONBENCH and METRICS["tokens_per_second"].source == HUD
    assert metric_better("my_score") == "lower" and metric_better("my_score", "higher") == "higher"
    assert metric_better("fused_tflops") == "higher"
