"""The parent side of measuring: plan the cases, drive worker processes, build and store the run.

Workers are ``python -m tritonwatch.bench.worker`` subprocesses with an explicit argv, one per
GPU (``--gpus 0,1``), each in its own session so the runner alone decides when they die. A case
that produces nothing for ``case_timeout_s`` is killed; a crash or hang becomes that case's error
result and a fresh worker takes the remaining cases. Case order is shuffled with the recorded
seed. Ctrl-C stops the workers and keeps what finished. The run is stored in one transaction.
"""

from __future__ import annotations

import json
import os
import queue
import random
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
from ..runformat import FORMAT, Run, new_run_id, now, parse_run
from . import roofline
from .registry import Plan, Suite, expand, load_suite
from .spec import Case, DeviceInfo, dump_cases

SMOKE_BUDGET_MS = 200.0  # smoke is a correctness pass: a short budget unless --budget-ms says
STARTUP_GRACE_S = 120.0


@dataclass
class RunOptions:
    suite: str = "smoke"
    patterns: Sequence[str] = ()
    providers: Sequence[str] | None = None
    dtypes: Sequence[str] | None = None
    device: str | None = None
    budget_ms: float | None = None
    target_ci: float | None = None
    label: str | None = None
    seed: int | None = None
    gpus: Sequence[int] | None = None
    plugins: Sequence[str] = ()
    command: str | None = None


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


@dataclass
class CaseOutcome:
    record: Record
    median_ms: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    derived: roofline.Derived | None = None


@dataclass
class RunOutcome:
    run: Run
    outcomes: list[CaseOutcome]
    skipped: list[tuple[Case, str]]
    interrupted: bool
    peak_source: str | None
    elapsed_s: float
    stored: Any = None
    n_finished: int = 0


Progress = Callable[[str, Case | None, Record | None], None]


def probe(requested: str) -> DeviceInfo:
    """The device ``--device`` names, probed without touching the GPU from this process.

    A CUDA context in the parent would hold memory on GPU 0 for the whole run, so GPU
    properties are read in a short-lived child process.
    """
    import torch

    from .environment import probe_device

    if requested not in ("auto", "cpu", "cuda"):
        raise BenchError(f"unknown device {requested!r}; use auto, cuda or cpu")
    want = requested if requested != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if want == "cpu" or not torch.cuda.is_available():
        return probe_device(want)  # cpu, or the one-line error for --device cuda without a GPU
    code = (
        "import dataclasses, json\nfrom tritonwatch.bench.environment import probe_device\n"
        "print(json.dumps(dataclasses.asdict(probe_device('cuda'))))"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=STARTUP_GRACE_S,
            check=True,
        )
        d = json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, json.JSONDecodeError, IndexError) as e:
        raise BenchError(f"cannot query the GPU: {str(e)[:300]}") from None
    cap = d.get("capability")
    return DeviceInfo(**{**d, "capability": tuple(cap) if cap else None})


def plan(opts: RunOptions, registry: Any) -> tuple[Suite, DeviceInfo, Plan]:
    suite = load_suite(opts.suite)
    with settings.scope(device=opts.device):
        device = probe(settings.get("device"))
    p = expand(
        registry,
        suite,
        device,
        providers=opts.providers,
        dtypes=opts.dtypes,
        patterns=opts.patterns,
    )
    return suite, device, p


def shuffled(cases: Sequence[Case], seed: int) -> list[Case]:
    out = list(cases)
    random.Random(seed).shuffle(out)
    return out


