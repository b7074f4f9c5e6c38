"""benchmarks/store_bench.py keeps working: a tiny fill in both ingest modes, figures printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "store_bench.py"


def test_store_bench_prints_both_modes(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--results", "3000", "--backend", "sqlite"]
        + ["--queries", "10", "--batch", "5", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    rows = {
        m[0]: m[1:]
        for m in re.findall(r"^sqlite\s+(run|import x5)\s+([\d,]+)\s+([\d,]+)", out, re.M)
    }
    assert set(rows) == {"run", "import x5"}, out
    for written, rate in rows.values():
        assert int(written.replace(",", "")) == 2920  # 365 nights x 4 machines x 2 results
        assert int(rate.replace(",", "")) > 0
    assert not list(tmp_path.glob("bench-*")), "the databases are removed without --keep"


def test_store_bench_refuses_unknown_mode() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--modes", "bulk"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "--modes takes run and/or import" in proc.stderr
