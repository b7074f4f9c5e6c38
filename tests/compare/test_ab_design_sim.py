"""benchmarks/ab_design_sim.py keeps working: it reads the kept H200 blocks (and gpu-check's
results.json), judges the measured comparisons again as they were judged on the GPU, and runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "benchmarks" / "ab_design_sim.py"
KEPT = ROOT / "benchmarks" / "h200-ab-blocks-2026-11-28.json"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SIM), *args], capture_output=True, text=True, timeout=120
    )


def test_the_kept_blocks_are_judged_as_on_the_gpu_and_a_design_is_simulated() -> None:
    r = _run("--reps", "3", "--pairs", "4", "--planned", "8")
    assert r.returncode == 0, r.stderr
    # On the H200, gpu-check judged these comparisons: 6 of 9 planted found with four pairs,
    # 3 of 3 with eight, no A/A case flagged.
    assert "4 pairs x 24 fixed blocks: measured found 6/9, A/A 0/21" in r.stdout
    assert "8 pairs x 24 fixed blocks: measured found 3/3, A/A 0/7" in r.stdout
    assert "4 pairs, 8 planned blocks: planted found" in r.stdout
    # Each planted size on its own line: its change in time is not the 1% more bytes planted.
    assert "planted_copy[N=16777216]/fp32/planted" in r.stdout.split("simulated, 3")[1]
    assert "change +0.77%: found" in r.stdout


def test_gpu_check_results_are_read_and_a_file_without_blocks_is_refused(tmp_path: Path) -> None:
    kept = json.loads(KEPT.read_text())
    cases = [
        {
            "rep": k,
            "case": c["case"],
            "expected": c["expected"],
            "block_ratios": c["blocks"],
            "pairs": c["pairs"],
        }  # fmt: skip
        for k, comp in enumerate(kept["comparisons"][:1])
        for c in comp["cases"]
    ]
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"sections": {"ab": {"cases": cases}}}))
    r = _run("--blocks-from", str(results), "--reps", "2", "--pairs", "4")
    assert r.returncode == 0, r.stderr
    assert "1 measured comparisons" in r.stdout
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"sections": {"ab": {"cases": [{"rep": 0, "case": "x"}]}}}))
    r = _run("--blocks-from", str(bare))
    assert r.returncode != 0 and "no blocks in it" in r.stderr
    r = _run("--blocks-from", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr


def test_a_change_is_planted_into_each_aa_cases_noise_in_turn() -> None:
    r = _run("--reps", "3", "--pairs", "8", "--planned", "8,16", "--plant-each", "1")
    assert r.returncode == 0, r.stderr
    part = r.stdout.split("a 1% change planted into each A/A case in turn")[1]
    lines = [x for x in part.splitlines() if "within" in x]
    # The kept file's seven A/A cases (its three planted copies are left out), two designs each.
    assert len(lines) == 7 and all("8x8 " in x and "8x16 " in x for x in lines), lines
    assert any(x.lstrip().startswith("softmax[") for x in lines)
