"""Timing one case of an A/B on worker pairs: prepare it on every worker, then ABBA blocks,
a round at a time, until the case is decided, out of blocks or out of budget
(:mod:`tritonwatch.bench.ab` runs the comparison around it)."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..analysis.compare import MIN_BLOCKS, stop_rule
from ..runformat import MAX_SAMPLES
from .live import LiveWorker, WorkerLost
from .pool import record_from_event
from .runner import Record
from .spec import Case

EXTEND = 3  # an undecided case may run up to this many times its planned blocks
# A block one of whose sides disagrees with itself by more than this many times the case's
# median such disagreement (and by more than half the threshold) is timed again: see _blocks.
RETIME = 4.0

# progress(kind, case, info): kind is "case" (info: index, n), "block" (k, decision) or
# "done" (status, blocks, decision).
ABProgress = Callable[[str, Case, dict[str, Any]], None]


@dataclass
class CaseRun:
    """One case as both builds saw it: each side's record, segments and the block ratios."""

    case: Case
    recs: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: dict[str, list[list[float]]] = field(default_factory=lambda: {"A": [], "B": []})
    blocks: list[float] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # the worker pair of each block
    decision: str = "undecided"
    spent_ms: float = 0.0
    retimed: int = 0  # blocks timed again after a transient hit them (see _blocks)
    timed_on: set[int] = field(default_factory=set)  # pairs that timed a block of it so far

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
                "workers": len(set(self.groups)) or 1,
                "stop": self.decision,
            }
            if self.retimed:
                rec.extra["blocks_retimed"] = self.retimed
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


