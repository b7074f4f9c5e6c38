"""The persistent workers the A/B driver talks to: started once per build, warmed once, then
asked to prepare, time and drop one case at a time (``python -m tritonwatch.bench.worker
--serve``).

A :class:`Crew` starts both builds' workers before the driver has planned: a worker's start-up
(importing torch and Triton, about 1 s of CPU each) is most of what it costs, and it runs while
the driver imports, opens the store and plans. What to measure (the cases file, budget, seed,
cores to pin) follows as the first line on the worker's stdin (:meth:`LiveWorker.configure`),
which it reads once its imports are done; it says ``ready`` after that.

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
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import settings
from ..errors import BenchError
from .pool import STARTUP_GRACE_S, gpu_slot, kill_worker, launch_argv, spawn_worker, stderr_tail
from .spec import Case, dump_cases


class WorkerLost(BenchError):
    """The worker died or stopped answering; its message says how."""


class LiveWorker:
    """One build's long-lived worker process.

    Parameters
    ----------
    argv : list of str
        The worker's command line (``pool.launch_argv``, or all of ``pool.worker_argv``)
        without ``--cases``.
    gpu : (pin, NVML index) or None
        As for ``pool.spawn_worker``; None runs on the CPU under the Triton interpreter.
    cases : sequence of Case, or None
        Every case of the comparison; commands name them by index. None: :meth:`configure`
        says what to measure later (the worker can start meanwhile).
    tmp : str
        A folder for the cases file and stderr.
    timeout_s : float
        How long one command may take (``case_timeout_s``).
    """

    def __init__(
        self,
        argv: list[str],
        gpu: tuple[str | None, int] | None,
        cases: Sequence[Case] | None,
        tmp: str,
        timeout_s: float,
    ) -> None:
        self.argv, self.gpu, self.tmp, self.timeout_s = argv, gpu, tmp, timeout_s
        self.setup: list[str] | None = None
        if cases is not None:
            self.setup = ["--cases", write_cases(cases, tmp)]
        self.proc: subprocess.Popen[str] | None = None
        self.errf: Any = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader: threading.Thread | None = None
        self.fingerprint: dict[str, Any] | None = None
        self.device: dict[str, Any] = {}  # what the worker measures on (its ready line)
        self.told = False  # the running process has its setup line
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> dict[str, Any]:
        """Start (or restart) the worker; returns its fingerprint once it says ``ready``."""
        self.launch()
        return self.ready()

    def launch(self) -> None:
        """Start the process without waiting for it (several start side by side). It imports
        torch and Triton, then waits for :meth:`configure`'s line (sent now if known)."""
        self.close()
        self.proc, self.errf, self.lines, self.reader = spawn_worker(
            [*self.argv, "--serve"], self.gpu, self.tmp, commands=True
        )
        self.fingerprint = None  # this process has not said ready yet (close() reset told)
        self.starts += 1
        if self.setup is not None:
            self._send_setup()

    def configure(self, setup: list[str]) -> None:
        """What the worker measures: worker options (``--cases FILE`` and those of
        ``pool.timing_argv``, ``--pin-cpus``), sent to the running process and to every
        restart. The worker reads them once its imports are done, then says ready."""
        if self.told:
            raise BenchError("this worker was already told what to measure; close it first")
        self.setup = list(setup)
        if self.proc is not None:
            self._send_setup()

    def _send_setup(self) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None:
            return
        self.told = True
        # A worker that already died cannot take it: ready() reports how it died.
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.write(json.dumps({"do": "setup", "argv": self.setup}) + "\n")
            proc.stdin.flush()

    def ready(self) -> dict[str, Any]:
        """Wait for a launched worker's ``ready`` (after its setup); returns its fingerprint."""
        if self.setup is None:
            raise BenchError("a worker was asked to be ready before it was told what to measure")
        ev = self._next(STARTUP_GRACE_S + self.timeout_s, "start")
        if ev.get("event") != "ready":
            self.close()
            raise WorkerLost(f"worker did not start: {json.dumps(ev)[:300]}")
        self.fingerprint = ev.get("fingerprint") or {}
        self.device = dict(ev.get("device") or {})
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
        self.told = False

    def __enter__(self) -> LiveWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_cases(cases: Sequence[Case], tmp: str) -> str:
    """The cases file workers read (commands name cases by their index in it)."""
    fd, path = tempfile.mkstemp(prefix="cases-", suffix=".json", dir=tmp)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(dump_cases(list(cases), {}))
    return path


