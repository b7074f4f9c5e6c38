"""The interleaved A/B driver behind ``tritonwatch compare --a ENV --b ENV``.

Each build gets ``workers`` persistent worker processes (default 8 on a GPU, 4 on a CPU), started with its own Python
(so two Triton builds never share a process) and warmed once; A's i-th and B's i-th form pair i.
They start before the driver plans (:class:`tritonwatch.bench.live.Crew`) and are told the plan
once it is made.
Cases are taken one at a time, in the seed's shuffled order: every worker prepares the case
(compile, check, warm up; one timer for all), then it is timed in blocks of four short segments,
``ABBA`` or ``BAAB`` at random per block, each block on one pair and on new inputs placed anew
in memory (placement moves a kernel's time by up to ~2% on an H200). A round gives every pair
one block. A block's log time ratio (B's two segments over A's, each by the mean of its fastest
half, in logs: :func:`tritonwatch.bench.blocks.segment_level`)
cancels drift that is linear over the block; each pair's mean is one unit of the test, because
a worker process keeps an offset of its own for as long as it lives (up to ~4% on a CPU in
A/A), and the spread *between* pairs is what the verdict is tested against
(:mod:`tritonwatch.analysis.compare`). The driver waits for each segment before starting the
next, so no two workers ever time at the same moment; on a CPU they all time on one core
(:func:`timing_cpus`). A block that a transient hit (one side's two segments disagree) is timed
again once (:func:`tritonwatch.bench.blocks.time_case`).

Sequential stopping: after each round, from the fourth unit on, a case whose 99% interval
already lies wholly beyond the threshold, or wholly inside it, stops; an undecided case goes on
past its planned blocks (up to three times as many) while the comparison's budget allows and
more blocks could find the change worth finding: the threshold, or the change the case shows,
up to twice the threshold (a case whose pairs disagree too much for that stops as "too
noisy"). ``--budget`` caps the whole comparison's measuring time; by default it is what one run
may spend, since without ``--budget-ms`` the two builds share a run's per-case budget.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import settings
from ..analysis.compare import (
    MIN_BLOCKS,
    CaseKey,
    Comparison,
    Side,
    compare_sides,
)
from ..errors import BenchError, UsageError
from ..runformat import Run, new_run_id, now
from . import roofline
from .blocks import ABProgress, CaseRun, pair_groups, time_case
from .live import BuildEnv, Crew, WorkerLost, device_flag, gpu_visible, resolve
from .pool import timing_argv
from .runner import (
    CaseOutcome,
    Record,
    build_run,
    outcomes,
    plan,
    previous_timers,
    sampling,
    shuffled,
)
from .spec import Case, DeviceInfo

if TYPE_CHECKING:
    from ..store import Store

DEFAULT_BLOCKS = 8  # planned ABBA blocks per case; each side gets budget_ms over them
# A shorter segment times mostly the command that asks for it (about 1 ms on a CPU).
MIN_SEGMENT_MS = 1.0
# Worker processes per build when --workers is not given; block i of a case goes to pair i mod n.
# On a GPU the pairs' own offsets (0.1-0.9% on an H200, with inputs re-placed every block) need
# more pairs to test across than four (3 degrees of freedom), and a GPU host starts them side by
# side; a CPU host of two cores pays for every start (docs/compare.md, "Worker pairs").
DEFAULT_WORKERS = {"gpu": 8, "cpu": 4}


@dataclass
class ABOptions:
    a: str
    b: str
    suite: str = "smoke"
    patterns: Sequence[str] = ()
    providers: Sequence[str] | None = None
    dtypes: Sequence[str] | None = None
    device: str | None = None
    blocks: int = DEFAULT_BLOCKS
    workers: int | None = None  # per build (None: default_workers)
    budget_ms: float | None = None  # per case and build (None: half a run's, see run_ab)
    total_budget_s: float | None = None  # the whole comparison's measuring time (--budget)
    target_ci: float | None = None
    threshold: float | None = None
    seed: int | None = None
    gpu: int | None = None
    plugins: Sequence[str] = ()
    label: str | None = None
    command: str | None = None


@dataclass
class ABOutcome:
    comparison: Comparison
    env_a: BuildEnv
    env_b: BuildEnv
    run_a: Run
    run_b: Run
    design: str
    interrupted: bool
    elapsed_s: float
    stored: Any = None
    n_cases: int = 0
    measured_s: float = 0.0
    stops: dict[str, int] = field(default_factory=dict)
    startup_s: float = 0.0  # from the first worker's launch until every worker said ready


def timing_cpus(device: DeviceInfo) -> list[int] | None:
    """On a CPU, the cores every worker times on: the last ``cpu_threads`` this process may use.

    A core's speed changes for seconds at a time on a shared host (its sibling hyperthread
    busy, say) while its neighbour's does not; two workers the scheduler put on different cores
    then differ by that, which the ABBA order cannot cancel. On one core both builds of a block
    see the same state. None where pinning is moot: on a GPU, with ``cpu_threads`` 0 (torch's
    own count) or at least the cores there are, or where the OS has no affinity call.
    """
    if device.is_gpu or not hasattr(os, "sched_getaffinity"):
        return None
    n = int(settings.get("cpu_threads"))
    allowed = sorted(os.sched_getaffinity(0))
    if n < 1 or n >= len(allowed):
        return None
    return allowed[-n:]


def suite_version(cases: Sequence[Case]) -> str:
    """A short hash of the planned cases: two runs of the same suite version measured the same."""
    text = json.dumps(sorted(json.dumps(c.to_json(), sort_keys=True) for c in cases))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _key(c: Case) -> CaseKey:
    return CaseKey.of(c.operator, c.provider, c.variant, c.shape, c.dtype, c.mode)


def _error_line(why: str) -> str:
    """A worker's crash report with the Python traceback in its stderr cut down to the error it
    ended with (the first unindented line after its last frame); else unchanged. The report
    keeps stderr's last 600 characters, which start anywhere inside a traceback."""
    lines = why.splitlines()
    frames = [i for i, x in enumerate(lines) if x.lstrip().startswith('File "')]
    after = (
        [x for x in lines[frames[-1] + 1 :] if x.strip() and x[0] not in " \t"] if frames else []
    )
    if not after:
        return why
    head, sep, _ = why.partition("stderr: ")
    return f"{head}{sep}{after[0].strip()}"


