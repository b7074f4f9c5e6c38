"""The compile runner survives workers that die or hang: the task in flight becomes an error
with the reason, the rest of the chunk is retried, and nothing hangs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.probes import needs

from tritonwatch import settings
from tritonwatch.codegen import blast

pytestmark = needs("torch", "triton")


KERNELS = Path(__file__).resolve().parent / "kernels_sample.py"


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.mark.slow
def test_worker_that_dies_mid_chunk(tmp_path: Path) -> None:
    # The worker's output goes through `head -n 1`: it dies (SIGPIPE) right after announcing
    # its first task, every time.
    dying = _script(
        tmp_path / "py-dying",
        f'if [ "$2" = "compile" ]; then {sys.executable} "$@" | head -n 1; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n',
    )
    r = blast(
        "current", str(dying), targets="gfx942", kernel_files=[KERNELS], jobs=1, pattern="*_fp32"
    )
    assert len(r.rows) == 2
    for row in r.rows:
        assert row.a.status == "ok"
        assert row.status == "failed_b"
        assert "compile worker exited" in (row.b.error or "")
    again = blast(
        "current", str(dying), targets="gfx942", kernel_files=[KERNELS], jobs=1, pattern="*_fp32"
    )
    assert again.stats["compiled"] == 2  # transient failures are not cached


@pytest.mark.slow
def test_worker_that_hangs_is_killed(tmp_path: Path) -> None:
    hanging = _script(
        tmp_path / "py-hanging",
        f'if [ "$2" = "compile" ]; then exec sleep 60; fi\nexec {sys.executable} "$@"\n',
    )
    with settings.scope(case_timeout_s=8):
        r = blast(
            "current", str(hanging), targets="gfx942", kernel_files=[KERNELS], pattern="scale"
        )
    (row,) = r.rows
    # (A is not asserted on: on a loaded machine its first compile may also exceed 8 s)
    assert "no answer from the compile worker for 8 s; killed" in (row.b.error or "")


@pytest.mark.slow
def test_ctrl_c_stops_the_run_kills_the_workers_and_keeps_a_partial_report(tmp_path: Path) -> None:
    import os
    import signal
    import threading
    import time

    pids = tmp_path / "pids"
    hanging = _script(
        tmp_path / "py-hanging",
        f'if [ "$2" = "compile" ]; then echo $$ >> {pids}; exec sleep 60; fi\n'
        f'exec {sys.executable} "$@"\n',
    )
    sent: list[float] = []

    def interrupt_once_compiling() -> None:
        for _ in range(600):
            if pids.exists():
                break
            time.sleep(0.1)
        sent.append(time.monotonic())
        signal.raise_signal(signal.SIGINT)

    threading.Thread(target=interrupt_once_compiling, daemon=True).start()
    r = blast("current", str(hanging), targets="gfx942", kernel_files=[KERNELS], jobs=2)
    assert time.monotonic() - sent[0] < 2.0  # stops within 2 s of Ctrl-C
    # what finished is kept; the report says it is partial
    assert r.partial and r.to_json()["partial"] is True
    assert r.summary.headline.startswith("Interrupted: a partial report (")
    assert any(row.b.error == "not compiled: interrupted (Ctrl-C)" for row in r.rows)
    assert all(row.status == "skipped" for row in r.rows if row.b.status == "skipped")
    for pid in pids.read_text().split():
        for _ in range(50):  # the hanging workers were killed (and reaped)
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"worker {pid} still running after Ctrl-C")


def test_environment_that_vanished_after_the_probe_is_an_error_row(tmp_path: Path) -> None:
    from tritonwatch.codegen.envs import probe

    gone = _script(tmp_path / "py-gone", f'exec {sys.executable} "$@"\n')
    env = probe(gone, name="gone")
    gone.unlink()
    r = blast("current", env, targets="gfx942", kernel_files=[KERNELS], pattern="scale")
    (row,) = r.rows
    assert row.status == "failed_b" and "cannot run" in (row.b.error or "")
