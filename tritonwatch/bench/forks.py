"""A build's A/B workers as forks of one process: torch and triton are imported once, not once
per worker (on two CPU cores, eight imports were most of a comparison's start-up).

The driver (:class:`Forks`) makes a pipe pair per worker and starts ``python -m
tritonwatch.bench.worker ... --serve --forks IN,OUT,ERR;...`` with the build's Python, passing
it the workers' ends. That process (:func:`fork_workers`) imports torch and triton, forks one
serving worker per triple and stays behind to reap them. The workers are then not the driver's
children: :class:`ForkedProc` stands in for ``Popen`` in :class:`~tritonwatch.bench.live.LiveWorker`.

Off by default (setting ``ab_fork``): forks share what their parent loaded (its hash seed, the
physical pages of everything imported), so a build's workers are less independent than the
verdict assumes; in A/A on a CPU, p-values below 0.05 rose from 6% to 10% of cases
(docs/compare.md). Forking is safe only before CUDA is initialised: nothing here touches the
GPU, and the forking process checks that its imports did not either. Where forking is off or
not possible (not Linux, an environment whose tritonwatch cannot fork) the driver starts the
workers one process each.
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
from typing import IO, TYPE_CHECKING, Any

from .. import settings
from .pool import STARTUP_GRACE_S, kill_worker, spawn_worker, stderr_tail

if TYPE_CHECKING:
    from .live import LiveWorker


_SHIFT: list[Any] = []  # a fork's layout shift, held for its lifetime


def _shift_layout() -> None:
    """Move where this fork's later allocations land by a random amount.

    Separate processes get their memory at random places (address-space randomisation); forks
    of one process all start from its layout and would place a case's data alike, so a build's
    workers would share one placement offset instead of each drawing its own, and the spread
    between worker pairs that the verdict is tested against would understate it. A reservation
    of a random number of pages (never touched, so it costs no memory) shifts later mappings;
    a heap block of random size shifts the heap.
    """
    import mmap
    import random  # reseeded in each fork by Python itself

    _SHIFT.append(mmap.mmap(-1, random.randrange(1, 8192) * mmap.PAGESIZE, mmap.MAP_PRIVATE))
    _SHIFT.append(bytearray(random.randrange(16, 1 << 17)))


def fork_workers(spec: str) -> None:
    """Import torch and triton once, then fork one worker per ``IN,OUT,ERR`` triple of
    inherited file descriptors in ``spec`` (``;`` between triples) and stay behind to reap them.

    A child becomes a session of its own (so it can be killed with its group) with the triple
    as its stdin, stdout and stderr, and returns to :func:`main` to serve. The parent prints
    ``{"event": "forked", "pids": [...]}``, writes ``{"event": "exit", "status": rc}`` on each
    child's OUT when it ends (``rc`` negative: the signal that ended it) and exits after the last.
    Nothing here touches the GPU: forking is safe only before CUDA is initialised, so if an
    import did initialise it the parent forks nothing and says why (the driver then starts the
    workers one process each).
    """
    import torch
    import triton  # noqa: F401 - imported once here for every child

    triples = [tuple(int(fd) for fd in part.split(",")) for part in spec.split(";")]
    if torch.cuda.is_initialized():
        print(json.dumps({"event": "forked", "pids": [], "why": "CUDA initialised on import"}))
        sys.stdout.flush()  # os._exit does not
        os._exit(0)
    import gc

    # A child's collections would otherwise walk, and so copy, every page it shares with the
    # others; frozen objects are left alone.
    gc.freeze()
    pids: list[int] = []
    for fin, fout, ferr in triples:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.setsid()
            os.dup2(fin, 0)
            os.dup2(fout, 1)
            os.dup2(ferr, 2)
            for fd in {fd for t in triples for fd in t}:
                os.close(fd)
            _shift_layout()
            return
        pids.append(pid)
    for fin, _, ferr in triples:  # the children's own now; OUT stays open for the exit line
        os.close(fin)
        os.close(ferr)
    print(json.dumps({"event": "forked", "pids": pids}), flush=True)
    outs = {pid: t[1] for pid, t in zip(pids, triples, strict=True)}
    while outs:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in outs:
            continue
        fd = outs.pop(pid)
        line = json.dumps({"event": "exit", "status": os.waitstatus_to_exitcode(status)})
        with contextlib.suppress(OSError):  # the driver has gone
            os.write(fd, (line + "\n").encode())
        os.close(fd)
    os._exit(0)


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
        """Reap the forking process (it ends after its last fork) and free what was not adopted.

        Before its forks were adopted (Ctrl-C while it imported torch) it is killed at once; a
        fork it already made reads the end of its input and exits."""
        if self.ends and self.proc is not None:
            kill_worker(self.proc)
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
