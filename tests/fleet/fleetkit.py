"""Helpers of the fleet tests: run documents and row counts (the server launcher and the free
port come from tests/support)."""

from __future__ import annotations

import uuid
from typing import Any

from support.net import free_port
from support.server import ServeProcess

__all__ = ["RUNNING", "SHARED_LIMIT_MB", "Server", "free_port", "make_run", "pg_counts"]

SHARED_LIMIT_MB = 2  # the shared server's upload limit: small, so size tests need no 32 MiB bodies


# The fleet tests' server is the shared `tritonwatch serve` launcher.
Server = ServeProcess

# Servers running now, whose logs conftest attaches to a failed test's report. Kept here, not in
# conftest: several test folders have a conftest module, so none is importable by that name.
RUNNING: list[Server] = []


def make_run(
    n_results: int = 3,
    *,
    machine: str = "box-1",
    org: str | None = None,
    run_id: str | None = None,
    started_at: str = "2026-11-01T00:00:00Z",
    triton: str = "3.9.0",
    samples: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """A valid tritonwatch.run/1 document with ``n_results`` results of ``samples`` samples."""
    import random

    rnd = random.Random(seed)
    run: dict[str, Any] = {"id": run_id or str(uuid.uuid4()), "started_at": started_at}
    if org:
        run["org"] = org
    return {
        "format": "tritonwatch.run/1",
        "run": run,
        "machine": {"name": machine, "gpu_model": "NVIDIA H100", "gpu_count": 1},
        "build": {"triton": {"version": triton}},
        "results": [
            {
                "operator": "matmul",
                "provider": "triton",
                "shape": {"M": 128 * (1 + i % 64), "N": 4096, "K": 64 * (1 + i // 64)},
                "dtype": "fp16",
                "metric": "time",
                "unit": "ms",
                "samples": [1.0 + rnd.random() * 0.01 for _ in range(samples)],
            }
            for i in range(n_results)
        ],
    }


def pg_counts(url: str) -> dict[str, int]:
    """Row counts of the tables an upload writes, read with psycopg directly."""
    import psycopg

    out = {}
    with psycopg.connect(url) as conn:
        for t in ("runs", "results", "machines", "builds", "series"):
            out[t] = conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
        out["dup_uuids"] = conn.execute(
            "SELECT count(*) FROM (SELECT uuid FROM runs GROUP BY uuid HAVING count(*) > 1) d"
        ).fetchone()[0]  # type: ignore[index]
        out["partial"] = conn.execute(
            "SELECT count(*) FROM runs r WHERE r.n_results <> "
            "(SELECT count(*) FROM results x WHERE x.run_id = r.id)"
        ).fetchone()[0]  # type: ignore[index]
    return out
