#!/usr/bin/env python3
"""Store benchmark: ingest rate and series-query latency on SQLite and PostgreSQL.

Fills a fresh database with N synthetic results (20 samples each) laid out like a real fleet:
365 nightly runs on each of 4 machines, every run measuring the same set of series. Ingest goes
through ``Store.add_run`` (validated ``Run`` objects in, one transaction per run), so the figure
is what `tritonwatch run`, `import` and the upload API see. Then it times random one-series
queries (<= 365 points, one machine, ordered by time), as the dashboard and `detect` issue them.

Two ingest modes, each a fresh fill: ``run`` writes one run per transaction, as `tritonwatch run`
and the upload API do; ``import`` writes ``--batch`` runs per transaction (default 20), as
`tritonwatch import` does (it writes all its files in one).

    python benchmarks/store_bench.py --results 1000000
    python benchmarks/store_bench.py --results 10000000 --backend sqlite --modes import
Targets (issue #2): ingest >= 100,000 results/s into SQLite; series query p95 <= 20 ms at 1 M
results and <= 50 ms at 10 M, on both backends.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from tritonwatch.runformat import BuildInfo, MachineInfo, Result, Run, RunInfo
from tritonwatch.store import Store

NIGHTS = 365
MACHINES = 4
TEMPLATES = 8  # distinct sample sets rotated across nights
T0 = datetime(2025, 11, 1, 2, 0, tzinfo=UTC)


def _templates(per_run: int, samples: int, seed: int) -> list[list[Result]]:
    rng = np.random.default_rng(seed)
    ops = ["matmul", "attention", "softmax", "layernorm", "rmsnorm", "grouped_gemm", "add"]
    out = []
    for k in range(TEMPLATES):
        results = []
        for j in range(per_run):
            base = 0.05 + (j % 97) / 100
            results.append(
                Result.model_validate(
                    {
                        "operator": ops[j % len(ops)],
                        "provider": ("triton", "torch")[j % 2],
                        "variant": ("pointers", "descriptor", "persistent")[j % 3],
                        "shape": {"M": 128 * (1 + j // 42), "N": 4096, "K": 1024 * (1 + j % 4)},
                        "dtype": ("fp16", "bf16")[(j // 2) % 2],
                        "metric": "time",
                        "unit": "ms",
                        "samples": (
                            base * (1 + 0.005 * rng.standard_normal(samples)) * (1 + 0.001 * k)
                        ).tolist(),
                    }
                )
            )
        out.append(results)
    return out


def synthetic_runs(n_results: int, samples: int = 20, seed: int = 0) -> Iterator[Run]:
    """Runs totalling about ``n_results`` results: NIGHTS x MACHINES runs of equal size."""
    per_run = max(1, n_results // (NIGHTS * MACHINES))
    templates = _templates(per_run, samples, seed)
    build_cache: dict[int, BuildInfo] = {}
    for night in range(NIGHTS):
        build = build_cache.setdefault(
            night // 7,
            BuildInfo.model_validate(
                {
                    "triton": {
                        "version": f"3.9.0+git{night // 7:04d}",
                        "commit": f"{night // 7:012x}",
                    },
                    "torch": {"version": "2.13.0"},
                }
            ),
        )
        for m in range(MACHINES):
            yield Run.model_construct(
                format="tritonwatch.run/1",
                run=RunInfo(
                    id=uuid.UUID(int=night * MACHINES + m + 1),
                    started_at=T0 + timedelta(days=night),
                    device="cuda",
                    label="nightly",
                ),
                machine=MachineInfo(
                    name=f"gpu-{m}", gpu_model=("NVIDIA H100", "AMD MI300X")[m % 2]
                ),
                build=build,
                results=templates[(night + m) % TEMPLATES],
            )


def fill(
    url: str, n_results: int, samples: int = 20, seed: int = 0, quiet: bool = False, batch: int = 1
) -> tuple[int, float]:
    """Write the synthetic fleet into ``url``; returns (results written, seconds in the Store).

    ``batch`` runs share one transaction (``add_runs``, as ``import`` does); 1 is one
    transaction per run, as ``tritonwatch run`` and the upload API write.
    """
    written, spent, pending = 0, 0.0, []
    with Store.open(url) as store:
        for i, run in enumerate(synthetic_runs(n_results, samples, seed)):
            pending.append(run)
            if len(pending) < batch:
                continue
            t = time.perf_counter()
            store.runs.add_many(pending) if batch > 1 else store.runs.add(pending[0])
            spent += time.perf_counter() - t
            written += sum(len(r.results) for r in pending)
            pending = []
            if not quiet and i % 200 < batch:
                print(
                    f"  {written:>11,} results  {written / max(spent, 1e-9):>9,.0f}/s",
                    file=sys.stderr,
                )
        if pending:
            t = time.perf_counter()
            store.runs.add_many(pending)
            spent += time.perf_counter() - t
            written += sum(len(r.results) for r in pending)
    return written, spent


def query_latency(url: str, queries: int = 200, seed: int = 1) -> dict[str, float]:
    """p50/p95/p99 in ms of random one-series queries (365 newest points, one machine)."""
    rnd = random.Random(seed)
    with Store.open(url) as store:
        pairs = [(s.id, s.machine_id) for s in store.series.find()]
        for sid, mid in rnd.sample(
            pairs, min(20, len(pairs))
        ):  # warm the connection pool and cache
            store.series.points(sid, mid)
        times = []
        for _ in range(queries):
            sid, mid = rnd.choice(pairs)
            t = time.perf_counter()
            points = store.series.points(sid, mid, limit=365)
            times.append((time.perf_counter() - t) * 1000)
            assert 0 < len(points) <= 365
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[int(0.95 * len(times)) - 1],
        "p99": times[int(0.99 * len(times)) - 1],
        "series": len(pairs),
    }


def _fresh_pg(admin: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--results", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument(
        "--dir", default=None, help="Folder for the SQLite file (default: a temp folder)."
    )
    ap.add_argument("--keep", action="store_true", help="Keep the databases for other benchmarks.")
    ap.add_argument(
        "--modes",
        default="run,import",
        help="Ingest modes to fill with, comma-separated: run (1 run per transaction), import.",
    )
    ap.add_argument(
        "--batch", type=int, default=20, help="Runs per transaction in the import mode."
    )
    args = ap.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="tw-store-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"run", "import"}:
        ap.error(f"--modes takes run and/or import, not {args.modes!r}")
    rows = []
    for backend in backends:
        for mode in modes:
            batch = 1 if mode == "run" else args.batch
            if backend == "sqlite":
                path = folder / f"bench-{args.results}.db"
                for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    f.unlink(missing_ok=True)
                url = f"sqlite:///{path}"
            else:
                url = _fresh_pg(args.pg_admin, f"tw_bench_{args.results}")
            print(f"{backend}/{mode}: filling {args.results:,} results ...", file=sys.stderr)
            n, spent = fill(url, args.results, args.samples, batch=batch)
            lat = query_latency(url, args.queries)
            rows.append(
                (backend, f"{mode}" + (f" x{batch}" if batch > 1 else ""), n, n / spent, lat)
            )
    if not args.keep:
        for f in folder.glob("bench-*"):
            f.unlink()
    print(
        f"\nstore_bench: {args.results:,} results requested, {args.samples} samples each, "
        f"{NIGHTS} nights x {MACHINES} machines"
    )
    print(
        f"{'backend':<10}{'mode':<11}{'results':>12}{'ingest/s':>12}{'series':>9}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    )
    for backend, mode, n, rate, lat in rows:
        print(
            f"{backend:<10}{mode:<11}{n:>12,}{rate:>12,.0f}{lat['series']:>9,}{lat['p50']:>9.2f}"
            f"{lat['p95']:>9.2f}{lat['p99']:>9.2f}"
        )


if __name__ == "__main__":
    main()
