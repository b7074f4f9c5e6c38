"""The runner's fault handling, with fake providers that raise, abort, segfault and hang."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.probes import needs

from tritonwatch import settings
from tritonwatch.bench.runner import RunOptions, run_suite, shuffled
from tritonwatch.bench.spec import Case
from tritonwatch.store import Store

HERE = Path(__file__).parent


@pytest.fixture
def fake_plugin(monkeypatch: pytest.MonkeyPatch) -> str:
    # The worker is a subprocess: it finds the fake module through PYTHONPATH.
    monkeypatch.setenv("PYTHONPATH", str(HERE))
    monkeypatch.syspath_prepend(str(HERE))
    return "fakeops:register"


def _suite(tmp_path: Path, providers: list[str]) -> str:
    p = tmp_path / "fake.toml"
    names = ", ".join(f'"{x}"' for x in providers)
    p.write_text(f'[[cases]]\noperator = "fake"\nproviders = [{names}]\n')
    return str(p)


@pytest.mark.slow
@needs("torch", "triton")
def test_crash_hang_and_raise_become_error_results_and_the_suite_goes_on(
    tmp_path: Path, fake_plugin: str, sqlite_url: str
) -> None:
    providers = ["good", "wrong", "raise", "abort", "segv", "hang"]
    opts = RunOptions(
        suite=_suite(tmp_path, providers),
        device="cpu",
        budget_ms=20,
        seed=3,
        plugins=[fake_plugin],
        label="faults",
    )
    store = Store.open(sqlite_url)
    with settings.scope(case_timeout_s=4.0):
        outcome = run_suite(opts, store)
    by = {o.record.case.provider: o.record for o in outcome.outcomes}
    assert set(by) == set(providers)
    assert by["good"].status == "ok" and len(by["good"].samples or []) >= 10
    assert by["wrong"].status == "incorrect" and not by["wrong"].samples
    assert "exceeds tolerance" in (by["wrong"].error or "")
    assert by["raise"].status == "error" and "blew up on purpose" in (by["raise"].error or "")
    assert by["abort"].status == "error" and "SIGABRT" in (by["abort"].error or "")
    assert by["segv"].status == "error" and "crashed" in (by["segv"].error or "")
    assert by["hang"].status == "error" and "timeout" in (by["hang"].error or "")
    # Stored as one run: the time result per case, plus derived metrics for the good one.
    run = store.runs.get(outcome.stored.uuid)
    assert run.summary.device == "cpu" and run.summary.label == "faults"
    times = {r.provider: r for r in run.results if r.metric == "time"}
    assert times["good"].status == "ok" and times["good"].samples is not None
    assert times["wrong"].status == "incorrect" and times["wrong"].samples is None
    assert {r.metric for r in run.results if r.provider == "good"} >= {"time", "tflops", "gbps"}
    assert run.info["seed"] == 3 and len(run.info["case_order"]) == len(providers)
    store.close()


def test_case_order_is_shuffled_reproducibly() -> None:
    cases = [Case("op", "p", "", {"N": i}, "fp32") for i in range(20)]
    a, b, c = shuffled(cases, 1), shuffled(cases, 1), shuffled(cases, 2)
    assert a == b and a != c and sorted(x.shape["N"] for x in a) == list(range(20))


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_what_finished(
    tmp_path: Path, fake_plugin: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal
    import subprocess
    import sys
    import time

    # Pick a seed whose shuffled order runs "good" before "hang".
    cases = [Case("fake", p, "", {"N": 64}, "fp32") for p in ("good", "hang")]
    seed = next(s for s in range(50) if shuffled(cases, s)[0].provider == "good")
    marker = tmp_path / "hanging"
    monkeypatch.setenv("TW_FAKE_HANG_MARKER", str(marker))
    argv = [
        sys.executable,
        "-m",
        "tritonwatch",
        "run",
        "--suite",
        _suite(tmp_path, ["good", "hang"]),
        "--device",
        "cpu",
        "--budget-ms",
        "20",
        "--seed",
        str(seed),
        "--plugin",
        fake_plugin,
        "--db",
        sqlite_url,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 50
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    with Store.open(sqlite_url) as st:
        (summary,) = st.runs.find()
        run = st.runs.get(summary.uuid)
    assert run.info["interrupted"] is True
    assert [(r.provider, r.status) for r in run.results if r.metric == "time"] == [("good", "ok")]


def test_gpus_index_the_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    from tritonwatch.bench.runner import gpu_slot
    from tritonwatch.errors import BenchError

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("HIP_VISIBLE_DEVICES", raising=False)
    assert gpu_slot(1) == ("1", 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpu_slot(1) == ("3", 3)
    with pytest.raises(BenchError, match="only 2 GPU"):
        gpu_slot(2)


@needs("torch", "triton")
def test_gpu_probe_runs_in_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent never creates a CUDA context: properties come from a child's JSON."""
    import json
    import subprocess

    import torch

    from tritonwatch.bench import runner

    seen: list[list[str]] = []

    def fake_run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        d = {
            "kind": "cuda",
            "arch": "sm90",
            "name": "NVIDIA H100 80GB HBM3",
            "capability": [9, 0],
            "sm_count": 132,
            "interpreter": False,
            "count": 8,
        }
        return subprocess.CompletedProcess(argv, 0, json.dumps(d) + "\n", "")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    dev = runner.probe("auto")
    assert dev.kind == "cuda" and dev.capability == (9, 0) and dev.has_tma and dev.has_fp8
    assert dev.count == 8
    assert seen and "probe_device('cuda')" in seen[0][-1]


