"""Schema creation, migrations and refusing databases that are not ours or are newer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from tritonwatch.errors import DatabaseUnavailable, NotADatabase, ReadOnlyLocation, SchemaTooNew
from tritonwatch.store import Store
from tritonwatch.store.engine import head_revision
from tritonwatch.store.schema import SCHEMA_VERSION, metadata


def test_migrations_build_exactly_the_declared_schema(db_url: str) -> None:
    """The migration chain from empty must produce schema.py: no drift between the two."""
    with Store.open(db_url) as store:
        assert store.info().schema_version == SCHEMA_VERSION == int(head_revision())
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_is_idempotent(db_url: str) -> None:
    assert Store.upgrade(db_url) == (None, SCHEMA_VERSION)
    assert Store.upgrade(db_url) == (SCHEMA_VERSION, SCHEMA_VERSION)


def test_newer_schema_is_refused(db_url: str) -> None:
    with Store.open(db_url) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaTooNew, match="upgrade tritonwatch"):
        Store.open(db_url)
    with pytest.raises(SchemaTooNew):
        Store.upgrade(db_url)


def test_other_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(NotADatabase, match="not a tritonwatch database"):
        Store.open(f"sqlite:///{path}")


def test_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 10)
    with pytest.raises(NotADatabase, match="not a SQLite file"):
        Store.open(f"sqlite:///{path}")


def test_unwritable_location(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReadOnlyLocation, match="--db"):
        Store.open(f"sqlite:///{blocker}/sub/tw.db")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/x", "unsupported database 'mysql'"),
        ("not a url", "cannot read database URL"),
        ("postgresql://nobody@127.0.0.1:1/none", "cannot connect"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(DatabaseUnavailable, match=message):
        Store.open(url)


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    with Store.open(sqlite_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