def _check_side(env: BuildEnv, fp: dict[str, Any] | None, why: str = "") -> None:
    """The worker really ran ``env``'s Triton (not the host's it could have inherited)."""
    if fp is None:
        reason = _error_line(why or "no worker started")[:300]
        raise BenchError(
            f"environment {env.name} cannot run the benchmark worker ({reason}); it needs torch "
            "and tritonwatch too: make it with `tritonwatch env create NAME --triton VERSION "
            "--system-site-packages`"
        )
    seen = ((fp.get("build") or {}).get("triton") or {}).get("version")
    if seen != env.triton_version:
        raise BenchError(
            f"environment {env.name}: its worker imported Triton {seen}, not the environment's "
            f"{env.triton_version}; another Triton shadows it (check PYTHONPATH)"
        )


def default_workers(device: str | None) -> int:
    """Worker pairs when none are asked for: DEFAULT_WORKERS for the device the workers will
    find. It is decided before any of them starts, so with ``auto`` from whether this host
    shows a GPU at all (:func:`bench.live.gpu_visible`); a wrong guess changes only the count."""
    flag = device_flag(device)
    gpu = flag == "cuda" or (flag == "auto" and gpu_visible())
    return DEFAULT_WORKERS["gpu" if gpu else "cpu"]


def start_crew(opts: ABOptions) -> Crew:
    """Both builds' workers, launched (:class:`bench.live.Crew`), once the options are
    checked: ``run_ab`` without a crew starts one itself; ``tritonwatch compare`` starts it
    before it opens the store."""
    # Not given: the device's default, but no more pairs than blocks (each gets one a round).
    workers = opts.workers
    if workers is None:
        workers = min(default_workers(opts.device), opts.blocks)
    check_options(opts, workers)
    probed = {ref: resolve(ref) for ref in dict.fromkeys((opts.a, opts.b))}  # A/A: once
    envs = {"A": probed[opts.a], "B": probed[opts.b]}
    return Crew(envs, workers, opts.device, opts.gpu, opts.plugins)


