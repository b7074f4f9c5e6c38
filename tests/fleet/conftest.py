"""A real PostgreSQL database and a real `tritonwatch serve` process for the fleet tests.

The server is a subprocess on a free loopback port, polled until /healthz answers; when a test
fails, the servers' logs are attached to the report. Tests that kill the server use their own;
the others share one server per module (starting one costs seconds on a loaded machine).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetkit import RUNNING, SHARED_LIMIT_MB, Server
from support.probes import PG_ADMIN_URL, require_pg


@pytest.fixture(scope="module")
def module_pg() -> Iterator[str]:
    """A fresh PostgreSQL database shared by one module's tests (as tests/conftest's pg_url)."""
    require_pg()
    import psycopg

    name = f"tw_fleet_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_servers = RUNNING


@pytest.fixture(scope="module")
def shared_server(module_pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a module, on a migrated PostgreSQL database (upload limit 2 MiB)."""
    from tritonwatch.store import Store

    Store.upgrade(module_pg)
    srv = Server(
        module_pg,
        tmp_path_factory.mktemp("server") / "server.log",
        env={"TRITONWATCH_MAX_UPLOAD_MB": str(SHARED_LIMIT_MB)},
    )
    _servers.append(srv)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        _servers.remove(srv)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """A factory of servers on a given database, stopped after the test."""
    made: list[Server] = []

    def make(db: str, **env: str) -> Server:
        srv = Server(db, tmp_path / f"server-{len(made)}.log", env=env)
        made.append(srv)
        _servers.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()
        _servers.remove(srv)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in _servers:
            rep.sections.append((f"server log {srv.url}", srv.log()[-20_000:]))
