"""FLOP/s, bytes/s and % of peak for a case, against measured or published device peaks.

% of peak is against the roofline: the attainable rate for the case's arithmetic intensity,
``min(peak_tflops, intensity * peak_bandwidth)``. Peaks measured by ``tritonwatch calibrate`` are
preferred; a table of published dense peaks for common GPUs is the fallback; every derived
result says which was used (``peak_source``). CPU runs have no peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Published dense (no sparsity) peaks from vendor datasheets. fp32 is the non-tensor-core rate,
# fp16/bf16 use fp32 accumulation. Keys are matched as substrings of the device name, in order.
PUBLISHED_PEAKS: list[tuple[str, dict[str, Any]]] = [
    (
        "H200",
        {
            "bandwidth_gbps": 4800,
            "tflops": {"fp32": 67, "fp16": 989.4, "bf16": 989.4, "fp8e4m3": 1978.9},
        },
    ),
    (
        "H100 PCIe",
        {"bandwidth_gbps": 2000, "tflops": {"fp32": 51, "fp16": 756, "bf16": 756, "fp8e4m3": 1513}},
    ),
    (
        "H100 NVL",
        {"bandwidth_gbps": 3900, "tflops": {"fp32": 60, "fp16": 835, "bf16": 835, "fp8e4m3": 1671}},
    ),
    (
        "H100",
        {
            "bandwidth_gbps": 3350,
            "tflops": {"fp32": 67, "fp16": 989.4, "bf16": 989.4, "fp8e4m3": 1978.9},
        },
    ),
    (
        "GH200",
        {
            "bandwidth_gbps": 4000,
            "tflops": {"fp32": 67, "fp16": 989.4, "bf16": 989.4, "fp8e4m3": 1978.9},
        },
    ),
    (
        "B200",
        {
            "bandwidth_gbps": 8000,
            "tflops": {"fp32": 80, "fp16": 2250, "bf16": 2250, "fp8e4m3": 4500},
        },
    ),
    (
        "A100-SXM4-80GB",
        {"bandwidth_gbps": 2039, "tflops": {"fp32": 19.5, "fp16": 312, "bf16": 312}},
    ),
    (
        "A100-SXM4-40GB",
        {"bandwidth_gbps": 1555, "tflops": {"fp32": 19.5, "fp16": 312, "bf16": 312}},
    ),
    (
        "A100 80GB PCIe",
        {"bandwidth_gbps": 1935, "tflops": {"fp32": 19.5, "fp16": 312, "bf16": 312}},
    ),
    ("A100", {"bandwidth_gbps": 1555, "tflops": {"fp32": 19.5, "fp16": 312, "bf16": 312}}),
    (
        "L40S",
        {"bandwidth_gbps": 864, "tflops": {"fp32": 91.6, "fp16": 362, "bf16": 362, "fp8e4m3": 733}},
    ),
    (
        "L4",
        {
            "bandwidth_gbps": 300,
            "tflops": {"fp32": 30.3, "fp16": 121, "bf16": 121, "fp8e4m3": 242.5},
        },
    ),
    (
        "RTX 4090",
        {
            "bandwidth_gbps": 1008,
            "tflops": {"fp32": 82.6, "fp16": 165.2, "bf16": 165.2, "fp8e4m3": 330.3},
        },
    ),
    ("A10G", {"bandwidth_gbps": 600, "tflops": {"fp32": 31.2, "fp16": 70, "bf16": 70}}),
    (
        "MI300X",
        {
            "bandwidth_gbps": 5300,
            "tflops": {"fp32": 163.4, "fp16": 1307.4, "bf16": 1307.4, "fp8e4m3": 2614.9},
        },
    ),
    (
        "MI325X",
        {
            "bandwidth_gbps": 6000,
            "tflops": {"fp32": 163.4, "fp16": 1307.4, "bf16": 1307.4, "fp8e4m3": 2614.9},
        },
    ),
    ("MI250X", {"bandwidth_gbps": 3277, "tflops": {"fp32": 95.7, "fp16": 383, "bf16": 383}}),
]


@dataclass(frozen=True)
class Peaks:
    """Device peaks: bandwidth in GB/s and TFLOP/s per dtype; ``source`` says where they came from."""

    bandwidth_gbps: float | None
    tflops: dict[str, float]
    source: str  # "measured", "published:<entry>"


@dataclass(frozen=True)
class Derived:
    tflops: float
    gbps: float
    pct_peak: float | None
    bound: str | None  # "compute" or "memory" per the roofline


def published_peaks(gpu_model: str | None) -> Peaks | None:
    if not gpu_model:
        return None
    for key, p in PUBLISHED_PEAKS:
        if key.lower() in gpu_model.lower():
            return Peaks(
                float(p["bandwidth_gbps"]),
                {k: float(v) for k, v in p["tflops"].items()},
                f"published:{key}",
            )
    return None


def peaks_for(gpu_model: str | None, measured: dict[str, Any] | None) -> Peaks | None:
    """Measured peaks if ``calibrate`` stored any, else the published table, else None."""
    if measured and (measured.get("bandwidth_gbps") or measured.get("tflops")):
        pub = published_peaks(gpu_model)
        tflops = {
            **(pub.tflops if pub else {}),
            **{k: float(v) for k, v in (measured.get("tflops") or {}).items()},
        }
        return Peaks(
            float(measured["bandwidth_gbps"]) if measured.get("bandwidth_gbps") else None,
            tflops,
            "measured",
        )
    return published_peaks(gpu_model)


def derive(
    flops: float, nbytes: float, median_ms: float, dtype: str, peaks: Peaks | None
) -> Derived:
    """Achieved TFLOP/s and GB/s, and % of the roofline's attainable rate.

    Parameters
    ----------
    flops, nbytes : float
        Work and memory traffic of one call.
    median_ms : float
        Median time of one call.
    dtype : str
        Selects the compute peak (``fp16`` ...).
    peaks : Peaks or None
        None (CPU, unknown GPU) gives ``pct_peak=None``.
    """
    sec = median_ms / 1e3
    tflops = flops / sec / 1e12 if sec > 0 else math.nan
    gbps = nbytes / sec / 1e9 if sec > 0 else math.nan
    if peaks is None or sec <= 0:
        return Derived(tflops, gbps, None, None)
    peak_f = peaks.tflops.get(dtype)
    bw = peaks.bandwidth_gbps
    candidates = []
    if peak_f:
        candidates.append((peak_f, "compute"))
    if bw and nbytes > 0:
        candidates.append((flops / nbytes * bw / 1e3, "memory"))  # TFLOP/s the bandwidth allows
    if not candidates:
        return Derived(tflops, gbps, None, None)
    attainable, bound = min(candidates)
    if attainable <= 0:
        return Derived(tflops, gbps, None, None)
    return Derived(tflops, gbps, 100.0 * tflops / attainable, bound)
