"""`tritonwatch nightly`: config loading, the steps, and the exit code a scheduler acts on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fleetkit import Server, free_port, pg_counts
from support.probes import needs

from tritonwatch.cli import main
from tritonwatch.store import Store
from tritonwatch.testing import make_run

FAKEOPS = Path(__file__).parent.parent / "bench"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _history_with_a_step(url: str, machine: str = "gpu-n") -> None:
    """20 nights of one matmul series: 1.00 ms for 15 nights, then 1.30 ms."""
    rng = np.random.default_rng(0)
    t0 = datetime(2026, 10, 1, 2, tzinfo=UTC)
    with Store.open(url) as st:
        for night in range(20):
            level = 1.0 if night < 15 else 1.3
            result = {
                "operator": "matmul",
                "provider": "triton",
                "shape": {"M": 4096},
                "dtype": "fp16",
                "metric": "time",
                "unit": "ms",
                "samples": (level * (1 + 0.003 * rng.standard_normal(20))).tolist(),
            }
            st.runs.add(
                make_run(
                    results=[result],
                    machine=machine,
                    commit=f"c{night:07x}",
                    started_at=t0 + timedelta(days=night),
                    seed=night,
                )
            )


def _invoke(args: list[str]) -> Any:
    return CliRunner().invoke(main, args)


def test_config_errors_exit_2_on_one_line(tmp_path: Path, sqlite_url: str) -> None:
    for text, needle in [
        ('[push]\ntoken = "tw_secret"\n', "do not put tokens in a config file"),
        ("[run]\nsuit = 'smoke'\n", "unknown key(s) run.suit"),
        ("[push]\nretries = 'five'\n", "push.retries"),
        ("[run\n", "not valid TOML"),
    ]:
        cfg = _write(tmp_path / "n.toml", text)
        res = _invoke(["nightly", "--config", str(cfg), "--db", sqlite_url])
        assert res.exit_code == 2, res.output
        assert res.output.startswith("error: ") and needle in res.output, res.output
        assert "Traceback" not in res.output
    res = _invoke(["nightly", "--config", str(tmp_path / "missing.toml"), "--db", sqlite_url])
    assert res.exit_code == 2 and "cannot read the config" in res.output


def test_regressions_exit_1_and_the_notification_names_them(
    tmp_path: Path, sqlite_url: str
) -> None:
    _history_with_a_step(sqlite_url)
    cfg = _write(tmp_path / "n.toml", "[run]\nenabled = false\n[push]\nenabled = false\n")
    res = _invoke(["nightly", "--config", str(cfg), "--db", sqlite_url])
    assert res.exit_code == 1, res.output
    assert "1 new regression(s)" in res.output and "matmul" in res.output
    assert "exit status 1" in res.output
    # the same night again files nothing new: nothing to announce, exit 0
    res = _invoke(["nightly", "--config", str(cfg), "--db", sqlite_url])
    assert res.exit_code == 0, res.output
    assert "0 new regression(s)" in res.output and "nothing new to announce" in res.output


def test_unreachable_server_and_webhook_exit_4_before_5_before_1(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history_with_a_step(sqlite_url)
    monkeypatch.setenv("TRITONWATCH_TOKEN", "tw_whatever")
    closed = f"http://127.0.0.1:{free_port()}"
    cfg = _write(
        tmp_path / "n.toml",
        f'[run]\nenabled = false\n[push]\nserver = "{closed}"\nretries = 1\nbackoff_s = 0.05\n'
        f'[notify]\nformat = "slack"\nwebhook = "{closed}/hook"\n',
    )
    res = _invoke(["nightly", "--config", str(cfg), "--db", sqlite_url])
    assert res.exit_code == 4, res.output
    assert "20 still spooled" in res.output and "the webhook failed" in res.output
    assert "1 new regression(s)" in res.output


@pytest.mark.postgres
@pytest.mark.slow
@needs("torch", "triton")
def test_nightly_runs_pushes_and_detects_end_to_end(
    tmp_path: Path, pg_url: str, make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(FAKEOPS))  # the worker subprocess imports fakeops
    monkeypatch.syspath_prepend(str(FAKEOPS))
    with Store.open(pg_url) as central:
        token_file = tmp_path / "token"
        token_file.write_text(central.access.create_token("acme", "nightly-box").token + "\n")
    srv: Server = make_server(pg_url).start()
    suite = _write(tmp_path / "fake.toml", '[[cases]]\noperator = "fake"\nproviders = ["good"]\n')
    local = f"sqlite:///{tmp_path / 'runner.db'}"
    cfg = _write(
        tmp_path / "n.toml",
        f'db = "{local}"\nmachine_name = "nightly-box"\n'
        f'[run]\nsuite = "{suite}"\ndevice = "cpu"\nbudget_ms = 20.0\nseed = 1\n'
        f'plugins = ["fakeops:register"]\n'
        f'[push]\nserver = "{srv.url}"\ntoken_file = "{token_file}"\n',
    )
    res = _invoke(["nightly", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "0 failed or incorrect" in res.output and "1 sent" in res.output
    with Store.open(pg_url) as central:
        runs = central.runs.find(limit=None)
    assert [(r.org, r.machine, r.label) for r in runs] == [("acme", "acme/nightly-box", "nightly")]
    assert pg_counts(pg_url)["partial"] == 0


@needs("torch")
def test_ctrl_c_stops_the_night(tmp_path: Path) -> None:
    """SIGINT to a real `tritonwatch nightly` (as Ctrl-C sends it, to the whole process group)
    stops it within seconds: push, detect and notify do not run (issue 14, item 10)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    suite = _write(
        tmp_path / "fake.toml",
        '[[cases]]\noperator = "fake"\nproviders = ["good", "hang"]\n',
    )
    local = f"sqlite:///{tmp_path / 'runner.db'}"
    closed = f"http://127.0.0.1:{free_port()}"
    cfg = _write(
        tmp_path / "n.toml",
        f'db = "{local}"\nmachine_name = "box"\n'
        f'[run]\nsuite = "{suite}"\ndevice = "cpu"\nbudget_ms = 20.0\nseed = 1\n'
        f'plugins = ["fakeops:register"]\n'
        f'[push]\nserver = "{closed}"\nretries = 0\n'
        f'[notify]\nformat = "slack"\nwebhook = "{closed}/hook"\n',
    )
    env = {**os.environ, "PYTHONPATH": str(FAKEOPS), "TRITONWATCH_TOKEN": "tw_x", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tritonwatch", "nightly", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )

    def worker_started() -> bool:
        for d in Path("/proc").glob("[0-9]*"):
            try:
                cmd = (d / "cmdline").read_bytes()
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if b"tritonwatch.bench.worker" in cmd and ppid == proc.pid:
                return True
        return False

    try:
        deadline = time.monotonic() + 60
        while not worker_started() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(6)  # the worker imports torch and reaches the hang case (it sleeps 120 s)
        assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode()
    assert proc.returncode == 130, text
    assert time.monotonic() - t0 < 20, text
    assert "push, detect and notify did not run" in text
    assert "nightly: push" not in text and "still spooled" not in text
    assert "nightly: detect" not in text and "webhook" not in text
    assert "exit status 130" in text
