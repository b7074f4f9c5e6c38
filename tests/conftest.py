"""Fixtures shared by every test tier: temporary SQLite files and real PostgreSQL databases.

Shared helpers (free port, server launcher, fake Python, probes) are in ``tests/support/``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.probes import PG_ADMIN_URL, require_pg


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's own database, config file or environment settings."""
    for key in list(os.environ):
        if key.startswith("TRITONWATCH_") and key != "TRITONWATCH_TEST_PG_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("TRITONWATCH_DB", f"sqlite:///{tmp_path / 'default.db'}")
    monkeypatch.setenv("TRITONWATCH_CONFIG", str(tmp_path / "no-such-tritonwatch.toml"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tw.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test (PostgreSQL is probed on
    first use, never while the tests are collected)."""
    require_pg()
    import psycopg

    name = f"tw_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each store-contract test runs against SQLite and a real PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[object]:
    from tritonwatch.store import Store

    st = Store.open(db_url)
    try:
        yield st
    finally:
        st.close()
