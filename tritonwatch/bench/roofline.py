"""FLOP/s, bytes/s and % of peak for a case, against measured or published device peaks.

% of peak is against the roofline: the attainable rate for the case's arithmetic intensity,
``min(peak_tflops, intensity * peak_bandwidth)``. Peaks measured by ``tritonwatch calibrate`` are
preferred; a table of published dense peaks for common GPUs is the fallback; every derived
result says which was used (``peak_source``). CPU runs have no peak.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


def _p(
    bw: float, fp32: float, tf32: float | None, fp16: float, fp8: float | None
) -> dict[str, Any]:
    tflops = {"fp32": fp32, "tf32": tf32, "fp16": fp16, "bf16": fp16, "fp8e4m3": fp8}
    return {"bandwidth_gbps": bw, "tflops": {k: v for k, v in tflops.items() if v is not None}}


# Published dense (no sparsity) peaks from vendor datasheets. fp32 is the non-tensor-core rate,
# tf32 the tensor-core rate on fp32 data, fp16/bf16 use fp32 accumulation. Keys match whole
# words of the device name, first match wins: variants (NVL, PCIe) come before their base name.
PUBLISHED_PEAKS: list[tuple[str, dict[str, Any]]] = [
    ("GH200", _p(4000, 67, 494.7, 989.4, 1978.9)),
    ("H200 NVL", _p(4800, 60, 417.5, 835.5, 1671)),
    ("H200", _p(4800, 67, 494.7, 989.4, 1978.9)),
    ("H100 PCIe", _p(2000, 51, 378, 756, 1513)),
    ("H100 NVL", _p(3900, 60, 417.5, 835, 1671)),
    ("H100", _p(3350, 67, 494.7, 989.4, 1978.9)),
    ("B200", _p(8000, 75, 1100, 2250, 4500)),
    ("A100-SXM4-80GB", _p(2039, 19.5, 156, 312, None)),
    ("A100-SXM4-40GB", _p(1555, 19.5, 156, 312, None)),
    ("A100 80GB PCIe", _p(1935, 19.5, 156, 312, None)),
    ("A100", _p(1555, 19.5, 156, 312, None)),
    ("L40S", _p(864, 91.6, 183.2, 362, 733)),
    ("L4", _p(300, 30.3, 60, 121, 242.5)),
    ("RTX 4090", _p(1008, 82.6, 82.6, 165.2, 330.3)),
    ("A10G", _p(600, 31.2, None, 70, None)),
    ("MI355X", _p(8000, 157.3, None, 2516.6, 5033.2)),
    ("MI350X", _p(8000, 144.2, None, 2306.9, 4613.7)),
    ("MI325X", _p(6000, 163.4, 653.7, 1307.4, 2614.9)),
    ("MI300X", _p(5300, 163.4, 653.7, 1307.4, 2614.9)),
    ("MI250X", _p(3277, 95.7, None, 383, None)),
]


def _matches(key: str, name: str) -> bool:
    """``key`` as whole words of ``name`` ("H200" is not in "GH200", "L4" is not in "L40S")."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])", name, re.I) is not None


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
        if _matches(key, gpu_model):
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
