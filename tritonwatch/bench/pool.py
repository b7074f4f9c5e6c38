"""Worker processes: spawn, watch, kill and respawn them, and collect what they report.

Each worker is ``python -m tritonwatch.bench.worker`` with an explicit argv, one per GPU
(``--gpus 0,1``), in its own session so only the runner decides when it dies. A case that
produces nothing for ``case_timeout_s`` is killed with its process group; a crash or hang becomes
that case's error result and a fresh worker takes the remaining cases. Ctrl-C kills the workers
and keeps what finished.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import settings
from ..errors import BenchError
from .spec import Case, DeviceInfo, dump_cases

STARTUP_GRACE_S = 120.0
EXIT_GRACE_S = 10.0  # a worker that said "done" and still runs after this is killed


@dataclass
class Record:
    """What a worker said about one case (or what the runner concluded when it died)."""

    case: Case
    status: str
    samples: list[float] | None = None
    error: str | None = None
    correct: bool | None = None
    flops: float | None = None
    bytes: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[str, Case | None, Record | None], None]


def spawn_worker(
    argv: list[str], gpu: tuple[str | None, int] | None, tmp: str, *, commands: bool = False
) -> tuple[subprocess.Popen[str], Any, queue.Queue[str | None], threading.Thread]:
    """Start a worker in its own session: pinned to ``gpu`` (CUDA_VISIBLE_DEVICES, NVML index)
    or on the CPU under the Triton interpreter. Its protocol lines arrive on the returned queue
    (None at end of output); stderr goes to a temporary file for crash reports. ``commands``
    opens its stdin for the A/B driver's commands (``--serve``)."""
    env = dict(os.environ)
    if gpu is not None:
        pin, nvml_index = gpu
        if pin is not None:
            env.update(
                CUDA_VISIBLE_DEVICES=pin,
                HIP_VISIBLE_DEVICES=pin,
                CUDA_DEVICE_ORDER="PCI_BUS_ID",
            )
        argv = [*argv, "--gpu", str(nvml_index)]
    else:
        env["TRITON_INTERPRET"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    errf = tempfile.TemporaryFile(mode="w+", dir=tmp)  # noqa: SIM115 - the caller closes it
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=errf,
        stdin=subprocess.PIPE if commands else subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, errf, lines, reader


def kill_worker(proc: subprocess.Popen[str] | None) -> None:
    """Kill a worker and anything it started (its process group), and reap it."""
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()


def stderr_tail(errf: Any, n: int = 600) -> str:
    errf.seek(0)
    text = errf.read().strip()
    return text[-n:] if text else ""


class _Slot:
    """Runs a list of cases on one GPU (or the CPU), respawning the worker after a crash/hang."""

    def __init__(
        self,
        cases: list[Case],
        gpu: tuple[str | None, int] | None,
        argv_base: list[str],
        timeout_s: float,
        stop: threading.Event,
        emit: Callable[[str, Case | None, Record | None, dict[str, Any] | None], None],
        timers: dict[str, str] | None = None,
    ) -> None:
        self.cases, self.gpu, self.argv_base = cases, gpu, argv_base
        self.timers = timers or {}
        self.timeout_s, self.stop, self.emit = timeout_s, stop, emit
        self.proc: subprocess.Popen[str] | None = None
        self.reader = threading.Thread()

    def _spawn(
        self, cases: list[Case], tmp: str
    ) -> tuple[subprocess.Popen[str], Any, queue.Queue[str | None]]:
        path = os.path.join(tmp, f"cases-{id(self)}-{time.monotonic_ns()}.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(dump_cases(cases, self.timers))
        proc, errf, lines, self.reader = spawn_worker(
            [*self.argv_base, "--cases", path], self.gpu, tmp
        )
        self.proc = proc
        return proc, errf, lines

    def _close(self, errf: Any) -> None:
        """Reap the worker and close its pipes (after a kill the reader sees EOF and ends)."""
        self.kill()
        if self.reader.ident is not None:
            self.reader.join(timeout=5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        errf.close()

    def kill(self) -> None:
        kill_worker(self.proc)

    def drive(self, tmp: str) -> None:
        remaining = list(self.cases)
        while remaining and not self.stop.is_set():
            proc, errf, lines = self._spawn(remaining, tmp)
            current: int | None = None
            ready = False
            deadline = time.monotonic() + self.timeout_s + STARTUP_GRACE_S
            done_idx: set[int] = set()
            failure: str | None = None
            restart = False
            while not self.stop.is_set():
                try:
                    line = lines.get(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    if time.monotonic() >= deadline:
                        what = (
                            f"no result within {self.timeout_s:g} s (case_timeout_s)"
                            if ready
                            else "worker did not start in time"
                        )
                        self.kill()
                        failure = f"timeout: {what}; worker killed"
                        break
                    continue
                if line is None:
                    rc = proc.wait()
                    if rc == 0 and current is None:
                        break
                    sig = -rc if rc < 0 else None
                    how = f"signal {signal.Signals(sig).name}" if sig else f"exit code {rc}"
                    if sig == signal.SIGKILL:
                        how += " (killed: out of host memory?)"
                    tail = stderr_tail(errf)
                    failure = f"worker crashed ({how})" + (f"; stderr: {tail}" if tail else "")
                    break
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                kind = ev.get("event")
                if kind == "ready":
                    ready = True
                    deadline = time.monotonic() + self.timeout_s
                    self.emit("ready", None, None, ev)
                elif kind == "start":
                    current = int(ev["index"])
                    deadline = time.monotonic() + self.timeout_s
                    self.emit("start", remaining[current], None, None)
                elif kind == "result":
                    idx = int(ev["index"])
                    done_idx.add(idx)
                    self.emit("result", remaining[idx], record_from_event(remaining[idx], ev), None)
                    current = None
                    deadline = time.monotonic() + self.timeout_s
                elif kind == "restart":
                    # The worker's device context is broken (a sticky CUDA error after the case
                    # it already reported): a fresh worker takes the remaining cases.
                    restart = True
                    break
                elif kind == "done":
                    try:
                        proc.wait(timeout=EXIT_GRACE_S)
                    except subprocess.TimeoutExpired:
                        self.kill()  # finished its cases but hangs on exit (a stuck driver call)
                    break
            self._close(errf)
            if self.stop.is_set():
                return
            pending = [i for i in range(len(remaining)) if i not in done_idx]
            if not pending:
                return
            if restart:
                remaining = [remaining[i] for i in pending]
                continue
            if failure is None:  # exited cleanly but early: should not happen; don't loop
                failure = "worker exited before finishing its cases"
            if not ready:
                # The worker never came up: every remaining case gets the same error.
                for i in pending:
                    c = remaining[i]
                    self.emit(
                        "result",
                        c,
                        Record(c, "error", error=f"worker failed to start: {failure}"),
                        None,
                    )
                return
            bad = current if current is not None else pending[0]
            self.emit(
                "result", remaining[bad], Record(remaining[bad], "error", error=failure), None
            )
            remaining = [remaining[i] for i in pending if i != bad]


def record_from_event(case: Case, ev: dict[str, Any]) -> Record:
    return Record(
        case=case,
        status=ev.get("status", "error"),
        samples=ev.get("samples"),
        error=ev.get("error"),
        correct=ev.get("correct"),
        flops=ev.get("flops"),
        bytes=ev.get("bytes"),
        extra=ev.get("extra") or {},
    )


def gpu_slot(index: int) -> tuple[str, int]:
    """(CUDA_VISIBLE_DEVICES value, NVML index) for ``--gpus`` index ``index``.

    Indices count the GPUs this process can see: with ``CUDA_VISIBLE_DEVICES=2,3``, ``--gpus 1``
    is physical GPU 3. NVML numbers GPUs in PCI order, so workers get ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", os.environ.get("HIP_VISIBLE_DEVICES"))
    if visible:
        items = [x.strip() for x in visible.split(",") if x.strip()]
        if not 0 <= index < len(items):
            raise BenchError(f"--gpus {index}: only {len(items)} GPU(s) visible ({visible})")
        item = items[index]
        return item, int(item) if item.isdigit() else index
    if index < 0:
        raise BenchError(f"--gpus {index}: GPU indices start at 0")
    return str(index), index


def worker_argv(
    device: DeviceInfo,
    budget_ms: float,
    target_ci: float,
    seed: int,
    plugins: Sequence[str],
    python: str | None = None,
) -> list[str]:
    """The worker's command line; ``python`` runs it in another environment (A/B compare)."""
    flag = "cuda" if device.is_gpu else "cpu"
    return [*launch_argv(flag, plugins, python), *timing_argv(budget_ms, target_ci, seed)]


def launch_argv(device: str, plugins: Sequence[str], python: str | None = None) -> list[str]:
    """What a worker needs before it imports torch and Triton: which Python, the device
    (``cpu``, ``cuda``, or ``auto`` for the worker to decide) and the plugins to load."""
    argv = [python or sys.executable, "-m", "tritonwatch.bench.worker", "--device", device]
    for p in plugins:
        argv += ["--plugin", p]
    return argv


def timing_argv(budget_ms: float, target_ci: float, seed: int) -> list[str]:
    """How a worker measures: what a run's plan decides (an A/B worker gets it after start-up)."""
    return [
        "--budget-ms",
        repr(budget_ms),
        "--target-ci",
        repr(target_ci),
        "--seed",
        str(seed),
        "--cpu-threads",
        str(int(settings.get("cpu_threads"))),
        "--min-time-ms",
        repr(float(settings.get("min_time_ms"))),
    ]


def execute(
    cases: list[Case],
    device: DeviceInfo,
    *,
    budget_ms: float,
    target_ci: float,
    seed: int,
    gpus: Sequence[int] | None,
    plugins: Sequence[str] = (),
    progress: Progress | None = None,
    python: str | None = None,
    timers: dict[str, str] | None = None,
) -> tuple[list[Record], dict[str, Any] | None, bool]:
    """Run ``cases`` (already in order) on workers; returns (records, fingerprint, interrupted).

    ``python`` is the interpreter the workers run (default: this one); ``compare`` passes each
    build environment's own, so two Triton builds never share a process. ``timers`` maps case
    ids to the timer their earlier results used (sticky timer choice, see timing.choose_timer).
    """
    timeout = float(settings.get("case_timeout_s"))
    argv = worker_argv(device, budget_ms, target_ci, seed, plugins, python)
    slots_gpus: list[tuple[str | None, int] | None]
    if not device.is_gpu:
        slots_gpus = [None]
    elif gpus:
        slots_gpus = [gpu_slot(g) for g in gpus]
    else:
        slots_gpus = [(None, gpu_slot(0)[1])]  # leave the user's CUDA_VISIBLE_DEVICES alone
    records: list[Record] = []
    fp: dict[str, Any] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def emit(kind: str, case: Case | None, rec: Record | None, ev: dict[str, Any] | None) -> None:
        with lock:
            if kind == "ready" and ev and not fp:
                fp.update(ev.get("fingerprint") or {})
            if kind == "result" and rec is not None:
                if rec.flops is None:
                    rec.flops, rec.bytes = None, None
                records.append(rec)
            if progress is not None:
                progress(kind, case, rec)

    per_slot: list[list[Case]] = [[] for _ in slots_gpus]
    for i, c in enumerate(cases):
        per_slot[i % len(slots_gpus)].append(c)
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="tritonwatch-run-") as tmp:
        slots = [
            _Slot(cs, g, argv, timeout, stop, emit, timers)
            for cs, g in zip(per_slot, slots_gpus, strict=True)
            if cs
        ]
        threads = [threading.Thread(target=s.drive, args=(tmp,), daemon=True) for s in slots]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.2)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            for s in slots:
                s.kill()
            for t in threads:
                t.join(timeout=5)
    return records, (fp or None), interrupted


# -- building and storing the run ------------------------------------------------------------