def test_run_document_has_time_samples_and_derived_metrics_with_peak_source() -> None:
    from tritonwatch.bench import roofline
    from tritonwatch.bench.runner import Record, build_run, outcomes

    case = Case("matmul", "triton", "persistent", {"M": 4096, "N": 4096, "K": 4096}, "fp16")
    ok = Record(
        case,
        "ok",
        samples=[0.2, 0.21, 0.19] * 5,
        correct=True,
        flops=2.0 * 4096**3,
        bytes=3.0 * 2 * 4096**2,
        extra={"timer": "event", "config": {"BLOCK_M": 128}},
    )
    bad = Record(
        Case("softmax", "triton", "", {"M": 8, "N": 8}, "fp16"),
        "incorrect",
        error="max error 0.5 exceeds tolerance 0.004",
        correct=False,
        flops=1.0,
        bytes=1.0,
    )
    peaks = roofline.peaks_for("NVIDIA H100 80GB HBM3", None)
    outs = outcomes([ok, bad], peaks)
    fp = {
        "machine": {"name": "box", "gpu_model": "NVIDIA H100 80GB HBM3", "gpu_count": 8},
        "build": {"triton": {"version": "3.9.0"}},
    }
    run = build_run(
        outs,
        fp,
        run_info={
            "id": "00000000-0000-0000-0000-000000000001",
            "started_at": "2026-01-01T00:00:00Z",
            "device": "cuda",
        },
        peak_source=peaks.source if peaks else None,
    )
    by = {(r.operator, r.metric): r for r in run.results}
    t = by[("matmul", "time")]
    assert t.samples == ok.samples and t.unit == "ms" and t.extra["config"] == {"BLOCK_M": 128}
    tflops = by[("matmul", "tflops")].value
    assert tflops == pytest.approx(2.0 * 4096**3 / 0.2e-3 / 1e12)
    pct = by[("matmul", "pct_peak")]
    assert pct.value == pytest.approx(100 * tflops / 989.4)
    assert pct.extra["peak_source"] == "published:H100" and pct.extra["bound"] == "compute"
    inc = by[("softmax", "time")]
    assert inc.status == "incorrect" and inc.samples is None and "0.5" in (inc.error or "")
    assert ("softmax", "tflops") not in by  # an incorrect kernel gets no speed