def run_ab(
    opts: ABOptions,
    store: Store,
    progress: ABProgress | None = None,
    on_plan: Callable[[int, DeviceInfo, str], None] | None = None,
    crew: Crew | None = None,
) -> ABOutcome:
    """Plan once, measure both builds case by case in ABBA blocks, store two runs and the
    comparison (see the module docstring for the design). ``crew``: the workers, started
    early by :func:`start_crew` (else started here); closed when this returns or fails."""
    t0 = time.monotonic()
    with crew or start_crew(opts) as started:
        return _run_ab(opts, store, started, progress, on_plan, t0)


def check_options(opts: ABOptions, workers: int) -> None:
    """Refuse a design that cannot give a verdict, before any worker starts."""
    if opts.blocks < MIN_BLOCKS:
        raise UsageError(f"--blocks {opts.blocks}: give at least {MIN_BLOCKS} blocks per case")
    if workers != 1 and workers < MIN_BLOCKS:
        raise UsageError(
            f"--workers {workers}: give 1, or at least {MIN_BLOCKS} (the verdict is tested "
            "across worker pairs, and needs that many)"
        )
    if workers > opts.blocks:
        raise UsageError(f"--workers {workers}: at most --blocks ({opts.blocks}) per build")
    if opts.total_budget_s is not None and opts.total_budget_s <= 0:
        raise UsageError("--budget must be positive")


