"""The interleaved A/B driver behind ``tritonwatch compare --a ENV --b ENV``.

Both builds run the same planned cases on the same device, each in its own worker processes
started with its own Python (so two Triton builds never share a process), in rounds ordered
A B B A A B B A ...: slow drift (clocks, temperature, other load) then hits both sides alike.
Each round gets ``budget / rounds`` per case, so a side's total budget equals one ``run``'s.
The two sides become two stored runs plus a comparison (see :mod:`tritonwatch.analysis.compare_runs`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import settings
from ..analysis.compare import CaseKey, Comparison, Side, compare_sides
from ..errors import BenchError, UsageError
from ..runformat import Run, new_run_id, now
from . import roofline
from .runner import (
    CaseOutcome,
    Record,
    build_run,
    execute,
    outcomes,
    plan,
    previous_timers,
    sampling,
    shuffled,
)
from .spec import Case, DeviceInfo
from .timing import TIMERS

# progress(kind, case, record, side, round_index): kind as in runner.Progress plus "round".
ABProgress = Callable[[str, Case | None, Record | None, str, int], None]


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
    rounds: int = 2
    budget_ms: float | None = None
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
    schedule: str
    interrupted: bool
    elapsed_s: float
    stored: Any = None
    n_cases: int = 0
    round_seconds: list[tuple[str, float]] = field(default_factory=list)


def schedule(rounds: int) -> str:
    """``rounds`` rounds per side as ``ABBA ABBA ...``: each pair alternates who goes first."""
    if rounds < 1:
        raise UsageError(f"--rounds {rounds}: give at least 1 round per side")
    return "".join("AB" if k % 2 == 0 else "BA" for k in range(rounds))


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


def _merge(case: Case, recs: list[Record]) -> Record:
    """One record from a side's rounds: ok only if every round was; all samples kept."""
    bad = next((r for r in recs if r.status == "incorrect"), None) or next(
        (r for r in recs if r.status != "ok"), None
    )
    first = recs[0]
    if bad is not None:
        return Record(case, bad.status, error=bad.error, correct=bad.correct, extra=bad.extra)
    samples = [x for r in recs for x in (r.samples or [])]
    extra = {**first.extra, "rounds": [len(r.samples or []) for r in recs]}
    return Record(case, "ok", samples, None, True, first.flops, first.bytes, extra)


def _check_side(env: BuildEnv, fp: dict[str, Any] | None, recs: list[Record]) -> None:
    """The worker really ran ``env``'s Triton (not the host's it could have inherited)."""
    if fp is None:
        errors = [r.error for r in recs if r.error]
        why = errors[0] if errors else "no worker started"
        raise BenchError(
            f"environment {env.name} cannot run the benchmark worker ({why[:300]}); it needs "
            "torch and tritonwatch too: make it with `tritonwatch env create NAME --triton "
            "VERSION --system-site-packages`"
        )
    seen = ((fp.get("build") or {}).get("triton") or {}).get("version")
    if seen != env.triton_version:
        raise BenchError(
            f"environment {env.name}: its worker imported Triton {seen}, not the environment's "
            f"{env.triton_version}; another Triton shadows it (check PYTHONPATH)"
        )


