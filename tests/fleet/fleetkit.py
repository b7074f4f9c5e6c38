"""Helpers of the fleet tests: row counts (the server launcher and the free port come from
tests/support, run documents from ``tritonwatch.testing.make_run_document``)."""

from __future__ import annotations

from support.net import free_port
from support.server import ServeProcess

__all__ = ["RUNNING", "SHARED_LIMIT_MB", "Server", "free_port", "pg_counts"]

SHARED_LIMIT_MB = 2  # the shared server's upload limit: small, so size tests need no 32 MiB bodies


# The fleet tests' server is the shared `tritonwatch serve` launcher.
Server = ServeProcess

# Servers running now, whose logs conftest attaches to a failed test's report. Kept here, not in
# conftest: several test folders have a conftest module, so none is importable by that name.
RUNNING: list[Server] = []


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
