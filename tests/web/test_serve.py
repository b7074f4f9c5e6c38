"""`tritonwatch serve`: bad options fail with one line; a real server answers on its port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner
from support.net import free_port

from tritonwatch.cli import main


def test_port_out_of_range_is_one_line(sqlite_url: str) -> None:
    r = CliRunner().invoke(main, ["serve", "--db", sqlite_url, "--port", "70000"])
    assert r.exit_code == 2
    assert r.output.strip().startswith("error: port 70000 is out of range")
    assert "Traceback" not in r.output


def test_port_in_use_is_one_line(sqlite_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = CliRunner().invoke(main, ["serve", "--db", sqlite_url, "--port", str(port)])
    assert r.exit_code == 2
    assert f"error: cannot listen on 127.0.0.1:{port}" in r.output
    assert "pass another --port" in r.output
    assert "Traceback" not in r.output


def test_a_host_this_machine_does_not_have_gets_a_host_hint(sqlite_url: str) -> None:
    args = ["serve", "--db", sqlite_url, "--host", "192.0.2.1", "--port", str(free_port())]
    r = CliRunner().invoke(main, args)  # 192.0.2.0/24 is TEST-NET-1: no machine has it
    assert r.exit_code == 2
    assert "this machine has no address 192.0.2.1; pass --host 127.0.0.1" in r.output
    assert "another --port" not in r.output


def test_bad_database_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "not.db"
    bad.write_text("hello")
    # A free port, never the default 8000 a developer's own `tritonwatch serve` may hold.
    args = ["serve", "--db", f"sqlite:///{bad}", "--port", str(free_port())]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "not a tritonwatch database" in r.output


def test_real_server_answers(sqlite_url: str, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITONWATCH_")}
    env["TRITONWATCH_PORT"] = str(port)  # the setting, not the option
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tritonwatch", "serve", "--db", sqlite_url],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/runs", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["items"] == []
        assert "app;dur=" in r.headers["server-timing"]
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "/vendor/plotly.min.js" in page.text
    finally:
        proc.terminate()
        proc.wait(10)
