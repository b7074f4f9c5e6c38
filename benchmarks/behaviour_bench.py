"""Detection by behaviour (issue 16): F1, precision, recall, false alarms, tuning vs held-out.

Runs :func:`tritonwatch.analysis.nightly.analyse` on corpora from
:func:`tritonwatch.testing.make_corpus`: the TUNING parameter set (seeds 1, 2, ...) the rules
were developed on, and the HELD_OUT set (other seeds from 1001 and other parameter ranges) that
was never looked at while tuning; optionally on an independently built corpus (AR(1), heavy
tails) and a timing pass. Usage::

    python benchmarks/behaviour_bench.py                   # 20,000 series per set, 60 nights
    python benchmarks/behaviour_bench.py --series 4000 --independent 4000 --timing 100000

The mix is realistic rather than equal: 40% flat series, then steps 10%, banded 8%, clock,
drift, variance and windows 6% each, short and single-value 5%, multi and fresh 4% (weights in
``MIX``). Scoring (``score_corpus``): a step alert matches a true step or regression window of
the same sign within one night; a drift alert a true drift it overlaps; anything else is a false
alarm. "fixed" counts windows whose reversion was reported within one night. The two target rows
are steps >= 3% (either way) on step and flat series with noise <= 1%, and regression windows
>= 3% on window and flat series with noise <= 1%; smaller planted changes there count neither way.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tritonwatch.analysis.nightly import Analysis, analyse
from tritonwatch.testing import (
    BEHAVIOURS,
    HELD_OUT,
    TUNING,
    BehaviourScore,
    Corpus,
    CorpusParams,
    CorpusScore,
    make_corpus,
    score_corpus,
)

MIX = {
    "flat": 0.40,
    "step": 0.10,
    "window": 0.06,
    "multi": 0.04,
    "banded": 0.08,
    "clock": 0.06,
    "drift": 0.06,
    "variance": 0.06,
    "fresh": 0.04,
    "short": 0.05,
    "single": 0.05,
}


def alerts_of(an: Analysis) -> list[tuple[int, str, int, float, int | None]]:
    """The analysis as ``score_corpus`` reads it."""
    return [
        (a.row, a.kind, a.first_bad, a.ratio - 1, a.fixed_at if a.kind == "step" else a.end)
        for a in an.alerts
    ]


def corpus(n: int, nights: int, params: CorpusParams, seeds: Sequence[int]) -> Corpus:
    """Several seeds concatenated into one corpus (rows renumbered)."""
    parts = [
        make_corpus(
            n // len(seeds),
            nights,
            params=params,
            behaviours=list(MIX),
            weights=list(MIX.values()),
            seed=s,
        )
        for s in seeds
    ]
    from dataclasses import replace

    events, off = [], 0
    for p in parts:
        events += [replace(e, row=e.row + off) for e in p.events]
        off += p.values.shape[0]
    return Corpus(
        values=np.concatenate([p.values for p in parts]),
        clocks=np.concatenate([p.clocks for p in parts]),
        behaviour=np.concatenate([p.behaviour for p in parts]),
        noise=np.concatenate([p.noise for p in parts]),
        events=events,
    )


def _row(name: str, b: BehaviourScore) -> str:
    f1 = f"{b.f1:.3f}" if b.events else "  -  "
    fixed = f"{b.fixed}/{b.windows}" if b.windows else "-"
    return (
        f"| {name:<22} | {b.series:>6} | {b.events:>6} | {b.tp:>5} | {b.fp:>4} | {b.fn:>5} | "
        f"{b.precision:.3f} | {b.recall:.3f} | {f1} | {b.exact:>5} | {fixed:>9} | "
        f"{b.false_alarms:6.3f} |"
    )


def table(title: str, sc: CorpusScore) -> str:
    head = (
        f"\n{title}\n\n| behaviour              | series | events |    TP |   FP |    FN | "
        "prec. | recall |  F1   | exact | fixed     | FA/1k  |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [_row(k, v) for k, v in sc.by_behaviour.items()]
    rows += [
        _row("POOLED", sc.pooled),
        _row("target: steps>=3%,<=1%", sc.steps_target),
        _row("target: windows>=3%", sc.windows_target),
    ]
    return "\n".join([head, *rows])


def notes_summary(c: Corpus, an: Analysis) -> str:
    """How the notes line up with the truth (they are not alerts, so not in the table)."""
    stab = {n.row for n in an.notes if n.kind == "stability"}
    var_rows = set(np.flatnonzero(c.behaviour == "variance").tolist())
    pend = {n.row for n in an.notes if n.kind == "pending"}
    fresh = set(np.flatnonzero(c.behaviour == "fresh").tolist())
    alerted = {a.row for a in an.alerts}
    fresh_missed = fresh - alerted
    expl = sum(len(n.detail["nights"]) for n in an.notes if n.kind == "explained")
    return (
        f"notes: stability on {len(stab & var_rows)}/{len(var_rows)} variance-change series "
        f"(and on {len(stab - var_rows)} other series of {c.values.shape[0]}); pending on "
        f"{len(pend & fresh_missed)}/{len(fresh_missed)} fresh-step series not yet alerted; "
        f"{expl} nights explained by a lower clock; {len(an.banded)} series modelled as banded"
    )


def run_set(name: str, c: Corpus, jobs: int) -> tuple[CorpusScore, float]:
    t0 = time.perf_counter()
    an = analyse(c.values, c.clocks, jobs=jobs)
    dt = time.perf_counter() - t0
    sc = score_corpus(c, alerts_of(an))
    print(table(f"### {name} ({c.values.shape[0]:,} series x {c.values.shape[1]} nights)", sc))
    print(f"\n{notes_summary(c, an)}; pass took {dt:.1f} s")
    return sc, dt


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--series", type=int, default=20_000, help="series per set")
    ap.add_argument("--nights", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=2, help="seeds per set")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--independent", type=int, default=0, help="series of the independent corpus")
    ap.add_argument("--timing", type=int, default=0, help="series in a timing pass (0: none)")
    args = ap.parse_args(argv)
    assert set(MIX) == set(BEHAVIOURS)
    print(f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")
    run_set("TUNING", corpus(args.series, args.nights, TUNING, range(1, args.seeds + 1)), args.jobs)
    run_set(
        "HELD-OUT",
        corpus(args.series, args.nights, HELD_OUT, range(1001, 1001 + args.seeds)),
        args.jobs,
    )
    if args.independent:
        sys.path.insert(0, str(Path(__file__).parent))
        from independent_corpus import make_independent

        run_set("INDEPENDENT (AR(1), t tails)", make_independent(args.independent), args.jobs)
    if args.timing:
        import resource

        def workers_cpu() -> float:
            k = resource.getrusage(resource.RUSAGE_CHILDREN)
            return k.ru_utime + k.ru_stime

        c = corpus(args.timing, args.nights, HELD_OUT, [4242])
        load = os.getloadavg()[0]
        cpu0, kids0 = time.process_time(), workers_cpu()
        t0 = time.perf_counter()
        an = analyse(c.values, c.clocks, jobs=args.jobs)
        print(
            f"\ntiming: {args.timing:,} series x {args.nights} nights (held-out mix, "
            f"{an.n_screened:,} screened) in {time.perf_counter() - t0:.1f} s wall; CPU "
            f"{time.process_time() - cpu0:.1f} s in this process + {workers_cpu() - kids0:.1f} s "
            f"in workers; {len(an.alerts):,} alerts; jobs={args.jobs}; load average {load:.1f} "
            "when it started"
        )


if __name__ == "__main__":
    main()
