"""benchmarks/interop_bench.py keeps working: a tiny history, figures printed, files removed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "interop_bench.py"


def test_interop_bench_prints_rate_and_peak_memory(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--records", "700", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    m = re.search(
        r"^sqlite\s+([\d,]+)\s+([\d,]+)\s+[\d.]+\s+([\d,]+)\s+([\d,]+)\s+[\d.]+\s+([\d.]+)"
        r"\s+([\d,]+)\s+([\d,]+)$",
        out,
        re.M,
    )
    assert m, out
    records, runs, rate, cpu_rate = (int(g.replace(",", "")) for g in m.groups()[:4])
    reader_cpu, peak, reader_peak = (float(g.replace(",", "")) for g in m.groups()[4:])
    assert (records, runs) == (700, 12)  # 61 records per runner-night: 11 whole + 1 partial
    assert rate > 0 and cpu_rate > 0 and 0 < peak < 500
    assert reader_cpu == reader_peak == 0  # a small file is read by the importing process
    assert not list(tmp_path.glob("bench-*")), "the file and database are removed without --keep"
