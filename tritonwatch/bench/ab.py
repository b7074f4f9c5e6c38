"""The interleaved A/B driver behind ``tritonwatch compare --a ENV --b ENV``.

Each build gets one persistent worker, started with its own Python (so two Triton builds never
share a process) and warmed once. Cases are taken one at a time, in the seed's shuffled order:
both workers prepare the case (compile, check, warm up; one timer for both sides), then time it
in blocks of four short segments, ``ABBA`` or ``BAAB`` at random per block, each block on new
inputs placed anew in memory (placement moves a kernel's time by up to ~2% on an H200, and would
otherwise be a fixed offset between the two workers that no amount of blocks averages out). A block's log time
ratio (the mean of B's two segment medians over A's, in logs) cancels drift that is linear over
the block, and the spread *between* blocks is what the verdict is tested against
(:mod:`tritonwatch.analysis.compare`). The driver waits for each segment before starting the
next, so the two workers never time at the same moment.

Sequential stopping: after each block from the fourth on, a case whose 99% interval already lies
wholly beyond the threshold, or wholly inside it, stops; an undecided case goes on past its
planned blocks (up to three times as many) while the comparison's budget allows and more blocks
could settle it (a case whose noise would keep it undecided even then stops as "too noisy"). ``--budget``
caps the whole comparison's measuring time; by default it is what two runs would spend.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import settings
from ..analysis.compare import (
    MIN_BLOCKS,
    CaseKey,
    Comparison,
    Side,
    block_decision,
    compare_sides,
    worth_extending,
)
from ..errors import BenchError, UsageError
from ..runformat import MAX_SAMPLES, Run, new_run_id, now
from . import roofline
from .live import LiveWorker, WorkerLost
from .pool import gpu_slot, record_from_event
from .runner import (
    CaseOutcome,
    Record,
    build_run,
    outcomes,
    plan,
    previous_timers,
    sampling,
    shuffled,
    worker_argv,
)
from .spec import Case, DeviceInfo

if TYPE_CHECKING:
    from ..store import Store

DEFAULT_BLOCKS = 8  # planned ABBA blocks per case; each side gets budget_ms over them
EXTEND = 3  # an undecided case may run up to this many times its planned blocks

# progress(kind, case, info): kind is "case" (info: index, n), "block" (k, decision) or
# "done" (status, blocks, decision).
ABProgress = Callable[[str, Case, dict[str, Any]], None]


@dataclass(frozen=True)
class BuildEnv:
    """One side of a comparison: what the user typed and the Python that runs its workers."""

    name: str
    python: str
    triton_version: str


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
    budget_ms: float | None = None  # per case and build, as for ``run``
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


@dataclass
class CaseRun:
    """One case as both builds saw it: each side's record, segments and the block ratios."""

    case: Case
    recs: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: dict[str, list[list[float]]] = field(default_factory=lambda: {"A": [], "B": []})
    blocks: list[float] = field(default_factory=list)
    decision: str = "undecided"
    spent_ms: float = 0.0

    def record(self, side: str) -> Record:
        """The side's stored record: every segment's samples, or why it has none."""
        ev = self.recs.get(side)
        if ev is None:
            return Record(self.case, "error", error="not measured (interrupted)")
        rec = record_from_event(self.case, ev)
        if rec.status == "ok":
            segs = thinned(self.segments[side])
            rec.samples = [x for seg in segs for x in seg]
            rec.extra = {
                **rec.extra,
                "segments": [len(seg) for seg in segs],
                "blocks": len(self.blocks),
                "stop": self.decision,
            }
            timed = sum(len(seg) for seg in self.segments[side])
            if timed > len(rec.samples):
                rec.extra["samples_timed"] = timed  # the stored samples are a thinned subset
            if not rec.samples:
                other = "B" if side == "A" else "A"
                if (self.recs.get(other) or {}).get("status") != "ok":
                    why = f"not timed: build {other} failed on this case"
                    rec.status, rec.error = "skipped", why
                else:
                    rec.status, rec.error = "error", "no segment was timed"
        return rec


def thinned(segs: Sequence[Sequence[float]], most: int = MAX_SAMPLES) -> list[Sequence[float]]:
    """The segments with every k-th sample kept, the smallest k that fits ``most`` in all.

    A fast kernel fills each segment with up to 10,000 samples and an extended case may have
    48 segments; a stored result holds at most ``most``. The verdict is taken on every sample
    (the block ratios); only what is stored is thinned, evenly, so each segment keeps its share.
    """
    total = sum(len(s) for s in segs)
    if total <= most:
        return list(segs)
    k = 2
    while sum(len(range(0, len(s), k)) for s in segs) > most:
        k += 1
    return [s[::k] for s in segs]


