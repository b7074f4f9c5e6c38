#!/usr/bin/env python
"""How long `tritonwatch run` takes, and where the time goes.

Runs a suite (default: smoke, on this machine's default device) into a throwaway SQLite file and
prints the wall time, cases per status, and the time spent compiling, measuring and in the
harness (worker start-up, inputs, references, storing). Usage:

    python benchmarks/run_bench.py [--suite smoke] [--device cpu] [--budget-ms MS]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--suite", default="smoke")
    p.add_argument("--device", default=None)
    p.add_argument("--budget-ms", type=float, default=None)
    p.add_argument("-k", dest="patterns", action="append", default=[])
    args = p.parse_args()

    from tritonwatch.bench.runner import RunOptions, run_suite
    from tritonwatch.store import Store

    with tempfile.TemporaryDirectory() as tmp, Store.open(f"sqlite:///{tmp}/bench.db") as st:
        t0 = time.perf_counter()
        out = run_suite(
            RunOptions(
                suite=args.suite,
                device=args.device,
                budget_ms=args.budget_ms,
                patterns=args.patterns,
            ),
            st,
        )
        wall = time.perf_counter() - t0
        stored = st.runs.get(out.stored.uuid)
    statuses = collections.Counter(o.record.status for o in out.outcomes)
    compile_s = sum(o.record.extra.get("compile_ms") or 0 for o in out.outcomes) / 1e3
    measure_s = sum(o.record.extra.get("measure_ms") or 0 for o in out.outcomes) / 1e3
    samples = sum(len(o.record.samples or []) for o in out.outcomes)
    print(f"suite {args.suite} on {out.run.run.device}: {wall:.1f} s wall")
    print(f"cases: {dict(statuses)}; results stored: {len(stored.results)}; samples: {samples}")
    print(
        f"first calls (compile/JIT, interpreter runs): {compile_s:.1f} s; "
        f"measuring: {measure_s:.1f} s; harness and the rest: {wall - compile_s - measure_s:.1f} s"
    )


if __name__ == "__main__":
    main()
