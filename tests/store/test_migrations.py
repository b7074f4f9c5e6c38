"""Schema creation, migrations and refusing databases that are not ours or are newer."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from tritonwatch.errors import (
    DatabaseUnavailable,
    NotADatabase,
    ReadOnlyLocation,
    SchemaTooNew,
    StoreError,
)
from tritonwatch.store import Store
from tritonwatch.store import engine as _engine
from tritonwatch.store.engine import head_revision
from tritonwatch.store.schema import SCHEMA_VERSION, metadata
from tritonwatch.testing import make_run


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


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_schema_1_sqlite_database_upgrades_keeping_every_instant(tmp_path: Path) -> None:
    """schema-1.db was written by tritonwatch at schema 1 (results.t as ISO text on SQLite).

    Its runs started at 02:00Z and at 19:30:05.123456-07:00 (+0..2 us), so the conversion must
    keep microseconds and the UTC instant.
    """
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "schema-1.db", path)
    url = f"sqlite:///{path}"
    with pytest.raises(StoreError, match="run `tritonwatch db upgrade`"):
        Store.open(url)
    with sqlite3.connect(path) as raw:
        before = raw.execute("SELECT id, t FROM results ORDER BY id").fetchall()
    assert {type(t) for _, t in before} == {str}

    assert Store.upgrade(url) == (1, SCHEMA_VERSION)

    with sqlite3.connect(path) as raw:
        after = raw.execute("SELECT id, typeof(t) FROM results ORDER BY id").fetchall()
        declared = {r[1]: r[2] for r in raw.execute("PRAGMA table_info(results)")}
        indexes = {r[1] for r in raw.execute("PRAGMA index_list(results)")}
    assert [i for i, _ in after] == [i for i, _ in before]
    assert {k for _, k in after} == {"integer"}
    assert declared["t"] == "BIGINT"
    assert indexes == {"ix_results_series_id_machine_id_t", "ix_results_run_id"}
    with Store.open(url) as store:
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        starts = {r.uuid: r.started_at for r in store.runs.find(limit=None)}
        micro = sorted(t for t in starts.values() if t.microsecond)
        assert [t.isoformat() for t in micro] == [
            f"2026-11-0{3 + k}T02:30:05.12345{6 + k}+00:00" for k in range(3)
        ]
        for info in store.series.find():
            points = store.series.points(info.id, info.machine_id, ok_only=False)
            assert [p.t for p in points] == sorted(starts.values())
            cut = micro[1] - timedelta(microseconds=1)
            late = store.series.points(info.id, info.machine_id, since=cut, ok_only=False)
            assert [p.t for p in late] == micro[1:]
            assert info.last_t == micro[-1]
        # and it takes new runs next to the converted ones
        assert store.runs.add(make_run(n_results=2, seed=9)).created


@pytest.mark.postgres
def test_schema_1_postgres_database_upgrades_unchanged(pg_url: str) -> None:
    """PostgreSQL keeps timestamptz: migration 2 leaves its results as they were."""
    engine = _engine.connect(pg_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_engine._alembic_config(conn), "0001")
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="db upgrade"):
        Store.open(pg_url)
    assert Store.upgrade(pg_url) == (1, SCHEMA_VERSION)
    with Store.open(pg_url) as store:
        run = make_run(n_results=2, seed=3)
        store.runs.add(run)
        (info, _) = store.series.find()
        (point,) = store.series.points(info.id, info.machine_id)
        assert point.t == run.run.started_at