def block_ratio(segs_a: Sequence[Sequence[float]], segs_b: Sequence[Sequence[float]]) -> float:
    """The log time ratio (B over A) of one block: mean log segment median, B's minus A's."""
    ma = [math.log(float(np.median(s))) for s in segs_a]
    mb = [math.log(float(np.median(s))) for s in segs_b]
    return sum(mb) / len(mb) - sum(ma) / len(ma)


def resolve(ref: str) -> BuildEnv:
    """An environment name, venv folder, python path or ``current`` (see ``tritonwatch env``)."""
    from ..codegen.envs import resolve_env

    info = resolve_env(ref)
    return BuildEnv(name=ref, python=info.python, triton_version=info.triton_version)


def suite_version(cases: Sequence[Case]) -> str:
    """A short hash of the planned cases: two runs of the same suite version measured the same."""
    text = json.dumps(sorted(json.dumps(c.to_json(), sort_keys=True) for c in cases))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _key(c: Case) -> CaseKey:
    return CaseKey.of(c.operator, c.provider, c.variant, c.shape, c.dtype, c.mode)


def _check_side(env: BuildEnv, fp: dict[str, Any] | None, why: str = "") -> None:
    """The worker really ran ``env``'s Triton (not the host's it could have inherited)."""
    if fp is None:
        reason = (why or "no worker started")[:300]
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


