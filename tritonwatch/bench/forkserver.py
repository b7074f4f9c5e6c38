"""One build's start-up, paid once: on a CPU the A/B's workers are forked from a process that
has imported torch and Triton (a fork server), instead of each importing them itself.

An A/B on a CPU runs four worker pairs, eight processes, and each spends about 1.2 s of CPU
importing torch: on a two-core machine that is 5-6 s before the first case, more than a whole
run. One fork server per build imports once; a fork then costs milliseconds.

What the workers still do each for themselves, after the fork: probe the device, load the
plugins' registry, pin their cores, allocate every input and time. What they share is what the
import left in memory: the libraries' addresses (one address-space draw per build instead of one
per worker) and the interpreter's heap. Every tensor a case allocates, every thread pool and
every page a worker touches is its own. ``benchmarks/compare_bench.py`` measures whether the A/A
stays calibrated with it (docs/compare.md, "Forked workers on a CPU").

On a GPU the workers are spawned as before: a process that has touched CUDA cannot be forked,
and a GPU host has the cores to import side by side.

The protocol: the driver holds one end of a SOCK_SEQPACKET socket pair, the server the other
(``--fork-server FD``). A request is the message ``fork`` with three file descriptors (the
worker's stdin, stdout and stderr); the server forks, the child makes them its fds 0-2 and goes
on as a worker, and the server answers ``{"pid": N}``, requests answered in order. When a
child ends the server reports ``{"exit": N, "rc": code}`` (code as subprocess gives it: minus
the signal for a killed one). The server exits when the driver closes its end.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
from typing import IO, Any

from .pool import read_lines, worker_env

MAX_MESSAGE = 4096


def serve_forks(fd: int) -> None:
    """The server's loop (``python -m tritonwatch.bench.worker --fork-server FD``, after its
    imports). Returns only in a forked child, whose fds 0-2 are then the worker's own; the
    server itself exits here when the driver closes its end."""
    import select

    ctl = socket.socket(fileno=fd)
    # A child's end wakes the loop through this pipe: no polling, so the server never runs
    # while the workers time.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        readable, _, _ = select.select([ctl.fileno(), wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 512)
            _reap(ctl)
        if ctl.fileno() not in readable:
            continue
        msg, fds, _, _ = socket.recv_fds(ctl, MAX_MESSAGE, 3)
        if not msg:
            os._exit(0)  # the driver is gone; the workers it started end on their own stdin
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            ctl.close()
            os.close(wake_r)
            os.close(wake_w)
            os.setsid()  # its own session, as a spawned worker: the driver kills its group
            for target, src in enumerate(fds):
                os.dup2(src, target)
                os.close(src)
            return
        for x in fds:
            os.close(x)
        ctl.send(json.dumps({"pid": pid}).encode())


def _reap(ctl: socket.socket) -> None:
    """Report every child that has ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        msg = {"exit": pid, "rc": os.waitstatus_to_exitcode(status)}
        with contextlib.suppress(OSError):  # the driver is gone
            ctl.send(json.dumps(msg).encode())


class ForkedProc:
    """A worker a :class:`ForkServer` forked, with the part of ``subprocess.Popen``'s interface
    the driver uses (``pid``, ``poll``, ``wait``, ``kill``, ``stdin``, ``stdout``).

    Its pid is known once the server has forked it (after the server's imports); until then
    ``kill`` cancels it: the server kills it as soon as it exists.
    """

    def __init__(self, server: ForkServer, stdin: IO[str], stdout: IO[str]) -> None:
        self.server, self.stdin, self.stdout = server, stdin, stdout
        self.pid: int | None = None
        self.returncode: int | None = None
        self.cancelled = False
        self.ended = threading.Event()

    def _end(self, rc: int) -> None:
        if self.returncode is None:
            self.returncode = rc
        self.ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self.ended.wait(timeout):
            raise subprocess.TimeoutExpired("tritonwatch worker", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        with self.server.lock:
            if self.returncode is not None:
                return
            if self.pid is None:
                self.cancelled = True  # not forked yet: killed when it is (ForkServer._read)
                self._end(-signal.SIGKILL)
                return
            pid = self.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


class ForkServer:
    """One build's fork server (see the module docstring): started with ``argv``, a worker's
    command line, which it runs up to the end of its imports."""

    def __init__(self, argv: list[str], tmp: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.errf: Any = tempfile.TemporaryFile(mode="w+", dir=tmp)  # noqa: SIM115 - close()
        try:
            self.proc = subprocess.Popen(
                [*argv, "--fork-server", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self.errf,
                env=worker_env(None),
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.ctl = ours
        self.lock = threading.Lock()
        self.pending: collections.deque[ForkedProc] = collections.deque()
        self.running: dict[int, ForkedProc] = {}
        self.dead = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def spawn(self, tmp: str) -> tuple[ForkedProc, Any, Any, threading.Thread]:
        """A new worker, as ``pool.spawn_worker`` returns one: (process, stderr file, its
        protocol lines, the thread that reads them)."""
        errf = tempfile.TemporaryFile(mode="w+", dir=tmp)  # noqa: SIM115 - the caller closes it
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        proc = ForkedProc(
            self, os.fdopen(in_w, "w", encoding="utf-8"), os.fdopen(out_r, encoding="utf-8")
        )
        try:
            with self.lock:
                if self.dead:
                    proc._end(self.proc.returncode or 1)
                else:
                    try:
                        socket.send_fds(self.ctl, [b"fork"], [in_r, out_w, errf.fileno()])
                        self.pending.append(proc)
                    except OSError:
                        proc._end(1)  # the server died meanwhile; _read says how
        finally:
            os.close(in_r)
            os.close(out_w)  # the worker holds the only write end: its end is the reader's EOF
        lines, reader = read_lines(proc.stdout)
        return proc, errf, lines, reader

    def _read(self) -> None:
        while True:
            try:
                data = self.ctl.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            msg = json.loads(data)
            with self.lock:
                if "pid" in msg:
                    proc = self.pending.popleft()
                    proc.pid = int(msg["pid"])
                    self.running[proc.pid] = proc
                    if proc.cancelled:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(proc.pid, signal.SIGKILL)
                elif "exit" in msg:
                    ended = self.running.pop(int(msg["exit"]), None)
                    if ended is not None:
                        ended._end(int(msg["rc"]))
        rc = self.proc.wait()
        with self.lock:
            self.dead = True
            # Never forked: they end as the server did (stderr_tail says why). Forked and
            # still running: their end can no longer be reported; 1 stands for unknown.
            for proc in self.pending:
                proc._end(rc)
            for proc in self.running.values():
                proc._end(1)
            self.pending.clear()
            self.running.clear()

    def stderr_tail(self, n: int = 600) -> str:
        from .pool import stderr_tail

        return stderr_tail(self.errf, n)

    def close(self) -> None:
        """Stop the server. Close its workers first: it reports their ends, and the ones it
        forked outlive it (each in its own session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # it has nothing to finish
        self.proc.wait()
        self.reader.join(timeout=5)
        self.ctl.close()
        self.errf.close()
