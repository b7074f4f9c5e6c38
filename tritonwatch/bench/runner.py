"""The parent side of measuring: plan the cases, run them on workers (:mod:`.pool`), build the
``tritonwatch.run/1`` document and store it in one transaction; also ``calibrate`` and ``list``.

Case order is shuffled with the recorded seed so slow drift does not bias one operator.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import settings
from ..errors import BenchError
from ..naming import canonical_shape
from ..runformat import FORMAT, Run, new_run_id, now, parse_run
from . import roofline
from .pool import STARTUP_GRACE_S, Progress, Record, execute, gpu_slot, worker_argv
from .registry import Plan, Suite, expand, load_suite
from .spec import Case, DeviceInfo
from .timing import TIMERS

if TYPE_CHECKING:
    from ..store import AddedRun, Store

__all__ = [  # names other modules (compare, nightly, tests) import from here
    "SMOKE_BUDGET_MS", "STARTUP_GRACE_S", "CaseOutcome", "Progress", "Record", "RunOptions",
    "RunOutcome", "build_run", "calibrate", "execute", "gpu_slot", "listing", "outcomes", "plan",
    "previous_timers", "probe", "run_suite", "sampling", "shuffled", "worker_argv",
]  # fmt: skip

SMOKE_BUDGET_MS = 200.0  # smoke is a correctness pass: a short budget unless --budget-ms says


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
    # Also compile the suite's kernels for these targets and record their static metrics
    # (registers, spills, shared memory, instructions) as series: works with no GPU.
    codegen: bool = False
    codegen_targets: str | None = None
    codegen_pattern: str | None = None
    codegen_no_cache: bool = False  # recompile instead of reading the compile cache


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
    stored: AddedRun | None = None
    n_finished: int = 0
    codegen: CodegenOutcome | None = None


@dataclass
class CodegenOutcome:
    """What ``run --codegen`` compiled: which kernels, for which targets, and what came of it."""

    kernels: list[str]
    n_specs: int
    targets: list[str]
    n_ok: int
    n_failed: int
    n_results: int
    selected_by: str  # "--codegen-kernels X", "-k X", or "" (the whole suite)
    unmatched: list[str]  # -k patterns that name no kernel or spec


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


TIMER_LOOKBACK_RUNS = 20


def previous_timers(
    store: Store, device: DeviceInfo, cases: Sequence[Case], lookback: int = TIMER_LOOKBACK_RUNS
) -> dict[str, str]:
    """Case id -> the GPU timer its newest stored result on this machine used.

    The worker reuses it (see ``timing.choose_timer``): a kernel near the graph threshold keeps
    its timer from night to night instead of switching and showing a step that is not there.
    Looks at the newest ``lookback`` runs of this machine; cases never run here choose afresh.
    """
    if not device.is_gpu or not cases:
        return {}
    name = settings.get("machine_name") or socket.gethostname()

    def key(op: str, prov: str, var: str, shape: Any, dtype: str, mode: str) -> tuple[str, ...]:
        # The store keeps shapes canonical (sorted keys); a case keeps its operator's order.
        return (op, prov, var, canonical_shape(shape), dtype, mode)

    wanted = {key(c.operator, c.provider, c.variant, c.shape, c.dtype, c.mode): c.id for c in cases}
    found: dict[str, str] = {}
    for summary in store.runs.find(machine=name, limit=lookback):
        if summary.device != device.kind:
            continue
        for r in store.runs.get(summary.uuid).results:
            if r.metric != "time" or r.status != "ok":
                continue
            timer = (r.extra or {}).get("timer")
            cid = wanted.get(key(r.operator, r.provider, r.variant, r.shape, r.dtype, r.mode))
            if cid is not None and timer in TIMERS:
                found.setdefault(cid, timer)
        if len(found) == len(wanted):
            break
    return found


def _local_fingerprint(device: DeviceInfo) -> dict[str, Any]:
    from .environment import fingerprint

    return fingerprint(device)


def sampling(opts: Any, suite: Suite, p: Plan) -> tuple[int, float, float]:
    """(seed, target CI, budget ms) for a planned run or A/B; refuses an empty plan.

    ``opts`` carries ``seed``, ``target_ci`` and ``budget_ms`` (None: the setting). The built-in
    smoke suite defaults to SMOKE_BUDGET_MS: it is a correctness pass.
    """
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
    return seed, target_ci, budget


def run_suite(
    opts: RunOptions,
    store: Store,
    progress: Progress | None = None,
    on_plan: Callable[[Plan, DeviceInfo], None] | None = None,
) -> RunOutcome:
    """Plan, measure and store one run (the library function behind ``tritonwatch run``)."""
    from .. import plugins

    t0 = time.monotonic()
    registry = plugins.load(opts.plugins)
    suite, device, p = plan(opts, registry)
    seed, target_ci, budget = sampling(opts, suite, p)
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
        timers=previous_timers(store, device, order),
    )
    fp = fp or _local_fingerprint(device)
    m = fp.setdefault("machine", {})
    if device.count:
        # A worker pinned by --gpus sees one GPU; the machine is the same whichever it saw.
        m["gpu_count"] = device.count
    name = settings.get("machine_name") or m.get("name") or "unknown"
    peaks = None
    if device.is_gpu:
        measured = store.series.peaks(name, device.kind, m.get("gpu_model"), m.get("gpu_count"))
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
    compiled: list[Any] = []
    codegen = None
    if opts.codegen:
        run, compiled, codegen = _with_codegen(run, opts, progress)
    stored = store.runs.add(run) if run.results else None
    if compiled:
        store.codegen.add(run.build.model_dump(mode="json", exclude_none=True), compiled)
    return RunOutcome(
        run=run,
        outcomes=outs,
        skipped=p.skipped,
        interrupted=interrupted,
        peak_source=peaks.source if peaks else None,
        elapsed_s=time.monotonic() - t0,
        stored=stored,
        n_finished=len(records),
        codegen=codegen,
    )


def _with_codegen(
    run: Any, opts: RunOptions, progress: Progress | None
) -> tuple[Any, list[Any], CodegenOutcome]:
    """The run plus one result per kernel x spec x target x static metric (mode ``codegen``).

    ``--codegen-kernels`` picks the kernels; else ``-k`` does, as it picks the cases (a pattern
    naming no kernel or spec compiles nothing for it and is reported); else the whole suite.
    """
    from ..codegen import static_metrics
    from ..codegen.blast import select_specs
    from ..runformat import Result

    specs = None
    unmatched: list[str] = []
    selected_by = ""
    if opts.codegen_pattern:
        selected_by = f"--codegen-kernels {opts.codegen_pattern}"
    elif opts.patterns:
        specs, unmatched = select_specs(opts.patterns)
        selected_by = "-k " + " ".join(opts.patterns)
    targets = list(opts.codegen_targets.split(",")) if opts.codegen_targets else []
    if specs is not None and not specs:
        return run, [], CodegenOutcome([], 0, targets, 0, 0, 0, selected_by, unmatched)
    if progress is not None:
        progress("codegen", None, None)
    m = static_metrics(
        targets=opts.codegen_targets,
        pattern=opts.codegen_pattern,
        no_cache=opts.codegen_no_cache,
        specs=specs,
    )
    extra = [Result.model_validate(r) for r in m.results()]
    summary = CodegenOutcome(
        kernels=sorted({r.kernel for r in m.rows}),
        n_specs=len({(r.kernel, r.spec) for r in m.rows}),
        targets=list(m.targets),
        n_ok=sum(1 for r in m.rows if r.status == "ok"),
        n_failed=sum(1 for r in m.rows if r.status == "error"),
        n_results=len(extra),
        selected_by=selected_by,
        unmatched=unmatched,
    )
    run = run.model_copy(update={"results": [*run.results, *extra]})
    return run, [r.compiled for r in m.rows], summary


@dataclass
class Calibration:
    machine: str
    gpu_model: str | None
    peaks: dict[str, Any]


def calibrate(store: Store, *, device: str | None = None, gpu: int = 0) -> Calibration:
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
    if dev.count:
        m["gpu_count"] = dev.count  # the calibration worker is pinned to one GPU
    name = settings.get("machine_name") or m.get("name") or "unknown"
    store.series.set_peaks(
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
