"""A persistent worker the A/B driver talks to: started once per build, warmed once, then asked
to prepare, time and drop one case at a time (``python -m tritonwatch.bench.worker --serve``).

The driver waits for each answer before it sends the next command to either worker, so the two
builds never time at the same moment on one device. A crash or a hang ends the worker; the
driver records the case as an error for that side and :meth:`LiveWorker.start` brings up a fresh
one for the next case.

A build's workers start together (:class:`Forks`): one process imports torch and triton, then
forks them all (``worker --forks``), instead of each importing them again; on two CPU cores that
was most of a comparison's start-up. They are then not the driver's children: :class:`ForkedProc`
stands in for ``Popen``. Where forking is not possible the workers start one process each.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from .. import settings
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
        self.proc: subprocess.Popen[str] | ForkedProc | None = None
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
        self.starts += 1

    def ready(self) -> dict[str, Any]:
        """Wait for a launched worker's ``ready``; returns its fingerprint."""
        ev = self._next(STARTUP_GRACE_S + self.timeout_s, "start")
        if ev.get("event") != "ready":
            self.close()
            raise WorkerLost(f"worker did not start: {json.dumps(ev)[:300]}")
        self.fingerprint = ev.get("fingerprint") or {}
        return self.fingerprint

    def adopt(self, proc: ForkedProc, errf: Any) -> None:
        """Take over a worker forked for this one (see :class:`Forks`)."""
        self.close()
        self.proc, self.errf, self.lines = proc, errf, proc.lines
        self.reader = proc.reader
        self.starts += 1

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
        if rc is None:
            how = "exit status unknown"
        else:
            how = f"exit code {rc}" if rc >= 0 else f"signal {-rc}"
        return f"worker crashed ({how})" + (f"; stderr: {tail}" if tail else "")

    def quit(self) -> None:
        """Ask the worker to quit without waiting (several then exit side by side)."""
        proc = self.proc
        if proc is not None and proc.poll() is None and proc.stdin and not proc.stdin.closed:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.write('{"do": "quit"}\n')
                proc.stdin.close()

    def close(self) -> None:
        """Ask the worker to quit, then make sure it is gone."""
        proc = self.proc
        if proc is not None:
            self.quit()
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


def _running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie no longer does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class ForkedProc:
    """A worker forked by its build's first process: the part of ``Popen`` that
    :class:`LiveWorker` and ``pool.kill_worker`` use.

    It is not the driver's child, so it runs while its pid does; its exit status arrives as the
    last line on its output (written by the process that forked it), which the reader keeps
    out of the protocol.
    """

    def __init__(self, pid: int, stdin: IO[str], stdout: IO[str]) -> None:
        self.pid, self.stdin, self.stdout = pid, stdin, stdout
        self.returncode: int | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.stdout:
            if line.startswith('{"event": "exit"'):
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    self.returncode = int(json.loads(line)["status"])
                continue
            self.lines.put(line)
        self.lines.put(None)

    def poll(self) -> int | None:
        if self.returncode is None and _running(self.pid):
            return None
        self.reader.join(timeout=1.0)  # its exit line, if the forking process saw it end
        return self.returncode if self.returncode is not None else -1

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while _running(self.pid):
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        self.reader.join(timeout=1.0)
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)


class Forks:
    """Start one build's workers as forks of one process (``worker --forks``): torch and triton
    are imported once, not once per worker.

    :meth:`start` launches that process; :meth:`adopt` waits for its forks and hands one to each
    worker, or returns False (the caller then launches them one process each): off by setting
    ``ab_fork``, not on Linux, or the process could not fork (an older tritonwatch in the
    environment, CUDA initialised on import).
    """

    def __init__(self, workers: Sequence[LiveWorker]) -> None:
        self.workers = list(workers)
        self.proc: subprocess.Popen[str] | None = None
        self.errf: Any = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.ends: list[tuple[IO[str], IO[str], Any]] = []
        self.why = ""

    def start(self) -> None:
        if not self.workers:
            return
        if not settings.get("ab_fork") or not sys.platform.startswith("linux"):
            self.why = "off" if sys.platform.startswith("linux") else "not on Linux"
            return
        w0 = self.workers[0]
        theirs: list[int] = []
        triples = []
        for _ in self.workers:
            cmd_r, cmd_w = os.pipe()
            out_r, out_w = os.pipe()
            errf = tempfile.TemporaryFile(mode="w+", dir=w0.tmp)  # noqa: SIM115 - LiveWorker closes it
            self.ends.append((os.fdopen(cmd_w, "w"), os.fdopen(out_r, "r"), errf))
            theirs += [cmd_r, out_w]
            triples.append(f"{cmd_r},{out_w},{errf.fileno()}")
        argv = [*w0.argv, "--serve", "--cases", w0.path, "--forks", ";".join(triples)]
        try:
            self.proc, self.errf, self.lines, _ = spawn_worker(
                argv, w0.gpu, w0.tmp, pass_fds=[*theirs, *(e[2].fileno() for e in self.ends)]
            )
        finally:
            for fd in theirs:
                os.close(fd)

    def adopt(self) -> bool:
        """Hand each worker its fork; False if there are none (see the class)."""
        if self.proc is None:
            return False
        deadline = time.monotonic() + STARTUP_GRACE_S + self.workers[0].timeout_s
        ev: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            with contextlib.suppress(json.JSONDecodeError):
                ev = json.loads(line)
            if ev.get("event") == "forked":
                break
        pids = ev.get("pids") or []
        if ev.get("event") != "forked" or len(pids) != len(self.workers):
            self.why = ev.get("why") or stderr_tail(self.errf, 200) or "no forks"
            self.close()
            return False
        for w, pid, (cmd_w, out_r, errf) in zip(self.workers, pids, self.ends, strict=True):
            w.adopt(ForkedProc(int(pid), cmd_w, out_r), errf)
        self.ends = []
        return True

    def close(self) -> None:
        """Reap the forking process (it ends after its last fork) and free what was not adopted."""
        for cmd_w, out_r, errf in self.ends:
            for f in (cmd_w, out_r, errf):
                with contextlib.suppress(OSError):
                    f.close()
        self.ends = []
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            kill_worker(self.proc)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None
        if self.errf is not None:
            self.errf.close()
            self.errf = None