def _run_ab(
    opts: ABOptions,
    store: Store,
    crew: Crew,
    progress: ABProgress | None,
    on_plan: Callable[[int, DeviceInfo, str], None] | None,
    t0: float,
) -> ABOutcome:
    from .. import plugins

    env_a, env_b = crew.envs["A"], crew.envs["B"]
    with settings.scope(threshold=opts.threshold):
        threshold = float(settings.get("threshold"))
    if not 0 <= threshold < 1:
        raise UsageError(f"--threshold {threshold:g}: give a fraction like 0.02 (or 2%)")
    registry = plugins.load(opts.plugins)
    from .runner import RunOptions

    suite, device, p = plan(
        RunOptions(
            suite=opts.suite,
            patterns=opts.patterns,
            providers=opts.providers,
            dtypes=opts.dtypes,
            device=opts.device,
        ),
        registry,
    )
    seed, target_ci, budget = sampling(opts, suite, p)
    if opts.budget_ms is None:
        # By default the two builds share what one run may spend on a case: the verdict rests
        # on the blocks' number, not their length (docs/compare.md, step 4 of the method).
        budget /= 2
    version = suite_version(p.cases)
    # The statistic goes in the stored design: comparisons before 2026-11-28 took segment medians.
    design = (
        f"ABBA blocks ({opts.blocks} planned per case, order random per block; "
        "each segment by its fastest half)"
    )
    pairs = len(crew.workers["A"])
    if pairs > 1:
        design += f", {pairs} worker pairs"
    cpus = timing_cpus(device)
    if cpus:
        design += f", timed on CPU core{'s' if len(cpus) > 1 else ''} {','.join(map(str, cpus))}"
    planned_ms = 2 * budget * len(p.cases)  # what two runs would spend measuring
    total_ms = opts.total_budget_s * 1e3 if opts.total_budget_s is not None else planned_ms
    if total_ms < planned_ms:
        # --budget below the plan: every case gets the same smaller share, so its planned
        # blocks fit (shorter segments), instead of the first cases taking it all.
        squeezed = budget * total_ms / planned_ms
        seg = squeezed / (2 * opts.blocks)
        if seg < MIN_SEGMENT_MS:
            least = 2 * len(p.cases) * 2 * opts.blocks * MIN_SEGMENT_MS / 1e3  # every segment
            raise UsageError(
                f"--budget {opts.total_budget_s:g}s leaves {seg:.2g} ms per segment for "
                f"{len(p.cases)} cases (2 builds x {opts.blocks} blocks x 2 segments each); "
                f"give at least {math.ceil(least * 100) / 100:g}s, fewer cases (-k) or fewer --blocks"
            )
        design += (
            f"; --budget {opts.total_budget_s:g}s: {squeezed:.3g} ms per case and build "
            f"instead of {budget:g} ms"
        )
        budget = squeezed
    if on_plan is not None:
        on_plan(len(p.cases), device, design)
    gpus = [opts.gpu] if opts.gpu is not None else None
    envs = {"A": env_a, "B": env_b}
    # One timer per case for both builds: the stored choice if this machine has one, else the
    # first side's. Comparing an event-timed side with a graph-timed one would report the
    # timers' difference as the builds'.
    timers = previous_timers(store, device, p.cases)
    order = shuffled(p.cases, seed)
    index = {c.id: i for i, c in enumerate(order)}
    seg_ms = budget / (2 * opts.blocks)
    rng = random.Random(seed)
    started = now()
    runs_done: list[CaseRun] = []
    fps: dict[str, dict[str, Any]] = {}
    spent = 0.0
    startup_s = 0.0
    interrupted = False
    workers = crew.workers
    pin = ["--pin-cpus", ",".join(map(str, cpus))] if cpus else []
    crew.configure(order, [*timing_argv(budget, target_ci, seed), *pin])
    try:
        for side in "AB":
            for w in workers[side]:
                try:
                    fp = w.ready()
                except WorkerLost as e:
                    _check_side(envs[side], None, str(e))
                    raise
                _check_side(envs[side], fp)
                if w.device.get("kind") != device.kind:
                    raise BenchError(
                        f"environment {envs[side].name}: its worker measures on "
                        f"{w.device.get('kind')}, where this comparison planned for "
                        f"{device.kind}; give --device"
                    )
                fps.setdefault(side, fp)
        startup_s = time.monotonic() - crew.launched
        for n, case in enumerate(order):
            if progress is not None:
                progress("case", case, {"index": n, "n": len(order)})
            # What the cases after this one need at least: MIN_BLOCKS blocks each.
            # This case's fair share of what is left: the budget that cases decided early
            # did not use goes to the undecided ones after them, never a later case's own.
            share = (total_ms - spent) / (len(order) - n)
            cr = time_case(
                case,
                index[case.id],
                workers,
                timer=timers.get(case.id),
                seg_ms=seg_ms,
                planned=opts.blocks,
                threshold=threshold,
                rng=rng,
                room_ms=share,
                progress=progress,
            )
            spent += cr.spent_ms
            runs_done.append(cr)
            if progress is not None:
                status = "/".join(cr.record(s).status for s in "AB")
                got = {"status": status, "blocks": len(cr.blocks), "decision": cr.decision}
                progress("done", case, got)
    except KeyboardInterrupt:
        interrupted = True
    finished = now()
    done = {cr.case.id: cr for cr in runs_done}
    stored_runs: dict[str, Run] = {}
    for side, env in envs.items():
        recs = [done[c.id].record(side) for c in p.cases if c.id in done]
        fp = fps.get(side) or {}
        peaks = _peaks(store, device, fp)
        outs: list[CaseOutcome] = outcomes(recs, peaks)
        for case, reason in p.skipped:
            outs.append(CaseOutcome(Record(case, "skipped", error=reason)))
        info: dict[str, Any] = {
            "id": str(new_run_id()),
            "started_at": started.isoformat(),
            "finished_at": finished.isoformat(),
            "label": opts.label or f"compare {side}: {env.name}",
            "command": opts.command,
            "suite": suite.name,
            "suite_version": version,
            "seed": seed,
            "device": device.kind,
            "org": settings.get("org"),
            "budget_ms": budget,
            "target_ci": target_ci,
            "interrupted": interrupted,
            "case_order": [c.id for c in order],
            "peak_source": peaks.source if peaks else None,
            "gpus": gpus,
            "compare": {
                "side": side,
                "env": env.name,
                "python": env.python,
                "design": design,
                "blocks": opts.blocks,
            },
        }
        stored_runs[side] = build_run(
            outs,
            fp,
            run_info={k: v for k, v in info.items() if v is not None},
            peak_source=peaks.source if peaks else None,
        )
    # Cases whose timed code Triton generated: its own kernels, and torch.compile's on a GPU
    # (on a CPU inductor writes C++).
    triton_kinds = ("triton", "inductor") if device.is_gpu else ("triton",)
    triton_made = {
        c.id for c in p.cases if registry.provider(c.operator, c.provider_key).kind in triton_kinds
    }
    comparison, stops = _compare(
        p.cases, done, env_a, env_b, threshold, interrupted, device, suite.name, design, triton_made
    )
    comparison.meta.update(
        blocks=opts.blocks,
        workers=pairs,
        budget_ms=budget,
        total_budget_ms=round(total_ms, 1),
        measured_ms=round(spent, 1),
        stops=stops,
    )
    from ..analysis.compare_runs import save_comparison

    stored = save_comparison(store, comparison, stored_runs["A"], stored_runs["B"], kind="ab")
    return ABOutcome(
        comparison=comparison,
        env_a=env_a,
        env_b=env_b,
        run_a=stored_runs["A"],
        run_b=stored_runs["B"],
        design=design,
        interrupted=interrupted,
        elapsed_s=time.monotonic() - t0,
        stored=stored,
        n_cases=len(p.cases),
        measured_s=spent / 1e3,
        stops=stops,
        startup_s=startup_s,
    )


