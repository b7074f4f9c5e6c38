"""The metric table: name, unit, direction and source of every metric tritonwatch knows.

Every importer (tritonbench, PyTorch HUD) and :func:`tritonwatch.runformat.metric_better` read
this one table, so a metric means the same thing whichever file it came in. Each entry names the
code that defines it. This module imports nothing from tritonwatch: the run format and the Store
use it without depending on the format modules around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["lower", "higher"]
# number: a measurement; accuracy: 1/0 per input (sets `correct`); pass: a benchmark's 1/0;
# dict: one id per key, kept in the result's `extra`; text: a string, kept in `extra`.
Kind = Literal["number", "accuracy", "pass", "dict", "text"]

TRITONBENCH = "tritonbench: BenchmarkOperatorMetrics in tritonbench/utils/triton_op.py"
HUD = "pytorch/test-infra: torchci/lib/benchmark/llms/common.ts IS_INCREASING_METRIC_VALUE_GOOD"
TRITONWATCH = "tritonwatch: bench/runner.py and codegen/"


@dataclass(frozen=True)
class Metric:
    """What a metric measures and which way is better."""

    name: str
    unit: str
    better: Better
    source: str
    kind: Kind = "number"
    # tritonbench's HUD converter writes 0.0 for a failed or missing value; for these metrics a
    # real measurement is never 0, so a 0.0 there is a failure, not a number.
    zero_is_failure: bool = False


def _m(
    name: str,
    unit: str,
    better: Better,
    source: str,
    kind: Kind = "number",
    zero_is_failure: bool = False,
) -> Metric:
    return Metric(name, unit, better, source, kind, zero_is_failure)


_TABLE: tuple[Metric, ...] = (
    # tritonbench's built-in metrics (units from the code that fills them in).
    _m("latency", "ms", "lower", TRITONBENCH, zero_is_failure=True),  # p50 of do_bench, ms
    _m("tflops", "TFLOP/s", "higher", TRITONBENCH, zero_is_failure=True),
    _m("gbps", "GB/s", "higher", TRITONBENCH, zero_is_failure=True),
    _m("speedup", "x", "higher", TRITONBENCH, zero_is_failure=True),  # baseline / this
    _m("accuracy", "", "higher", TRITONBENCH, kind="accuracy"),
    _m("cosine_similarity", "", "higher", TRITONBENCH),
    _m("snr", "dB", "higher", TRITONBENCH),
    _m("determinism", "", "higher", TRITONBENCH, kind="text"),  # pass/non_deterministic/fail
    _m("walltime", "ms", "lower", TRITONBENCH, zero_is_failure=True),
    _m("cuda_time", "ms", "lower", TRITONBENCH, zero_is_failure=True),
    _m("compile_time", "ms", "lower", TRITONBENCH),  # 0.0 is real (aten compiles nothing)
    _m("compile_time_by_stage", "ms", "lower", TRITONBENCH, kind="dict"),
    _m("cpu_peak_mem", "GB", "lower", TRITONBENCH),  # / 10**9
    _m("gpu_peak_mem", "GB", "lower", TRITONBENCH),
    _m("hw_roofline", "TFLOP/s", "higher", TRITONBENCH),  # per input, not per provider
    _m("mem_footprint_compression_ratio", "x", "higher", TRITONBENCH, zero_is_failure=True),
    _m("nsys_gpu_speedup", "x", "higher", TRITONBENCH, zero_is_failure=True),
    _m("best_config", "", "lower", TRITONBENCH, kind="dict"),
    _m("all_configs", "", "lower", TRITONBENCH, kind="text"),
    _m("kernel_source_hash", "", "lower", TRITONBENCH, kind="text"),
    _m("error_msg", "", "lower", TRITONBENCH, kind="text"),
    _m("compile_trace", "", "lower", TRITONBENCH, kind="text"),
    _m("walltime_kineto_trace", "", "lower", TRITONBENCH, kind="text"),
    _m("att_trace", "", "lower", TRITONBENCH, kind="text"),
    _m("ncu_rep", "", "lower", TRITONBENCH, kind="text"),
    _m("ncu_rep_ir", "", "lower", TRITONBENCH, kind="text"),
    _m("nsys_rep", "", "lower", TRITONBENCH, kind="text"),
    _m("kineto_trace", "", "lower", TRITONBENCH, kind="text"),
    # benchmarks/nightly/run.py: 1 when the benchmark wrote output, 0 when it failed outright.
    _m("pass", "", "higher", "tritonbench: benchmarks/nightly/run.py reduce()", kind="pass"),
    # PyTorch HUD's own direction table (units read off the names).
    _m("memory_bandwidth(GB/s)", "GB/s", "higher", HUD, zero_is_failure=True),
    _m("token_per_sec", "tokens/s", "higher", HUD, zero_is_failure=True),
    _m("flops_utilization", "", "higher", HUD),
    _m("compilation_time(s)", "s", "lower", HUD),
    _m("avg_inference_latency(ms)", "ms", "lower", HUD, zero_is_failure=True),
    _m("trimmean_inference_latency(ms)", "ms", "lower", HUD, zero_is_failure=True),
    _m("model_load_time(ms)", "ms", "lower", HUD),
    _m("peak_inference_mem_usage(mb)", "MB", "lower", HUD),
    _m("peak_load_mem_usuage(mb)", "MB", "lower", HUD),  # sic: HUD's spelling
    _m("generate_time(ms)", "ms", "lower", HUD, zero_is_failure=True),
    _m("median_itl_ms", "ms", "lower", HUD),
    _m("median_tpot_ms", "ms", "lower", HUD),
    _m("median_ttft_ms", "ms", "lower", HUD),
    _m("p99_itl_ms", "ms", "lower", HUD),
    _m("p99_tpot_ms", "ms", "lower", HUD),
    _m("p99_ttft_ms", "ms", "lower", HUD),
    _m("requests_per_second", "requests/s", "higher", HUD, zero_is_failure=True),
    _m("tokens_per_second", "tokens/s", "higher", HUD, zero_is_failure=True),
    _m("Cold compile time (s)", "s", "lower", HUD),
    _m("Warm compile time (s)", "s", "lower", HUD),
    _m("Speedup", "x", "higher", HUD, zero_is_failure=True),
    _m("Speedup (%)", "%", "higher", HUD),
    _m("triton_speedup", "x", "higher", HUD, zero_is_failure=True),
    _m("torch_compile_speedup", "x", "higher", HUD, zero_is_failure=True),
    _m("helion_speedup", "x", "higher", HUD, zero_is_failure=True),
    # tritonwatch's own runner and codegen metrics.
    _m("time", "ms", "lower", TRITONWATCH),
    _m("pct_peak", "%", "higher", TRITONWATCH),
    _m("throughput", "", "higher", TRITONWATCH),
    _m("occupancy", "", "higher", TRITONWATCH),
    _m("registers", "", "lower", TRITONWATCH),
    _m("spills", "", "lower", TRITONWATCH),
    _m("shared_memory", "bytes", "lower", TRITONWATCH),
    _m("instructions", "", "lower", TRITONWATCH),
    _m("memory", "", "lower", TRITONWATCH),
    _m("scratch", "bytes", "lower", TRITONWATCH),
    _m("vgprs", "", "lower", TRITONWATCH),
    _m("sgprs", "", "lower", TRITONWATCH),
    _m("agprs", "", "lower", TRITONWATCH),
)

METRICS: dict[str, Metric] = {m.name: m for m in _TABLE}
# tritonbench's per-provider averages: `<metric>-avg` (triton_op.py userbenchmark_dict).
AVERAGE_SUFFIX = "-avg"
_HIGHER_SUFFIXES = ("_tflops", "_gbps", "_per_s", "_per_sec", "_speedup", "_bandwidth")


def lookup(name: str) -> Metric | None:
    """The table's entry for ``name``; a tritonbench average (``tflops-avg``) is its metric's."""
    found = METRICS.get(name)
    if found is None and name.endswith(AVERAGE_SUFFIX):
        found = METRICS.get(name[: -len(AVERAGE_SUFFIX)])
    return found


def unit_of(name: str, default: str = "") -> str:
    m = lookup(name)
    return m.unit if m else default


def better_of(name: str, explicit: str | None = None) -> Better:
    """Whether a lower or a higher value of ``name`` is better.

    An explicit direction wins; then the table; then a name ending like a rate (``_tflops``,
    ``_per_s``, ``_speedup``) is higher-is-better; anything else is a cost (lower is better),
    the safe reading for times and sizes.
    """
    if explicit in ("lower", "higher"):
        return explicit  # type: ignore[return-value]
    m = lookup(name)
    if m is not None:
        return m.better
    low = name.lower()
    m = lookup(low)
    if m is not None:
        return m.better
    if low.removesuffix(AVERAGE_SUFFIX).endswith(_HIGHER_SUFFIXES):
        return "higher"
    return "lower"


def zero_is_failure(name: str) -> bool:
    m = lookup(name)
    return bool(m and m.zero_is_failure)
