"""Measure the A/B method on this machine: the A/A false-positive rate, the detection rate of a
planted slowdown, and what a comparison costs relative to one run.

    python benchmarks/compare_bench.py [--reps 3] [--suite smoke] [--provider torch]
    python benchmarks/compare_bench.py --suite nightly --provider triton --device cuda --parts aa

The planted part always times a CPU spin (seeds 100+, apart from the A/A's). With no GPU these are CPU figures (torch-timed cases; Triton kernels only run under the
interpreter and are not timed). Prints one block of figures; writes nothing outside a temp dir.

Cost: the mean comparison over the median of runs timed one before each comparison, after one
untimed run (a process's first run pays one-time costs); and both again as commands, each
starting its own Python, as a user runs them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PLANTED = HERE.parent / "tests" / "compare" / "plantedops.py"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson 95% interval of a rate k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (max(0.0, mid - half), min(1.0, mid + half))


def _install_planted(site: Path) -> Path:
    """The test suite's planted-slowdown operator as an installed plugin, plus its suite file."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLANTED, site / "plantedops.py")
    dist = site / "tw_planted-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tw-planted\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tritonwatch]\nplanted = plantedops:register\n")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    sys.path.insert(0, str(site))
    suite = site.parent / "planted.toml"
    suite.write_text(
        '[suite]\nshapes = "nightly"\n[[cases]]\noperator = "planted"\nproviders = ["steady", "planted"]\n'
    )
    return suite


def _aa(args: argparse.Namespace, store: Any) -> None:
    """A/A comparisons of the same Python: every slower/faster verdict is a false positive."""
    from tritonwatch.analysis.compare import compare_sides
    from tritonwatch.bench.ab import ABOptions, run_ab
    from tritonwatch.bench.runner import RunOptions, run_suite

    # budget_ms goes in the options: the smoke suite ignores the setting (see runner.sampling).
    filters: dict[str, Any] = dict(
        suite=args.suite,
        providers=args.provider.split(","),
        device=args.device,
        budget_ms=args.budget_ms,
    )
    # A process's first run pays one-time costs (imports, the store's set-up): 3.6 s against
    # 2.2-2.3 s for the next ones on a 2-core EPYC. Untimed, so the runs below are like for like
    # with the comparisons, which come after it too.
    t0 = time.monotonic()
    single = run_suite(RunOptions(**filters), store)
    t_first = time.monotonic() - t0
    timed = sum(1 for o in single.outcomes if o.record.status == "ok")
    print(f"first run in this process (not counted): {timed} timed cases, {t_first:.1f} s")
    t_cmd = _command(args, "run")
    print(f"the same run as a command (`tritonwatch run`, starting Python): {t_cmd:.1f} s")
    flagged = flagged_raw = measured = low_p = 0
    t_cmp: list[float] = []
    t_start: list[float] = []
    t_runs: list[float] = []
    for rep in range(args.reps):
        t0 = time.monotonic()  # one run before each comparison: both see the machine alike
        run_suite(RunOptions(**filters), store)
        t_runs.append(time.monotonic() - t0)
        t0 = time.monotonic()
        opts = ABOptions(
            a="current",
            b="current",
            blocks=args.blocks,
            workers=args.workers,
            seed=args.first_seed + rep,
            **filters,
        )
        out = run_ab(opts, store)
        t_cmp.append(time.monotonic() - t0)
        t_start.append(out.startup_s)
        res = out.comparison.results
        n = sum(c.measured for c in res)
        f = sum(c.verdict in ("slower", "faster") for c in res)
        measured, flagged = measured + n, flagged + f
        low_p += sum(1 for c in res if c.measured and c.p is not None and c.p < 0.05)
        # What the raw-sample test alone would call (no threshold, no round test).
        bare = compare_sides([(c.key, c.a, c.b) for c in res], threshold=0.0)  # no blocks
        flagged_raw += sum(
            1
            for c in bare.results
            if c.q is not None and c.q < 0.05 and c.ci and (c.ci[0] > 1 or c.ci[1] < 1)
        )
        stops = ", ".join(f"{k} {v}" for k, v in sorted(out.stops.items()))
        mdes = sorted(c.mde for c in res if c.mde is not None)
        mde = f"; median MDE {mdes[len(mdes) // 2]:.2%}" if mdes else ""
        print(
            f"  A/A rep {rep}: run {t_runs[-1]:.1f} s; compare {t_cmp[-1]:.1f} s "
            f"(workers ready after {out.startup_s:.1f} s, "
            f"timing {out.measured_s:.1f} s), {f} of {n} "
            f"flagged (stops: {stops}{mde})"
        )
    mean_cmp = sum(t_cmp) / len(t_cmp)
    t_run = sorted(t_runs)[len(t_runs) // 2]  # the median run
    lo, hi = wilson(flagged, measured)
    print(
        f"A/A false-positive rate ({args.suite}/{args.provider} on {single.run.run.device}, "
        f"blocks {args.blocks}, workers {args.workers}, threshold 2%): {flagged}/{measured} = "
        f"{flagged / max(measured, 1):.1%} (95% interval {lo:.1%} to {hi:.1%})"
    )
    lo_p, hi_p = wilson(low_p, measured)
    print(
        f"  calibration: p < 0.05 in {low_p}/{measured} = {low_p / max(measured, 1):.1%} of A/A "
        f"cases (95% interval {lo_p:.1%} to {hi_p:.1%}; about 5% if the test is calibrated)"
    )
    print(
        f"  raw-sample test alone (Mann-Whitney, FDR 5%, bootstrap CI excludes 1; no threshold, "
        f"no blocks): {flagged_raw}/{measured} = {flagged_raw / max(measured, 1):.1%}"
    )
    print(
        f"cost: compare {mean_cmp:.1f} s (mean) vs run {t_run:.1f} s (median) = "
        f"{mean_cmp / t_run:.2f}x"
    )
    startup = sum(t_start) / len(t_start)
    print(
        f"  of which starting the {2 * args.workers} workers (each imports torch; "
        f"{os.cpu_count()} CPUs): {startup:.1f} s = {startup / t_run:.2f} runs by itself"
    )
    # One more A/A, with a seed apart from the above.
    design = ["--seed", str(args.first_seed + args.reps), "--workers", str(args.workers)]
    design += ["--blocks", str(args.blocks)]
    t_ab = _command(args, "compare", "--a", "current", "--b", "current", *design)
    print(
        f"  as commands: `tritonwatch compare` (A/A) {t_ab:.1f} s vs `tritonwatch run` "
        f"{t_cmd:.1f} s = {t_ab / t_cmd:.2f}x"
    )


def _command(args: argparse.Namespace, *cmd: str) -> float:
    """Wall time of one tritonwatch command over the A/A's cases as a user starts it: a new
    Python that imports what it needs, plans, measures and stores."""
    import subprocess

    tmp = Path(tempfile.mkdtemp(prefix="tw-compare-bench-cmd-"))
    argv = [sys.executable, "-m", "tritonwatch", *cmd, "--suite", args.suite]
    argv += ["--provider", args.provider, "--device", args.device]
    if args.budget_ms:
        argv += ["--budget-ms", str(args.budget_ms)]
    argv += ["--db", f"sqlite:///{tmp / 'run.db'}"]
    t0 = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True)
    took = time.monotonic() - t0
    shutil.rmtree(tmp, ignore_errors=True)
    return took