# -- driving one worker slot -----------------------------------------------------------------
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
    ) -> None:
        self.cases, self.gpu, self.argv_base = cases, gpu, argv_base
        self.timeout_s, self.stop, self.emit = timeout_s, stop, emit
        self.proc: subprocess.Popen[str] | None = None
        self.reader = threading.Thread()

    def _spawn(
        self, cases: list[Case], tmp: str
    ) -> tuple[subprocess.Popen[str], Any, queue.Queue[str | None]]:
        path = os.path.join(tmp, f"cases-{id(self)}-{time.monotonic_ns()}.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(dump_cases(cases))
        env = dict(os.environ)
        argv = [*self.argv_base, "--cases", path]
        if self.gpu is not None:
            pin, nvml_index = self.gpu
            if pin is not None:
                env.update(
                    CUDA_VISIBLE_DEVICES=pin,
                    HIP_VISIBLE_DEVICES=pin,
                    CUDA_DEVICE_ORDER="PCI_BUS_ID",
                )
            argv += ["--gpu", str(nvml_index)]
        else:
            env["TRITON_INTERPRET"] = "1"
        env.setdefault("PYTHONUNBUFFERED", "1")
        errf = tempfile.TemporaryFile(mode="w+", dir=tmp)  # noqa: SIM115 - closed by drive()
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=errf,
            stdin=subprocess.DEVNULL,
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

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
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
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker and anything it started
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait()

    @staticmethod
    def _stderr_tail(errf: Any, n: int = 600) -> str:
        errf.seek(0)
        text = errf.read().strip()
        return text[-n:] if text else ""

    def drive(self, tmp: str) -> None:
        remaining = list(self.cases)
        while remaining and not self.stop.is_set():
            proc, errf, lines = self._spawn(remaining, tmp)
            current: int | None = None
            ready = False
            deadline = time.monotonic() + self.timeout_s + STARTUP_GRACE_S
            done_idx: set[int] = set()
            failure: str | None = None
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
                    tail = self._stderr_tail(errf)
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
                    self.emit("result", remaining[idx], _record(remaining[idx], ev), None)
                    current = None
                    deadline = time.monotonic() + self.timeout_s
                elif kind == "done":
                    proc.wait()
                    break
            self._close(errf)
            if self.stop.is_set():
                return
            pending = [i for i in range(len(remaining)) if i not in done_idx]
            if not pending:
                return
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


def _record(case: Case, ev: dict[str, Any]) -> Record:
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
    argv = [
        python or sys.executable,
        "-m",
        "tritonwatch.bench.worker",
        "--device",
        "cuda" if device.is_gpu else "cpu",
        "--budget-ms",
        repr(budget_ms),
        "--target-ci",
        repr(target_ci),
        "--seed",
        str(seed),
        "--cpu-threads",
        str(int(settings.get("cpu_threads"))),
    ]
    for p in plugins:
        argv += ["--plugin", p]
    return argv


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
) -> tuple[list[Record], dict[str, Any] | None, bool]:
    """Run ``cases`` (already in order) on workers; returns (records, fingerprint, interrupted).

    ``python`` is the interpreter the workers run (default: this one); ``compare`` passes each
    build environment's own, so two Triton builds never share a process.
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
            _Slot(cs, g, argv, timeout, stop, emit)
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
def _median_ci(samples: list[float]) -> tuple[float, float, float]:
    from .timing import median_ci

    return median_ci(samples)


def outcomes(records: list[Record], peaks: roofline.Peaks | None) -> list[CaseOutcome]:
    out = []
    for r in records:
        o = CaseOutcome(r)
        if r.status == "ok" and r.samples:
            o.median_ms, o.ci_low, o.ci_high = _median_ci(r.samples)
            if r.flops is not None and r.bytes is not None:
                o.derived = roofline.derive(r.flops, r.bytes, o.median_ms, r.case.dtype, peaks)
        out.append(o)
    return out


def build_run(
    outs: list[CaseOutcome],
    fp: dict[str, Any],
    *,
    run_info: dict[str, Any],
    peak_source: str | None,
) -> Run:
    """One ``tritonwatch.run/1`` document: a ``time`` result per case (every sample) plus
    ``tflops``/``gbps``/``pct_peak`` derived from its median (value only)."""
    machine = dict(fp.get("machine") or {})
    name = settings.get("machine_name") or machine.get("name") or "unknown"
    machine["name"] = name
    results: list[dict[str, Any]] = []
    for o in outs:
        r = o.record
        base = {**{k: v for k, v in r.case.to_json().items()}}
        extra = dict(r.extra)
        if r.flops is not None:
            extra["flops"], extra["bytes"] = r.flops, r.bytes
        item: dict[str, Any] = {
            **base,
            "metric": "time",
            "unit": "ms",
            "status": r.status,
            "extra": extra,
        }
        if r.samples and r.status == "ok":
            item["samples"] = r.samples
        if r.error:
            item["error"] = r.error[:20_000]
        if r.correct is not None:
            item["correct"] = r.correct
        results.append(item)
        d = o.derived
        if d is None:
            continue
        derived = {"derived_from": "time", "median_ms": o.median_ms}
        for metric, unit, value in (
            ("tflops", "TFLOP/s", d.tflops),
            ("gbps", "GB/s", d.gbps),
            ("pct_peak", "%", d.pct_peak),
        ):
            if value is None or value != value:
                continue
            ex = dict(derived)
            if metric == "pct_peak":
                ex.update(peak_source=peak_source, bound=d.bound)
            results.append(
                {
                    **base,
                    "metric": metric,
                    "unit": unit,
                    "value": value,
                    "status": "ok",
                    "correct": True,
                    "extra": ex,
                }
            )
    doc = {
        "format": FORMAT,
        "run": run_info,
        "machine": machine,
        "build": fp.get("build") or {"triton": {"version": "unknown"}},
        "results": results,
    }
    return parse_run(doc)


def _local_fingerprint(device: DeviceInfo) -> dict[str, Any]:
    from .environment import fingerprint

    return fingerprint(device)


def run_suite(
    opts: RunOptions,
    store: Any,
    progress: Progress | None = None,
    on_plan: Callable[[Plan, DeviceInfo], None] | None = None,
) -> RunOutcome:
    """Plan, measure and store one run (the library function behind ``tritonwatch run``)."""
    from .. import plugins

    t0 = time.monotonic()
    registry = plugins.load(opts.plugins)
    suite, device, p = plan(opts, registry)
    if not p.cases:
        why = f"; {len(p.skipped)} cannot run here (see `tritonwatch list`)" if p.skipped else ""
        raise BenchError(f"no case of suite {suite.name!r} matches the filters{why}")
    with settings.scope(seed=opts.seed, target_ci=opts.target_ci, budget_ms=opts.budget_ms):
        seed = int(settings.get("seed"))
        target_ci = float(settings.get("target_ci"))
        if opts.budget_ms is None and suite.builtin == "smoke" and suite.path is None:
            budget = SMOKE_BUDGET_MS
        else:
            budget = float(settings.get("budget_ms"))
    if target_ci <= 0 or budget <= 0:
        raise BenchError("--target-ci and --budget-ms must be positive")
    order = shuffled(p.cases, seed)
    if on_plan is not None:
        on_plan(p, device)
    started = now()
    records, fp, interrupted = execute(
        order,
        device,
        budget_ms=budget,
        target_ci=target_ci,
        seed=seed,
        gpus=opts.gpus,
        plugins=opts.plugins,
        progress=progress,
    )
    fp = fp or _local_fingerprint(device)
    m = fp.get("machine") or {}
    name = settings.get("machine_name") or m.get("name") or "unknown"
    peaks = None
    if device.is_gpu:
        measured = store.machine_peaks(name, device.kind, m.get("gpu_model"), m.get("gpu_count"))
        peaks = roofline.peaks_for(m.get("gpu_model"), measured)
    outs = outcomes(records, peaks)
    # Skipped-here cases are recorded too, so a run says what it did not measure and why.
    for case, reason in p.skipped:
        outs.append(CaseOutcome(Record(case, "skipped", error=reason)))
    run_info: dict[str, Any] = {
        "id": str(new_run_id()),
        "started_at": started.isoformat(),
        "finished_at": now().isoformat(),
        "label": opts.label,
        "command": opts.command,
        "suite": suite.name,
        "seed": seed,
        "device": device.kind,
        "org": settings.get("org"),
        "budget_ms": budget,
        "target_ci": target_ci,
        "interrupted": interrupted,
        "case_order": [c.id for c in order],
        "peak_source": peaks.source if peaks else None,
        "gpus": list(opts.gpus) if opts.gpus else None,
    }
    run = build_run(
        outs,
        fp,
        run_info={k: v for k, v in run_info.items() if v is not None},
        peak_source=peaks.source if peaks else None,
    )
    stored = store.add_run(run) if run.results else None
    return RunOutcome(
        run=run,
        outcomes=outs,
        skipped=p.skipped,
        interrupted=interrupted,
        peak_source=peaks.source if peaks else None,
        elapsed_s=time.monotonic() - t0,
        stored=stored,
        n_finished=len(records),
    )


@dataclass
class Calibration:
    machine: str
    gpu_model: str | None
    peaks: dict[str, Any]


def calibrate(store: Any, *, device: str | None = None, gpu: int = 0) -> Calibration:
    """Measure this GPU's copy bandwidth and matmul TFLOP/s in a worker and store them."""
    with settings.scope(device=device):
        dev = probe(settings.get("device"))
    if not dev.is_gpu:
        raise BenchError(
            "calibrate measures a GPU and there is none here (or --device cpu); "
            "CPU runs report TFLOP/s and GB/s without % of peak"
        )
    argv = [
        sys.executable,
        "-m",
        "tritonwatch.bench.worker",
        "--calibrate",
        "--device",
        "cuda",
        "--gpu",
        str(gpu_slot(gpu)[1]),
        "--budget-ms",
        "1000",
        "--target-ci",
        "0.005",
        "--seed",
        "0",
        "--cases",
        os.devnull,
    ]
    pin = gpu_slot(gpu)[0]
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": pin,
        "HIP_VISIBLE_DEVICES": pin,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env,
            timeout=float(settings.get("case_timeout_s")) + STARTUP_GRACE_S,
        )
    except subprocess.TimeoutExpired:
        raise BenchError("calibration timed out; is the GPU busy?") from None
    fp: dict[str, Any] = {}
    peaks: dict[str, Any] | None = None
    for line in proc.stdout.splitlines():
        ev = json.loads(line)
        if ev.get("event") == "ready":
            fp = ev["fingerprint"]
        elif ev.get("event") == "calibration":
            peaks = ev["peaks"]
    if peaks is None:
        raise BenchError(f"calibration failed: {proc.stderr.strip()[-300:] or 'no output'}")
    m = fp.get("machine") or {}
    name = settings.get("machine_name") or m.get("name") or "unknown"
    store.set_machine_peaks(
        name, dev.kind, m.get("gpu_model"), m.get("gpu_count"), peaks, info={**m, "name": name}
    )
    return Calibration(machine=name, gpu_model=m.get("gpu_model"), peaks=peaks)


@dataclass
class Listing:
    device: DeviceInfo
    rows: list[dict[str, Any]]
    n_cases: int
    n_skipped: int


def listing(
    *, device: str | None = None, suite: str = "smoke", plugins: Sequence[str] = ()
) -> Listing:
    """Operators x providers with availability per dtype here, and the suite's case counts."""
    from .. import plugins as plugin_mod
    from .registry import describe

    registry = plugin_mod.load(plugins)
    s, dev, p = plan(RunOptions(suite=suite, device=device), registry)
    rows = describe(registry, dev)
    per: dict[tuple[str, str], int] = {}
    for c in p.cases:
        per[(c.operator, c.provider_key)] = per.get((c.operator, c.provider_key), 0) + 1
    for r in rows:
        r["cases"] = per.get((r["operator"], r["provider"]), 0)
    return Listing(device=dev, rows=rows, n_cases=len(p.cases), n_skipped=len(p.skipped))