def segment_level(samples: Sequence[float]) -> float:
    """A segment's time as a block compares it: the mean of its fastest half (of one sample,
    two or three: the fastest).

    Interference (another process, the VM's host taking the core, a core slowing down) only
    ever adds time to a call and hits some of a segment's calls and not others: the fast half
    is where the code's own time shows, while the median moves whenever the share of calls hit
    nears half. Where the noise is symmetric instead (a GPU's event timings) the fast half's
    mean spreads a little less than the median (0.26 against 0.27 standard deviations for 20
    normal samples). Not the minimum nor a low percentile: they spread more and depend on how
    many calls a segment held, which differs between a slower build and a faster one.
    Measured in docs/compare.md, "The fast half of a segment".
    """
    x = np.sort(np.asarray(samples, dtype=np.float64))
    return float(x[: max(1, len(x) // 2)].mean())


# Statistics a block could take of its segments instead, scored on the same blocks against
# segment_level by benchmarks/segment_level_bench.py (CPU) and scripts/gpu-check (GPU).
LEVEL_CANDIDATES: dict[str, Callable[[Sequence[float]], float]] = {
    "median": lambda x: float(np.median(x)),
    "fastest half": segment_level,
    "25th percentile": lambda x: float(np.quantile(x, 0.25)),
    "10th percentile": lambda x: float(np.quantile(x, 0.10)),
    "minimum": lambda x: float(np.min(x)),
}


def ratios_by_level(
    segs_a: Sequence[Sequence[float]], segs_b: Sequence[Sequence[float]]
) -> dict[str, float]:
    """One block's log time ratio (B over A) under each of LEVEL_CANDIDATES."""
    return {
        name: float(np.mean(_log_levels(segs_b, level)) - np.mean(_log_levels(segs_a, level)))
        for name, level in LEVEL_CANDIDATES.items()
    }


def _log_levels(
    segs: Sequence[Sequence[float]], level: Callable[[Sequence[float]], float] = segment_level
) -> list[float]:
    return [math.log(level(s)) for s in segs]


_RECORDERS: list[list[dict[str, Any]]] = []


@contextlib.contextmanager
def record_blocks() -> Iterator[list[dict[str, Any]]]:
    """Every block timed inside (those timed again too), as it was timed: its case id, worker
    pair and log ratio under each of LEVEL_CANDIDATES. For measuring the statistic
    (benchmarks/segment_level_bench.py, scripts/gpu-check); the comparison does not use it."""
    seen: list[dict[str, Any]] = []
    _RECORDERS.append(seen)
    try:
        yield seen
    finally:
        _RECORDERS.remove(seen)


def block_ratio(
    segs_a: Sequence[Sequence[float]], segs_b: Sequence[Sequence[float]]
) -> tuple[float, float]:
    """One block's log time ratio (B over A: the mean log :func:`segment_level`, B's minus
    A's), and how far a build disagreed with itself in it: the larger, over the two sides, of
    the spread of its log segment levels.

    The second does not depend on how the builds differ (both segments of a side time the same
    code on the same inputs), only on what changed in the machine during the block.
    """
    logs = [_log_levels(segs_a), _log_levels(segs_b)]
    ratio = sum(logs[1]) / len(logs[1]) - sum(logs[0]) / len(logs[0])
    return ratio, max(max(side) - min(side) for side in logs)


def time_case(
    case: Case,
    i: int,
    workers: dict[str, list[LiveWorker]],
    *,
    timer: str | None,
    seg_ms: float,
    planned: int,
    threshold: float,
    rng: random.Random,
    room_ms: float,
    progress: ABProgress | None,
) -> CaseRun:
    """Prepare ``case`` on every worker, time it in blocks until decided or out of blocks.

    The side that prepares first is drawn at random; its timer is handed to every other
    worker. A side's record is its first worker's, or the first failure among its workers.
    A case too big for the device to hold once per worker (out of memory in a worker after
    the first) is timed on the pairs that hold it, or on the first pair alone when fewer
    than MIN_BLOCKS do; the record says so.
    """
    cr = CaseRun(case)
    first = rng.choice("AB")
    held = len(workers["A"])  # pairs whose both workers hold the case
    try:
        for side in (first, "B" if first == "A" else "A"):
            for k, w in enumerate(workers[side]):
                if k >= held:
                    break
                if not w.alive:
                    w.start()
                # The case's first prepare warms it up (device clocks, caches: the machine's
                # state); the others run their three calls (their own first-call costs).
                brief = {} if side == first and k == 0 else {"warm_ms": 0.0}
                ev = w.ask("prepare", i, timer=timer, **brief)
                if _out_of_memory(ev) and k > 0:
                    held = k
                    break
                if _out_of_memory(ev) and side != first and held > 1:
                    # The first side's extra copies took the room: one pair, and try again.
                    held = 1
                    for x in workers[first][1:]:
                        if x.alive:
                            x.ask("drop", i)
                    ev = w.ask("prepare", i, timer=timer, **brief)
                if side not in cr.recs or ev.get("status") != "ok":
                    cr.recs[side] = ev
                if ev.get("status") != "ok":
                    if ev.get("status") == "error":
                        w.after_error()
                    break
                timer = timer or (ev.get("extra") or {}).get("timer")
        if all((cr.recs.get(s) or {}).get("status") == "ok" for s in "AB"):
            pairs = len(workers["A"])
            if held < pairs:
                held = held if held >= MIN_BLOCKS else 1
                for side in "AB":
                    cr.recs[side].setdefault("extra", {})["fewer_workers"] = (
                        f"timed on {held} of {pairs} worker pairs: out of memory with more"
                    )
                for w in (*workers["A"][held:], *workers["B"][held:]):
                    if w.alive:
                        w.ask("drop", i)  # free what they hold while the others time
            chosen = {s: workers[s][:held] for s in "AB"}
            _blocks(cr, i, chosen, seg_ms, planned, threshold, rng, room_ms, progress)
    except WorkerLost as e:
        side = next((s for s in "AB" if not all(w.alive for w in workers[s])), first)
        cr.recs[side] = {"status": "error", "error": str(e)}
    finally:
        for side in "AB":
            for k, w in enumerate(workers[side]):
                if not (w.alive and side in cr.recs):
                    continue
                try:
                    extra = w.ask("drop", i)
                    ok = cr.recs[side].get("status") == "ok"
                    if k == 0 and ok and extra.get("gpu_state"):
                        cr.recs[side].setdefault("extra", {}).update(
                            gpu_state=extra["gpu_state"], throttled=extra.get("throttled")
                        )
                except WorkerLost:
                    pass
    return cr


def _blocks(
    cr: CaseRun,
    i: int,
    workers: dict[str, list[LiveWorker]],
    seg_ms: float,
    planned: int,
    threshold: float,
    rng: random.Random,
    room_ms: float,
    progress: ABProgress | None,
) -> None:
    """Rounds of blocks until the case stops. After each round, a block that a transient hit is
    timed again on its pair, once, and the one of the two that disagrees less with itself
    counts.

    A transient (another process, a core's speed changing for a few milliseconds) that covers
    one to three segments of a block moves its ratio by up to half its size, and the order
    cannot cancel it; it also makes a side's two segments disagree (only one that covers
    exactly the middle two of ``ABBA`` does not). How much a side disagrees with itself does
    not depend on how the builds differ, so choosing blocks by it cannot make a difference
    appear or vanish: the pairs' units stay independent and the test keeps its level. A
    transient shows as a disagreement RETIME times the case's median, and more than half the
    threshold (a smaller one cannot move a ratio enough to matter).
    """
    for side in "AB":
        cr.recs[side]["extra"] = dict(cr.recs[side].get("extra") or {})
    pairs = len(workers["A"])
    groups = cr.groups if pairs > 1 else ()
    seen: list[float] = []  # every block's self-disagreement so far, this case

    def block(j: int) -> tuple[float, float] | None:
        return _block(cr, i, workers["A"][j], workers["B"][j], j, seg_ms, rng)

    while True:
        # A round: one block on every worker pair, the pairs in random order.
        got: list[tuple[int, float, float]] = []
        for j in rng.sample(range(pairs), pairs):
            b = block(j)
            if b is None:
                return
            got.append((j, *b))
        seen += [s for _, _, s in got]
        cut = max(threshold / 2, RETIME * float(np.median(seen)))
        for n, (j, _, s) in enumerate(got):
            if s > cut:
                b = block(j)
                if b is None:
                    return
                cr.retimed += 1
                seen.append(b[1])
                if b[1] < s:
                    got[n] = (j, *b)
        for j, ratio, _ in got:
            cr.blocks.append(ratio)
            cr.groups.append(j)
            if progress is not None:
                progress("block", cr.case, {"k": len(cr.blocks), "decision": cr.decision})
        k = len(cr.blocks)
        stop = stop_rule(cr.blocks, threshold, planned, EXTEND * planned, groups)
        if stop is not None:
            cr.decision = stop
            return
        if k >= planned:
            per_round = cr.spent_ms / k * pairs
            if room_ms - cr.spent_ms < per_round:
                return


def _block(
    cr: CaseRun,
    i: int,
    wa: LiveWorker,
    wb: LiveWorker,
    pair: int,
    seg_ms: float,
    rng: random.Random,
) -> tuple[float, float] | None:
    """One ABBA or BAAB block on one worker pair: its log ratio and how far a side disagreed
    with itself (:func:`block_ratio`), or None if a side failed."""
    order = "ABBA" if rng.random() < 0.5 else "BAAB"
    segs: dict[str, list[list[float]]] = {"A": [], "B": []}
    timed_before = pair in cr.timed_on
    cr.timed_on.add(pair)
    for side in order:
        w = wa if side == "A" else wb
        # Each block on new inputs, placed anew in memory (see Worker.refresh).
        fresh = timed_before and not segs[side]
        ev = w.ask("time", i, budget_ms=seg_ms, fresh=fresh)
        if ev.get("status") == "error":
            w.after_error()
            cr.recs[side] = {**cr.recs[side], "status": "error", "error": ev.get("error")}
            return None
        samples = [float(x) for x in ev.get("samples") or [] if x and x > 0]
        if not samples:
            cr.recs[side] = {**cr.recs[side], "status": "error", "error": "no samples"}
            return None
        segs[side].append(samples)
        cr.segments[side].append(samples)  # kept even if the block is not completed
        cr.spent_ms += float(ev.get("elapsed_ms") or 0.0)
    if _RECORDERS:
        seen = {"case": cr.case.id, "pair": pair, "ratios": ratios_by_level(segs["A"], segs["B"])}
        for rec in _RECORDERS:
            rec.append(seen)
    return block_ratio(segs["A"], segs["B"])


def _out_of_memory(ev: dict[str, Any]) -> bool:
    """A prepare that failed because the device's memory is full (torch's OutOfMemoryError)."""
    return ev.get("status") == "error" and "out of memory" in str(ev.get("error") or "").lower()


def pair_groups(cr: CaseRun) -> tuple[int, ...]:
    """The worker pair of each block, or () where one pair timed them all."""
    return tuple(cr.groups) if len(set(cr.groups)) > 1 else ()
