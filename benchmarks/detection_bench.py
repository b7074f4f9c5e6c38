"""Detection benchmark: precision, recall, F1, false alarms, time to detect and runtime.

Generates labelled histories with :func:`tritonwatch.testing.make_histories` (realistic GPU noise
with planted steps), runs tritonwatch's detector and, in the same run, the common practice (a
fixed 5% threshold on the nightly median against the median of the previous 7 nights), and
prints both. Usage::

    python benchmarks/detection_bench.py                      # 100,000 series x 60 nights
    python benchmarks/detection_bench.py --series 20000 --jobs 1

Scoring: a detection is a true positive when its series has a planted step within one night of
it in the same direction (each step matches once); anything else is a false alarm. Per cell
(step size x noise), precision charges the cell with its own false alarms plus its share of the
false alarms on step-free series of that noise level (in proportion to its planted steps), so
the F1 is what a dataset of that cell's steps and its noise level's flat series would score.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import numpy as np

from tritonwatch.analysis.changepoint import DetectConfig, detect_changes
from tritonwatch.testing import Histories, PlantedStep, make_histories, score

STEPS = (0.01, 0.02, 0.03, 0.05, 0.10, 0.25)
NOISES = (0.003, 0.005, 0.01, 0.02, 0.05)
Found = list[tuple[int, int, float]]


def threshold_baseline(values: np.ndarray, threshold: float = 0.05, lookback: int = 7) -> Found:
    """The common practice: alarm when a night's median is > threshold off the previous nights'.

    Consecutive alarms in the same direction count once (the onset), which is kinder to the
    baseline than alarming every night until its reference catches up.
    """
    found: Found = []
    s, n = values.shape
    for night in range(1, n):
        lo = max(0, night - lookback)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ref = np.nanmedian(values[:, lo:night], axis=1)
        rel = values[:, night] / ref - 1
        hit = np.flatnonzero(np.abs(rel) > threshold)
        for r in hit:
            found.append((int(r), night, float(rel[r])))
    found.sort()
    out: Found = []
    last: dict[int, tuple[int, float]] = {}
    for r, night, rel in found:
        prev = last.get(r)
        last[r] = (night, rel)
        if prev and prev[0] == night - 1 and np.sign(prev[1]) == np.sign(rel):
            continue
        out.append((r, night, rel))
    return out


def _step_of(t: PlantedStep) -> float:
    """The nominal step size of a planted step (improvements are planted as 1/(1+s) - 1)."""
    mag = t.size if t.size > 0 else -t.size / (1 + t.size)
    return min(STEPS, key=lambda s: abs(s - mag))


def cells(hist: Histories, found: Found, nights: int) -> dict[str, object]:
    """Per (step, noise) recall/precision/F1 and false alarms per 1,000 series-nights."""
    truth_rows = {t.row: t for t in hist.truth}
    flat_fp: dict[float, int] = {}
    by_row: dict[int, Found] = {}
    for f in found:
        by_row.setdefault(f[0], []).append(f)
        if f[0] not in truth_rows:
            nz = float(hist.noise[f[0]])
            flat_fp[nz] = flat_fp.get(nz, 0) + 1
    out: dict[tuple[float, float], tuple[float, float, float, int]] = {}
    for nz in NOISES:
        steps_here = [t for t in hist.truth if t.noise == nz]
        for st in STEPS:
            tr = [t for t in steps_here if _step_of(t) == st]
            if not tr:
                continue
            rows = {t.row for t in tr}
            sc = score([f for r in rows for f in by_row.get(r, [])], tr)
            share = flat_fp.get(nz, 0) * len(tr) / max(1, len(steps_here))
            prec = sc.tp / (sc.tp + sc.fp + share) if sc.tp + sc.fp + share else 1.0
            f1 = 2 * prec * sc.recall / (prec + sc.recall) if prec + sc.recall else 0.0
            out[(st, nz)] = (sc.recall, prec, f1, len(tr))
    total = score(found, hist.truth)
    fa = {
        nz: 1000
        * (
            flat_fp.get(nz, 0)
            + sum(
                1
                for f in found
                if f[0] in truth_rows
                and truth_rows[f[0]].noise == nz
                and not _matches(f, truth_rows[f[0]])
            )
        )
        / (np.sum(hist.noise == nz) * nights)
        for nz in NOISES
    }
    return {
        "cells": out,
        "total": total,
        "fa": fa,
        "fa_all": 1000 * total.fp / (hist.values.shape[0] * nights),
    }


def _matches(f: tuple[int, int, float], t: PlantedStep) -> bool:
    return abs(f[1] - t.night) <= 1 and np.sign(f[2]) == np.sign(t.size)


def print_table(name: str, res: dict[str, object]) -> None:
    c: dict[tuple[float, float], tuple[float, float, float, int]] = res["cells"]  # type: ignore[assignment]
    print(f"\n== {name}: recall / precision / F1 by step size (rows) and noise (columns)")
    print("step   " + "".join(f"{'noise ' + format(100 * nz, '.1f') + '%':>22}" for nz in NOISES))
    for st in STEPS:
        row = f"{100 * st:>4.0f}%  "
        for nz in NOISES:
            v = c.get((st, nz))
            row += (
                f"{'-':>22}"
                if v is None
                else f"{v[0]:>7.2f} {v[1]:>5.2f} {v[2]:>5.2f} n={v[3]:<3d}"
            )
        print(row)
    fa: dict[float, float] = res["fa"]  # type: ignore[assignment]
    print(
        "false alarms / 1,000 series-nights by noise: "
        + ", ".join(f"{100 * nz:.1f}%: {fa[nz]:.3f}" for nz in NOISES)
    )
    t = res["total"]
    print(
        f"overall: TP {t.tp}  FP {t.fp}  FN {t.fn}  precision {t.precision:.3f}  "  # type: ignore[attr-defined]
        f"recall {t.recall:.3f}  F1 {t.f1:.3f}  false alarms/1,000 series-nights "  # type: ignore[attr-defined]
        f"{res['fa_all']:.3f}"
    )


def target_f1(res: dict[str, object]) -> tuple[float, float]:
    """Pooled F1 and the worst cell's F1 over steps >= 3% at noise <= 1%."""
    c: dict[tuple[float, float], tuple[float, float, float, int]] = res["cells"]  # type: ignore[assignment]
    sel = [(k, v) for k, v in c.items() if k[0] >= 0.03 and k[1] <= 0.01]
    n = sum(v[3] for _, v in sel)
    rec = sum(v[0] * v[3] for _, v in sel) / n
    prec = sum(v[1] * v[3] for _, v in sel) / n
    return 2 * rec * prec / (rec + prec), min(v[2] for _, v in sel)


