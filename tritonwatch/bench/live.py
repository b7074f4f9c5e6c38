"""A persistent worker the A/B driver talks to: started once per build, warmed once, then asked
to prepare, time and drop one case at a time (``python -m tritonwatch.bench.worker --serve``).

The driver waits for each answer before it sends the next command to either worker, so the two
builds never time at the same moment on one device. A crash or a hang ends the worker; the
driver records the case as an error for that side and :meth:`LiveWorker.start` brings up a fresh
one for the next case.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..errors import BenchError
from .pool import STARTUP_GRACE_S, kill_worker, spawn_worker, stderr_tail
from .spec import Case, dump_cases


class WorkerLost(BenchError):
    """The worker died or stopped answering; its message says how."""


class LiveWorker:
    """One build's long-lived worker process.

    Parameters
    ----------
    argv : list of str
        The worker's command line (``pool.worker_argv``) without ``--cases``.
    gpu : (pin, NVML index) or None
        As for ``pool.spawn_worker``; None runs on the CPU under the Triton interpreter.
    cases : sequence of Case
        Every case of the comparison; commands name them by index.
    tmp : str
        A folder for the cases file and stderr.
    timeout_s : float
        How long one command may take (``case_timeout_s``).
    """

    def __init__(
        self,
        argv: list[str],
        gpu: tuple[str | None, int] | None,
        cases: Sequence[Case],
        tmp: str,
        timeout_s: float,
    ) -> None:
        self.argv, self.gpu, self.tmp, self.timeout_s = argv, gpu, tmp, timeout_s
        self.path = os.path.join(tmp, f"cases-{id(self)}.json")
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(dump_cases(list(cases), {}))
        self.proc: subprocess.Popen[str] | None = None
        self.errf: Any = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader: threading.Thread | None = None
        self.fingerprint: dict[str, Any] | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> dict[str, Any]:
        """Start (or restart) the worker; returns its fingerprint once it says ``ready``."""
        self.launch()
        return self.ready()

    def launch(self) -> None:
        """Start the process without waiting for it (several start side by side)."""
        self.close()
        self.proc, self.errf, self.lines, self.reader = spawn_worker(
            [*self.argv, "--serve", "--cases", self.path], self.gpu, self.tmp, commands=True
        )
        self.fingerprint = None  # this process has not said ready yet
        self.starts += 1

    def ready(self) -> dict[str, Any]:
        """Wait for a launched worker's ``ready``; returns its fingerprint."""
        ev = self._next(STARTUP_GRACE_S + self.timeout_s, "start")
        if ev.get("event") != "ready":
            self.close()
            raise WorkerLost(f"worker did not start: {json.dumps(ev)[:300]}")
        self.fingerprint = ev.get("fingerprint") or {}
        return self.fingerprint

    def ask(self, do: str, index: int, **kw: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (:meth:`Worker.serve` lists them)."""
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise WorkerLost("worker is not running")
        try:
            self.proc.stdin.write(json.dumps({"do": do, "index": index, **kw}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerLost(self._death()) from None
        ev = self._next(self.timeout_s, do)
        if ev.get("event") == "restart":  # cannot happen before an answer; be safe
            raise WorkerLost(f"device error: {ev.get('reason', '')}")
        return ev

    def after_error(self) -> None:
        """After an answer with status error: a sticky device error is followed by
        ``restart``; then the worker is replaced before the next case."""
        try:
            line = self.lines.get(timeout=0.5)
        except queue.Empty:
            return
        if line is not None and '"restart"' in line:
            self.close()

    def _next(self, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise WorkerLost(
                    f"timeout: no answer to {what} within {timeout:g} s (case_timeout_s); "
                    "worker killed"
                )
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                raise WorkerLost(self._death())
            try:
                return dict(json.loads(line))
            except (json.JSONDecodeError, TypeError, ValueError):
                continue

    def _death(self) -> str:
        proc = self.proc
        rc = proc.wait() if proc is not None else None
        tail = stderr_tail(self.errf) if self.errf is not None else ""
        self.close()
        how = f"exit code {rc}" if rc is None or rc >= 0 else f"signal {-rc}"
        return f"worker crashed ({how})" + (f"; stderr: {tail}" if tail else "")

    def quit(self) -> None:
        """Ask the worker to quit without waiting (several then exit side by side)."""
        proc = self.proc
        if proc is not None and proc.poll() is None and proc.stdin and not proc.stdin.closed:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.write('{"do": "quit"}\n')
                proc.stdin.close()

    def close(self) -> None:
        """Ask the worker to quit, then make sure it is gone. One that never said ready (Ctrl-C
        while it imports torch) cannot read the request yet and has nothing to finish: it is
        killed at once instead of after a 5 s wait."""
        proc = self.proc
        if proc is not None:
            self.quit()
            if self.fingerprint is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            kill_worker(proc)
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(OSError):  # the other end is gone: nothing to flush
                    proc.stdin.close()
            if self.reader is not None:
                self.reader.join(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        if self.errf is not None:
            self.errf.close()
        self.proc, self.errf, self.reader = None, None, None

    def __enter__(self) -> LiveWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
