"""`scripts/gpu-check` is only run for real on a lent GPU: its suite and A/B paths run here on a
CPU (smoke shapes) so the script cannot rot between GPU runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.probes import needs_interpreter

pytest.importorskip("torch")
pytest.importorskip("triton")

from tritonwatch.bench.blocks import LEVEL_CANDIDATES  # noqa: E402 (after the skips)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@needs_interpreter()
def test_gpu_check_runs_its_quick_suite_and_ab_on_a_cpu(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITONWATCH_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu-check"), "--device", "cpu",
         "--out", str(tmp_path), "--budget-ms", "20", "--ab-budget-ms", "40", "--ab-reps", "1"],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "results.json").read_text())["sections"]
    counts = data["suite"]["counts"]
    assert not counts.get("error") and not counts.get("incorrect"), counts
    # Every case of the curated list ran or says why not (tf32/fp8 need a GPU).
    cases = data["suite"]["cases"]
    assert len(cases) >= 60 and all(c["status"] in ("ok", "skipped") for c in cases)
    assert all(c["error"] for c in cases if c["status"] == "skipped")
    planted = [c for c in data["ab"]["cases"] if "planted_copy" in c["case"]]
    assert {c["expected"] for c in planted} == {"same", "slower 1.0%"}
    assert data["ab"]["planted_found"][1] == 1 and all(c["blocks"] >= 4 for c in planted)
    (case,) = data["ab"]["planted_by_case"]  # each planted size says what it found
    assert "planted_copy" in case and data["ab"]["planted_by_case"][case]["of"] == 1
    # How often a transient made a block be timed again, per case (0 on a quiet GPU).
    assert all(isinstance(c["timed_again"], int) for c in data["ab"]["cases"])
    # Every block as timed, under each statistic a block could take of its segments: the ones
    # that counted are among them (the fastest half, what the verdict takes), and
    # benchmarks/segment_level_bench.py scores them.
    for c in planted:
        timed = c["timed_blocks"]
        assert len(timed) >= c["blocks"] and set(timed[0]["ratios"]) == set(LEVEL_CANDIDATES)
        fast = {round(b["ratios"]["fastest half"], 12) for b in timed}
        assert {round(r, 12) for r in c["block_ratios"]} <= fast
    bench = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "segment_level_bench.py"),
         "--from", str(tmp_path / "results.json")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stderr[-2000:]
    line = next(x for x in bench.stdout.splitlines() if x.strip().startswith("fastest half"))
    assert "A/A " in line and "planted 1: spread" in line and "found" in line, bench.stdout
    assert "| case |" in (tmp_path / "tables.md").read_text()
    # capture: the launch hook records what the run launched, and blast compiles all of it.
    cap = data["capture"]
    kernels = {s["kernel"].rsplit(":", 1)[-1] for s in cap["specs"]}
    assert kernels == {"add_kernel", "softmax_kernel"} and not cap["errors"]
    assert cap["blast"] == f"No change in {len(cap['specs'])} specialisations."


def test_gpu_check_on_a_machine_without_a_gpu_says_so_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu-check")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no GPU visible" in proc.stderr


@needs_interpreter()
def test_the_planted_softmax_is_correct_and_the_planted_side_runs_more_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gpu-check's planted Triton softmax, under the interpreter (its kernel is not timed on a
    CPU, but checked): both providers give the reference's rows; the planted one runs 10% more."""
    from tritonwatch import plugins
    from tritonwatch.bench.registry import expand, load_suite
    from tritonwatch.bench.runner import execute
    from tritonwatch.bench.spec import DeviceInfo

    scripts = str(ROOT / "scripts")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([scripts, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("TW_PLANTED_SLOWDOWN", "0.1")
    monkeypatch.syspath_prepend(scripts)
    suite = tmp_path / "s.toml"
    suite.write_text('[[cases]]\noperator = "planted_softmax"\nproviders = ["steady", "planted"]\n')
    cpu = DeviceInfo("cpu", "cpu", interpreter=True)
    plan = expand(plugins.load(["gpu_planted:register"]), load_suite(str(suite)), cpu)
    assert len(plan.cases) == 2
    records, _, interrupted = execute(
        plan.cases, cpu, budget_ms=1, target_ci=0.5, seed=0, gpus=None,
        plugins=["gpu_planted:register"],
    )  # fmt: skip
    assert not interrupted
    rows = {r.case.provider: r.extra["config"]["rows"] for r in records}
    assert all(r.status == "skipped" and r.correct is True for r in records), records
    assert rows == {"steady": 37, "planted": 41}  # 37 rows, and ceil(37 * 1.1)