def _slow_python(tmp: Path, slowdown: float) -> Path:
    """A wrapper 'environment': this Python, whose planted provider spins ``slowdown`` longer."""
    slow = tmp / "py-slow"
    slow.write_text(
        "#!/bin/sh\nexport TW_PLANTED_SLOW_ALWAYS=1\n"
        f'export TW_PLANTED_SLOWDOWN={slowdown}\nexec {sys.executable} "$@"\n'
    )
    slow.chmod(0o755)
    return slow


def _planted(args: argparse.Namespace, store: Any, tmp: Path) -> None:
    """A wrapper 'environment' whose planted provider spins ``--slowdown`` longer."""
    from tritonwatch import settings
    from tritonwatch.bench.ab import ABOptions, run_ab

    suite = _install_planted(tmp / "site")
    slow = _slow_python(tmp, args.slowdown)
    hits = n_planted = steady_flag = n_steady = 0
    with settings.scope(budget_ms=args.budget_ms or 100.0, target_ci=0.002):
        for rep in range(args.reps):
            opts = ABOptions(
                a="current",
                b=str(slow),
                suite=str(suite),
                device="cpu",
                blocks=args.blocks,
                workers=args.workers,
                seed=100 + args.first_seed + rep,
            )
            out = run_ab(opts, store)
            for c in out.comparison.results:
                if c.key.provider == "planted":
                    n_planted += 1
                    hits += c.verdict == "slower"
                    if c.verdict != "slower":  # what kept it from being found
                        q = f"{c.q:.3f}" if c.q is not None else "-"
                        mde = f"{c.mde:.1%}" if c.mde is not None else "-"
                        print(
                            f"  missed (seed {opts.seed}) {c.key.shape_dict}: {c.verdict}, "
                            f"ratio {c.ratio or 0:.4f}, q {q}, mde {mde}, {len(c.blocks)} blocks"
                        )
                else:
                    n_steady += 1
                    steady_flag += c.verdict in ("slower", "faster")
    lo, hi = wilson(hits, n_planted)
    print(
        f"planted {args.slowdown:.0%} slowdown on 150-300 us spins (blocks {args.blocks}): "
        f"flagged slower in {hits}/{n_planted} = {hits / max(n_planted, 1):.0%} "
        f"(95% interval {lo:.0%} to {hi:.0%}); steady twin flagged {steady_flag}/{n_steady}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3, help="A/A and planted comparisons to run")
    ap.add_argument("--suite", default="smoke")
    ap.add_argument("--provider", default="torch", help="comma list; on a GPU: triton")
    ap.add_argument("--device", default="auto", help="A/A and cost: auto, cuda or cpu")
    ap.add_argument(
        "--budget-ms",
        type=float,
        default=None,
        help="per case and build (default: the command's own, 200 ms for smoke; planted: 100)",
    )
    ap.add_argument("--blocks", type=int, default=8, help="ABBA blocks planned per case")
    ap.add_argument(
        "--workers", type=int, default=None, help="worker processes per build (compare's default)"
    )
    ap.add_argument(
        "--first-seed", type=int, default=0, help="A/A seeds from here; planted from 100 + it"
    )
    ap.add_argument("--slowdown", type=float, default=0.03)
    ap.add_argument("--parts", default="aa,planted", help="aa (A/A and cost), planted, or both")
    args = ap.parse_args()

    from tritonwatch.bench.ab import default_workers
    from tritonwatch.store import Store

    if args.workers is None:
        args.workers = default_workers(args.device)

    tmp = Path(tempfile.mkdtemp(prefix="tw-compare-bench-"))
    store = Store.open(f"sqlite:///{tmp / 'tw.db'}")
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f}")
    parts = set(args.parts.split(","))
    if "aa" in parts:
        _aa(args, store)
    if "planted" in parts:
        _planted(args, store, tmp)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
