"""Helpers of the fleet tests: a `tritonwatch serve` child process, run documents, row counts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SHARED_LIMIT_MB = 2  # the shared server's upload limit: small, so size tests need no 32 MiB bodies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """`tritonwatch serve` as a child process; start, kill -9 and restart it."""

    db: str
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Server:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tritonwatch",
                "serve",
                "--db",
                self.db,
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer /healthz in {timeout} s:\n{self.log()}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def make_run(
    n_results: int = 3,
    *,
    machine: str = "box-1",
    org: str | None = None,
    run_id: str | None = None,
    started_at: str = "2026-11-01T00:00:00Z",
    triton: str = "3.9.0",
    samples: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """A valid tritonwatch.run/1 document with ``n_results`` results of ``samples`` samples."""
    import random

    rnd = random.Random(seed)
    run: dict[str, Any] = {"id": run_id or str(uuid.uuid4()), "started_at": started_at}
    if org:
        run["org"] = org
    return {
        "format": "tritonwatch.run/1",
        "run": run,
        "machine": {"name": machine, "gpu_model": "NVIDIA H100", "gpu_count": 1},
        "build": {"triton": {"version": triton}},
        "results": [
            {
                "operator": "matmul",
                "provider": "triton",
                "shape": {"M": 128 * (1 + i % 64), "N": 4096, "K": 64 * (1 + i // 64)},
                "dtype": "fp16",
                "metric": "time",
                "unit": "ms",
                "samples": [1.0 + rnd.random() * 0.01 for _ in range(samples)],
            }
            for i in range(n_results)
        ],
    }


def pg_counts(url: str) -> dict[str, int]:
    """Row counts of the tables an upload writes, read with psycopg directly."""
    import psycopg

    out = {}
    with psycopg.connect(url) as conn:
        for t in ("runs", "results", "machines", "builds", "series"):
            out[t] = conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
        out["dup_uuids"] = conn.execute(
            "SELECT count(*) FROM (SELECT uuid FROM runs GROUP BY uuid HAVING count(*) > 1) d"
        ).fetchone()[0]  # type: ignore[index]
        out["partial"] = conn.execute(
            "SELECT count(*) FROM runs r WHERE r.n_results <> "
            "(SELECT count(*) FROM results x WHERE x.run_id = r.id)"
        ).fetchone()[0]  # type: ignore[index]
    return out