def run_ab(
    opts: ABOptions,
    store: Store,
    progress: ABProgress | None = None,
    on_plan: Callable[[int, DeviceInfo, str], None] | None = None,
) -> ABOutcome:
    """Plan once, measure both builds case by case in ABBA blocks, store two runs and the
    comparison (see the module docstring for the design)."""
    from .. import plugins

    t0 = time.monotonic()
    if opts.blocks < MIN_BLOCKS:
        raise UsageError(f"--blocks {opts.blocks}: give at least {MIN_BLOCKS} blocks per case")
    if opts.total_budget_s is not None and opts.total_budget_s <= 0:
        raise UsageError("--budget must be positive")
    env_a, env_b = resolve(opts.a), resolve(opts.b)
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
    version = suite_version(p.cases)
    design = f"ABBA blocks ({opts.blocks} planned per case, order random per block)"
    if on_plan is not None:
        on_plan(len(p.cases), device, design)
    gpus = [opts.gpu] if opts.gpu is not None else None
    if not device.is_gpu:
        slot: tuple[str | None, int] | None = None
    elif gpus:
        slot = gpu_slot(gpus[0])
    else:
        slot = (None, gpu_slot(0)[1])  # leave the user's CUDA_VISIBLE_DEVICES alone
    envs = {"A": env_a, "B": env_b}
    # One timer per case for both builds: the stored choice if this machine has one, else the
    # first side's. Comparing an event-timed side with a graph-timed one would report the
    # timers' difference as the builds'.
    timers = previous_timers(store, device, p.cases)
    order = shuffled(p.cases, seed)
    index = {c.id: i for i, c in enumerate(order)}
    seg_ms = budget / (2 * opts.blocks)
    total_ms = (
        opts.total_budget_s * 1e3
        if opts.total_budget_s is not None
        else 2 * budget * len(order)  # what two runs would spend measuring
    )
    rng = random.Random(seed)
    started = now()
    runs_done: list[CaseRun] = []
    fps: dict[str, dict[str, Any]] = {}
    spent = 0.0
    interrupted = False
    timeout = float(settings.get("case_timeout_s"))
    with tempfile.TemporaryDirectory(prefix="tritonwatch-ab-") as tmp:
        workers = {
            s: LiveWorker(
                worker_argv(device, budget, target_ci, seed, opts.plugins, envs[s].python),
                slot,
                order,
                tmp,
                timeout,
            )
            for s in "AB"
        }
        try:
            for side in "AB":
                try:
                    fp = workers[side].start()
                except WorkerLost as e:
                    _check_side(envs[side], None, str(e))
                    raise
                _check_side(envs[side], fp)
                fps[side] = fp
            for n, case in enumerate(order):
                if progress is not None:
                    progress("case", case, {"index": n, "n": len(order)})
                # What the cases after this one need at least: MIN_BLOCKS blocks each.
                reserve = (len(order) - n - 1) * MIN_BLOCKS * 4 * seg_ms
                cr = _one_case(
                    case,
                    index[case.id],
                    workers,
                    timer=timers.get(case.id),
                    seg_ms=seg_ms,
                    planned=opts.blocks,
                    threshold=threshold,
                    rng=rng,
                    room_ms=total_ms - reserve - spent,
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
        finally:
            for w in workers.values():
                w.close()
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
    comparison, stops = _compare(
        p.cases, done, env_a, env_b, threshold, interrupted, device, suite.name, design
    )
    comparison.meta.update(
        blocks=opts.blocks,
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
    )


def _one_case(
    case: Case,
    i: int,
    workers: dict[str, LiveWorker],
    *,
    timer: str | None,
    seg_ms: float,
    planned: int,
    threshold: float,
    rng: random.Random,
    room_ms: float,
    progress: ABProgress | None,
) -> CaseRun:
    """Prepare ``case`` on both workers, time it in blocks until decided or out of blocks."""
    cr = CaseRun(case)
    first = rng.choice("AB")
    try:
        for side in (first, "B" if first == "A" else "A"):
            w = workers[side]
            if not w.alive:
                w.start()
            ev = w.ask("prepare", i, timer=timer)
            cr.recs[side] = ev
            if ev.get("status") == "error":
                w.after_error()
            if ev.get("status") == "ok":
                timer = timer or (ev.get("extra") or {}).get("timer")
        if all((cr.recs.get(s) or {}).get("status") == "ok" for s in "AB"):
            _blocks(cr, i, workers, seg_ms, planned, threshold, rng, room_ms, progress)
    except WorkerLost as e:
        side = next((s for s in "AB" if not workers[s].alive), first)
        cr.recs[side] = {"status": "error", "error": str(e)}
    finally:
        for side in "AB":
            w = workers[side]
            if w.alive and side in cr.recs:
                try:
                    extra = w.ask("drop", i)
                    ok = cr.recs[side].get("status") == "ok"
                    if ok and extra.get("gpu_state"):
                        cr.recs[side].setdefault("extra", {}).update(
                            gpu_state=extra["gpu_state"], throttled=extra.get("throttled")
                        )
                except WorkerLost:
                    pass
    return cr


def _blocks(
    cr: CaseRun,
    i: int,
    workers: dict[str, LiveWorker],
    seg_ms: float,
    planned: int,
    threshold: float,
    rng: random.Random,
    room_ms: float,
    progress: ABProgress | None,
) -> None:
    for side in "AB":
        cr.recs[side]["extra"] = dict(cr.recs[side].get("extra") or {})
    while True:
        order = "ABBA" if rng.random() < 0.5 else "BAAB"
        segs: dict[str, list[list[float]]] = {"A": [], "B": []}
        for side in order:
            # Each block on new inputs, placed anew in memory (see Worker.refresh).
            fresh = bool(cr.blocks) and not segs[side]
            ev = workers[side].ask("time", i, budget_ms=seg_ms, fresh=fresh)
            if ev.get("status") == "error":
                workers[side].after_error()
                cr.recs[side] = {**cr.recs[side], "status": "error", "error": ev.get("error")}
                return
            samples = [float(x) for x in ev.get("samples") or [] if x and x > 0]
            if not samples:
                cr.recs[side] = {**cr.recs[side], "status": "error", "error": "no samples"}
                return
            segs[side].append(samples)
            cr.segments[side].append(samples)  # kept even if the block is not completed
            cr.spent_ms += float(ev.get("elapsed_ms") or 0.0)
        cr.blocks.append(block_ratio(segs["A"], segs["B"]))
        k = len(cr.blocks)
        cr.decision = block_decision(cr.blocks, threshold)
        if progress is not None:
            progress("block", cr.case, {"k": k, "decision": cr.decision})
        if cr.decision != "undecided":
            return
        if k >= planned:
            per_block = cr.spent_ms / k
            if room_ms - cr.spent_ms < per_block:
                return
            if not worth_extending(cr.blocks, threshold, EXTEND * planned):
                cr.decision = "undecided" if k >= EXTEND * planned else "too noisy"
                return


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
) -> tuple[Comparison, dict[str, int]]:
    """The comparison of the cases both builds timed; the untimed ones listed with why."""
    pairs: list[Any] = []
    not_timed: list[dict[str, str]] = []
    stops: dict[str, int] = {}
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
        pairs.append((_key(c), sides[0], sides[1], tuple(cr.blocks)))
    if not pairs and not interrupted:
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