def time_to_detect(
    n_series: int, nights: int, cfg: DetectConfig, seed: int, jobs: int, max_delay: int = 5
) -> dict[int, float]:
    """Share of steps (>= 3%, noise <= 1%) found by each number of nights after landing.

    For each delay d, every series is cut after night ``step + d`` (step-free series at a
    random night) and one full pass runs over all of them, so FDR control sees a realistic mix.
    Delay 0 is the night the step landed.
    """
    hist = make_histories(n_series, nights, seed=seed + 1, min_after=max_delay + 1)
    sel = {t.row: t for t in hist.truth if _step_of(t) >= 0.03 and t.noise <= 0.01}
    rng = np.random.default_rng(seed)
    cut_flat = rng.integers(nights // 2, nights, size=n_series)
    stepped = {t.row: t.night for t in hist.truth}
    found_by: dict[int, int] = {}
    for d in range(max_delay + 1):
        v = hist.values.copy()
        for r in range(n_series):
            stop = stepped[r] + d + 1 if r in stepped else int(cut_flat[r])
            v[r, stop:] = np.nan
        for c in detect_changes(v, cfg, with_ci=False, jobs=jobs):
            t = sel.get(c.row)
            if t and c.row not in found_by and _matches((c.row, c.first_bad, c.ratio - 1), t):
                found_by[c.row] = d
    return {
        d: sum(1 for x in found_by.values() if x <= d) / max(1, len(sel))
        for d in range(max_delay + 1)
    }


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the worker processes)."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--nights", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument(
        "--ttd-series",
        type=int,
        default=20_000,
        help="series in each time-to-detect pass (0 skips it)",
    )
    args = ap.parse_args(argv)
    cfg = DetectConfig()
    t0 = time.perf_counter()
    hist = make_histories(args.series, args.nights, seed=args.seed)
    gen = time.perf_counter() - t0
    print(
        f"{args.series:,} series x {args.nights} nights, {len(hist.truth):,} planted steps, "
        f"generated in {gen:.1f} s; {args.jobs} worker process(es) on {os.cpu_count()} CPU(s)"
    )
    load_before = os.getloadavg()[0]
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    changes = detect_changes(hist.values, cfg, with_ci=True, jobs=args.jobs)
    runtime = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    ours: Found = [(c.row, c.first_bad, c.ratio - 1) for c in changes]
    t0 = time.perf_counter()
    base = threshold_baseline(hist.values)
    base_rt = time.perf_counter() - t0
    r_ours = cells(hist, ours, args.nights)
    r_base = cells(hist, base, args.nights)
    print_table("tritonwatch (E-Divisive + guards + FDR)", r_ours)
    print_table("baseline (fixed 5% threshold on the median vs previous 7 nights)", r_base)
    f_ours, worst_ours = target_f1(r_ours)
    f_base, worst_base = target_f1(r_base)
    print("\n== targets")
    print(
        f"F1, steps >= 3% at noise <= 1%: tritonwatch {f_ours:.3f} (worst cell {worst_ours:.3f}), "
        f"5% threshold {f_base:.3f} (worst cell {worst_base:.3f})"
    )
    print(
        f"false alarms / 1,000 series-nights: tritonwatch {r_ours['fa_all']:.3f}, "
        f"5% threshold {r_base['fa_all']:.3f}"
    )
    print(
        f"runtime of one detection pass: {runtime:.1f} s wall, {cpu:.1f} s CPU (CIs included; "
        f"load average {load_before:.1f} on {os.cpu_count()} CPUs when it started); "
        f"5% threshold {base_rt:.1f} s"
    )
    if args.ttd_series:
        t0 = time.perf_counter()
        ttd = time_to_detect(args.ttd_series, args.nights, cfg, args.seed, args.jobs)
        print(
            "time to detect (steps >= 3%, noise <= 1%): share found by N nights after the "
            "step landed: "
            + ", ".join(f"{d}: {v:.2f}" for d, v in ttd.items())
            + f"  [{time.perf_counter() - t0:.0f} s]"
        )


if __name__ == "__main__":
    main()
