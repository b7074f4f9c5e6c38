"""FLOP/s, GB/s and % of peak against measured or published peaks."""

from __future__ import annotations

import pytest

from tritonwatch.bench.roofline import derive, peaks_for, published_peaks


def test_published_peaks_match_by_model_name() -> None:
    assert published_peaks("NVIDIA H100 80GB HBM3").source == "published:H100"  # type: ignore[union-attr]
    assert published_peaks("NVIDIA H100 PCIe").source == "published:H100 PCIe"  # type: ignore[union-attr]
    assert published_peaks("AMD Instinct MI300X").tflops["fp16"] == pytest.approx(1307.4)  # type: ignore[union-attr]
    assert published_peaks("Some Future GPU") is None and published_peaks(None) is None


def test_measured_peaks_win_and_say_so() -> None:
    p = peaks_for("NVIDIA H100 80GB HBM3", {"bandwidth_gbps": 3000, "tflops": {"fp16": 700}})
    assert p is not None and p.source == "measured" and p.bandwidth_gbps == 3000
    assert p.tflops["fp16"] == 700 and p.tflops["fp8e4m3"] == pytest.approx(1978.9)
    assert peaks_for("NVIDIA H100 80GB HBM3", None).source == "published:H100"  # type: ignore[union-attr]


def test_compute_bound_case_is_compared_with_the_compute_peak() -> None:
    p = peaks_for("H100", {"bandwidth_gbps": 3000, "tflops": {"fp16": 800}})
    n = 8192
    flops, nbytes = 2.0 * n**3, 3.0 * 2 * n * n
    d = derive(flops, nbytes, median_ms=flops / 400e12 * 1e3, dtype="fp16", peaks=p)
    assert d.tflops == pytest.approx(400) and d.bound == "compute"
    assert d.pct_peak == pytest.approx(50)


def test_memory_bound_case_is_compared_with_bandwidth() -> None:
    p = peaks_for("H100", {"bandwidth_gbps": 2000, "tflops": {"fp32": 50}})
    n = 1 << 28
    d = derive(float(n), 12.0 * n, median_ms=12.0 * n / 1000e9 * 1e3, dtype="fp32", peaks=p)
    assert d.gbps == pytest.approx(1000) and d.bound == "memory"
    assert d.pct_peak == pytest.approx(50)


def test_no_peaks_no_percentage() -> None:
    d = derive(1e9, 1e9, 1.0, "fp16", None)
    assert d.pct_peak is None and d.tflops == pytest.approx(1.0) and d.gbps == pytest.approx(1000)


@pytest.mark.parametrize(
    ("name", "entry"),
    [
        ("NVIDIA GH200 480GB", "GH200"),  # not H200
        ("NVIDIA H200", "H200"),
        ("NVIDIA H200 NVL", "H200 NVL"),  # not the SXM part's compute figures
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40", None),  # not an L4
        ("NVIDIA GB200", None),  # not a B200
        ("AMD Instinct MI355X", "MI355X"),
        ("AMD Instinct MI350X", "MI350X"),
    ],
)
def test_published_peaks_match_whole_words(name: str, entry: str | None) -> None:
    p = published_peaks(name)
    assert (p.source if p else None) == (f"published:{entry}" if entry else None)


def test_tf32_has_its_own_peak_between_fp32_and_fp16() -> None:
    p = published_peaks("NVIDIA H100 80GB HBM3")
    assert p is not None and p.tflops["fp32"] < p.tflops["tf32"] < p.tflops["fp16"]
