"""`tritonwatch serve` as a child process on a free port: started, polled until ready, stopped
or killed, with its log at hand for failure messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .net import free_port


@dataclass
class ServeProcess:
    """`tritonwatch serve --db DB` on 127.0.0.1; start, kill -9 and restart it."""

    db: str
    log_path: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    clean_env: bool = False  # drop the caller's TRITONWATCH_* variables
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True, timeout: float = 60.0) -> ServeProcess:
        base = os.environ
        if self.clean_env:
            base = {k: v for k, v in os.environ.items() if not k.startswith("TRITONWATCH_")}  # type: ignore[assignment]
        argv = [sys.executable, "-m", "tritonwatch", "serve", "--db", self.db]
        argv += ["--port", str(self.port), "--host", "127.0.0.1", "--log-level", "warning"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env={**base, **self.env}, cwd=self.cwd
            )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll /healthz until it answers 200; RuntimeError with the log if it never does."""
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

    def log(self, tail: int | None = None) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-tail:] if tail else text