@dataclass(frozen=True)
class BuildEnv:
    """One side of a comparison: what the user typed and the Python that runs its workers."""

    name: str
    python: str
    triton_version: str


def resolve(ref: str) -> BuildEnv:
    """An environment name, venv folder, python path or ``current`` (see ``tritonwatch env``)."""
    from ..codegen.envs import resolve_env

    info = resolve_env(ref)
    return BuildEnv(name=ref, python=info.python, triton_version=info.triton_version)


def device_flag(device: str | None) -> str:
    """``--device`` as the workers get it (cpu, cuda or auto), the setting where not given."""
    with settings.scope(device=device):
        return str(settings.get("device"))


def gpu_visible() -> bool:
    """Whether this host shows a GPU (NVIDIA's or AMD's device node, or WSL's), without
    importing torch: asked before the workers start, which is before anything imports it.
    CUDA_VISIBLE_DEVICES set to nothing (or -1) hides every GPU, as it does from torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg"))


class Crew:
    """Both builds' workers (``workers`` each), launched at once, before anything is planned.

    The driver starts them first (``tritonwatch compare`` does so before it opens the store),
    then plans, then tells every worker what to measure (:meth:`configure`) and waits for each
    to say ready. A worker's start-up (importing torch and Triton) then runs alongside the
    driver's own imports and planning instead of after them. ``device`` is ``--device`` as
    given (None: the setting): ``auto`` lets each worker find the GPU itself, and the driver
    checks that its workers measure on the device it planned for. Close it (or use it as a
    context manager) however the comparison ends: a worker that never said ready is killed
    at once.
    """

    def __init__(
        self,
        envs: dict[str, BuildEnv],
        workers: int,
        device: str | None,
        gpu: int | None,
        plugins: Sequence[str],
    ) -> None:
        flag = device_flag(device)
        if flag == "cpu":
            slot: tuple[str | None, int] | None = None
        elif gpu is not None:
            slot = gpu_slot(gpu)
        else:
            slot = (None, gpu_slot(0)[1])  # leave the user's CUDA_VISIBLE_DEVICES alone
        self.envs = envs
        self._tmp = tempfile.TemporaryDirectory(prefix="tritonwatch-ab-")
        self.tmp = self._tmp.name
        timeout = float(settings.get("case_timeout_s"))
        self.workers = {
            s: [
                LiveWorker(
                    [
                        *launch_argv(flag, plugins, envs[s].python),
                        # This comparison's autotuning results, per build (bench.tuning).
                        "--tuning-dir",
                        os.path.join(self.tmp, f"tuning-{s}"),
                    ],
                    slot,
                    None,
                    self.tmp,
                    timeout,
                )
                for _ in range(workers)
            ]
            for s in envs
        }
        self.launched = time.monotonic()
        try:
            for w in self.all:
                w.launch()  # side by side: start-up is most of a worker's cost
        except BaseException:
            self.close()
            raise

    @property
    def all(self) -> list[LiveWorker]:
        return [w for ws in self.workers.values() for w in ws]

    def configure(self, cases: Sequence[Case], setup: list[str]) -> None:
        """Tell every worker the cases (one file for all) and how to measure them."""
        path = write_cases(cases, self.tmp)
        for w in self.all:
            w.configure(["--cases", path, *setup])

    def close(self) -> None:
        for w in self.all:
            w.quit()  # all exit side by side; then each is waited for
        for w in self.all:
            w.close()
        self._tmp.cleanup()

    def __enter__(self) -> Crew:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