def run_ab(
    opts: ABOptions,
    store: Any,
    progress: ABProgress | None = None,
    on_plan: Callable[[int, DeviceInfo, str], None] | None = None,
) -> ABOutcome:
    """Plan once, measure both builds in interleaved rounds, store two runs and the comparison."""
    from .. import plugins
    from ..analysis.compare_runs import save_comparison

    t0 = time.monotonic()
    order_ab = schedule(opts.rounds)
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
    if on_plan is not None:
        on_plan(len(p.cases), device, order_ab)
    gpus = [opts.gpu] if opts.gpu is not None else None
    envs = {"A": env_a, "B": env_b}
    recs: dict[str, dict[str, list[Record]]] = {"A": {}, "B": {}}  # by case id
    fps: dict[str, dict[str, Any]] = {}
    started = {"A": now(), "B": now()}
    interrupted = False
    round_seconds: list[tuple[str, float]] = []
    # One timer per case for every round of both sides: the stored choice if this machine has
    # one, else the first round's. Comparing an event-timed side with a graph-timed one would
    # report the timers' difference as the builds'.
    timers = previous_timers(store, device, p.cases)
    for i, side in enumerate(order_ab):
        pair = i // 2
        order = shuffled(p.cases, seed + pair)
        env = envs[side]

        def relay(
            kind: str, case: Case | None, rec: Record | None, s: str = side, k: int = i
        ) -> None:
            if progress is not None:
                progress(kind, case, rec, s, k)

        if progress is not None:
            progress("round", None, None, side, i)
        tr = time.monotonic()
        got, fp, interrupted = execute(
            order,
            device,
            budget_ms=budget / opts.rounds,
            target_ci=target_ci,
            seed=seed,
            gpus=gpus,
            plugins=opts.plugins,
            progress=relay,
            python=env.python,
            timers=dict(timers),
        )
        for r in got:
            if r.status == "ok" and (r.extra or {}).get("timer") in TIMERS:
                timers.setdefault(r.case.id, r.extra["timer"])
        round_seconds.append((side, time.monotonic() - tr))
        if side not in fps:
            _check_side(env, fp, got)
            fps[side] = fp or {}
        for r in got:
            recs[side].setdefault(r.case.id, []).append(r)
        if interrupted:
            break
    finished = now()
    runs: dict[str, Run] = {}
    for side, env in envs.items():
        merged = [_merge(c, recs[side][c.id]) for c in p.cases if recs[side].get(c.id)]
        fp = fps.get(side) or {}
        peaks = _peaks(store, device, fp)
        outs: list[CaseOutcome] = outcomes(merged, peaks)
        for case, reason in p.skipped:
            outs.append(CaseOutcome(Record(case, "skipped", error=reason)))
        info: dict[str, Any] = {
            "id": str(new_run_id()),
            "started_at": started[side].isoformat(),
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
            "case_order": [c.id for c in shuffled(p.cases, seed)],
            "peak_source": peaks.source if peaks else None,
            "gpus": gpus,
            "compare": {
                "side": side,
                "env": env.name,
                "python": env.python,
                "schedule": order_ab,
                "rounds": opts.rounds,
            },
        }
        runs[side] = build_run(
            outs,
            fp,
            run_info={k: v for k, v in info.items() if v is not None},
            peak_source=peaks.source if peaks else None,
        )
    pairs = []
    not_timed = 0
    why_not_timed = ""
    for c in p.cases:
        merged_sides = [_merge(c, recs[s][c.id]) for s in "AB" if recs[s].get(c.id)]
        if len(merged_sides) == 2 and all(m.status == "skipped" for m in merged_sides):
            not_timed += 1  # e.g. Triton under the CPU interpreter: checked, not timed
            why_not_timed = why_not_timed or (merged_sides[0].error or "")
            continue
        sides = []
        for side in "AB":
            rs = recs[side].get(c.id) or []
            if not rs:
                sides.append(Side("error", (), "not measured (interrupted)"))
                continue
            m = _merge(c, rs)
            rounds = tuple(np.asarray(r.samples or [], dtype=np.float64) for r in rs)
            sides.append(Side(m.status, rounds if m.status == "ok" else (), m.error))
        pairs.append((_key(c), sides[0], sides[1]))
    if not pairs and not interrupted:
        # Nothing was timed by both builds: a comparison of nothing must not look like "same".
        why = f" ({why_not_timed.split(' (')[0]})" if why_not_timed else ""
        raise BenchError(
            f"nothing to compare: none of the {len(p.cases)} case(s) was timed by both builds"
            f"{why}; nothing stored. On a CPU only torch providers are timed "
            "(--provider torch)"
        )
    meta = {
        "schedule": order_ab,
        "rounds": opts.rounds,
        "device": device.kind,
        "suite": suite.name,
        "triton_a": env_a.triton_version,
        "triton_b": env_b.triton_version,
        "interrupted": interrupted,
        "not_timed": not_timed,
        "not_timed_reason": why_not_timed.split(" (")[0] or None,
        "timed_providers": sorted({k.provider for k, _, _ in pairs}),
    }
    comparison = compare_sides(
        pairs,
        threshold=threshold,
        label_a=f"{env_a.name} (triton {env_a.triton_version})",
        label_b=f"{env_b.name} (triton {env_b.triton_version})",
        meta=meta,
    )
    stored = save_comparison(store, comparison, runs["A"], runs["B"], kind="ab")
    return ABOutcome(
        comparison=comparison,
        env_a=env_a,
        env_b=env_b,
        run_a=runs["A"],
        run_b=runs["B"],
        schedule=order_ab,
        interrupted=interrupted,
        elapsed_s=time.monotonic() - t0,
        stored=stored,
        n_cases=len(p.cases),
        round_seconds=round_seconds,
    )


def _peaks(store: Any, device: DeviceInfo, fp: dict[str, Any]) -> roofline.Peaks | None:
    if not device.is_gpu:
        return None
    m = fp.get("machine") or {}
    name = settings.get("machine_name") or m.get("name") or "unknown"
    measured = store.series.peaks(name, device.kind, m.get("gpu_model"), m.get("gpu_count"))
    return roofline.peaks_for(m.get("gpu_model"), measured)