def _compare(
    cases: Sequence[Case],
    done: dict[str, CaseRun],
    env_a: BuildEnv,
    env_b: BuildEnv,
    threshold: float,
    interrupted: bool,
    device: DeviceInfo,
    suite: str,
    design: str,
    triton_made: Collection[str],
) -> tuple[Comparison, dict[str, int]]:
    """The comparison of the cases both builds timed; the untimed ones listed with why."""
    pairs: list[Any] = []
    not_timed: list[dict[str, str]] = []
    stops: dict[str, int] = {}
    triton_timed = 0
    for c in cases:
        cr = done.get(c.id)
        if cr is None:
            continue
        ra, rb = cr.record("A"), cr.record("B")
        if ra.status == rb.status == "skipped":  # e.g. Triton under the CPU interpreter
            not_timed.append({"case": c.id, "reason": ra.error or rb.error or "skipped"})
            continue
        sides = []
        for rec, segs in ((ra, cr.segments["A"]), (rb, cr.segments["B"])):
            rounds = tuple(np.asarray(s, dtype=np.float64) for s in segs)
            sides.append(Side(rec.status, rounds if rec.status == "ok" else (), rec.error))
        stops[cr.decision] = stops.get(cr.decision, 0) + 1
        pairs.append((_key(c), sides[0], sides[1], tuple(cr.blocks), pair_groups(cr)))
        triton_timed += c.id in triton_made
    if not pairs and interrupted:
        # Ctrl-C before any case was timed by both builds: nothing to keep (the CLI exits 130).
        raise KeyboardInterrupt("before any case was timed by both builds; nothing stored")
    if not pairs:
        # Nothing was timed by both builds: a comparison of nothing must not look like "same".
        first = not_timed[0]["reason"] if not_timed else ""
        why = f" ({first.split(' (')[0]})" if first else ""
        raise BenchError(
            f"nothing to compare: none of the {len(cases)} case(s) was timed by both builds"
            f"{why}; nothing stored. On a CPU only torch providers are timed "
            "(--provider torch)"
        )
    timed = sorted({p[0].provider_key for p in pairs})
    meta = {
        "design": design,
        "device": device.kind,
        "suite": suite,
        "triton_a": env_a.triton_version,
        "triton_b": env_b.triton_version,
        "interrupted": interrupted,
        "not_timed": len(not_timed),
        "not_timed_cases": not_timed,
        "timed_providers": timed,
        "triton_timed": triton_timed,
        "same_build": env_a.python == env_b.python,
        "not_timed_reason": (not_timed[0]["reason"].split(" (")[0] if not_timed else None),
    }
    comparison = compare_sides(
        pairs,
        threshold=threshold,
        label_a=f"{env_a.name} (triton {env_a.triton_version})",
        label_b=f"{env_b.name} (triton {env_b.triton_version})",
        meta=meta,
    )
    return comparison, stops


def _peaks(store: Store, device: DeviceInfo, fp: dict[str, Any]) -> roofline.Peaks | None:
    if not device.is_gpu:
        return None
    m = fp.get("machine") or {}
    name = settings.get("machine_name") or m.get("name") or "unknown"
    measured = store.series.peaks(name, device.kind, m.get("gpu_model"), m.get("gpu_count"))
    return roofline.peaks_for(m.get("gpu_model"), measured)
