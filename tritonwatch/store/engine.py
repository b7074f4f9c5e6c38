"""Connecting to a results database: URLs, drivers, SQLite pragmas, schema checks, migrations.

Every way a database can be wrong (bad URL, missing driver, unreachable server, not a
tritonwatch database, a newer schema, a read-only place) becomes one StoreError with a fix.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError

from ..errors import (
    DatabaseUnavailable,
    NotADatabase,
    ReadOnlyLocation,
    SchemaTooNew,
    StoreError,
)
from .jsoncolumns import json_text


def parse_url(url: str) -> URL:
    """A SQLAlchemy URL for a tritonwatch database URL (``postgresql://`` uses psycopg 3)."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise DatabaseUnavailable(
            f"cannot read database URL {url!r}; use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from None
    backend = u.get_backend_name()
    if backend == "postgresql" and u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise DatabaseUnavailable(
            f"unsupported database {backend!r}; use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    return u


def display_url(u: URL) -> str:
    """The URL with any password hidden, for messages and `db info`."""
    return u.render_as_string(hide_password=True)


WAL_CHECKPOINT_PAGES = 16384


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, fast commits
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache: index inserts stay in memory
    # A run dirties one series-index leaf per result (~700 pages for a 700-result run), so the
    # default checkpoint at 1,000 WAL pages ran, with its two fsyncs, after nearly every run.
    # Checkpointing every 16,384 pages (64 MiB) writes each hot leaf back once for many runs;
    # journal_size_limit gives the disk back after a burst. See docs/store.md for the figures.
    cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    cur.execute(f"PRAGMA journal_size_limit={WAL_CHECKPOINT_PAGES * 4096}")
    cur.close()


def _prepare_sqlite_path(u: URL, create: bool) -> None:
    path = u.database
    if not path or path == ":memory:":
        return
    p = Path(path).expanduser()
    if p.exists():
        if p.is_dir():
            raise NotADatabase(f"{p} is a folder, not a database file")
        with p.open("rb") as f:
            head = f.read(16)
        if head and head != b"SQLite format 3\x00":
            raise NotADatabase(f"{p} is not a tritonwatch database (not a SQLite file)")
        return
    if not create:
        raise DatabaseUnavailable(
            f"no database at {p} (check --db); `tritonwatch run` or `tritonwatch import FILE` "
            "creates one, `tritonwatch db upgrade` an empty one"
        )
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReadOnlyLocation(
            f"cannot create {p.parent} ({e.strerror}); pass --db with a writable location"
        ) from None


def connect(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url`` that has answered one query; raises StoreError subclasses."""
    u = parse_url(url)
    kwargs: dict[str, Any] = {"json_serializer": json_text}
    if u.get_backend_name() == "sqlite":
        _prepare_sqlite_path(u, create)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(
            pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args={"connect_timeout": 10}
        )
    try:
        engine = create_engine(u, **kwargs)
    except NoSuchModuleError:
        raise DatabaseUnavailable(f"no driver for {u.drivername}") from None
    except ModuleNotFoundError:
        raise DatabaseUnavailable(
            "PostgreSQL needs psycopg 3: pip install 'tritonwatch[postgres]'"
        ) from None
    if u.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except OperationalError as e:
        engine.dispose()
        raise _operational(e, u) from None
    except DatabaseError as e:
        engine.dispose()
        raise NotADatabase(
            f"{display_url(u)} is not a tritonwatch database ({_first_line(e)})"
        ) from None
    return engine


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def _operational(e: OperationalError, u: URL) -> StoreError:
    msg = _first_line(e)
    if isinstance(getattr(e, "orig", None), sqlite3.OperationalError):
        if "readonly" in msg or "unable to open" in msg:
            return ReadOnlyLocation(
                f"cannot write {u.database} ({msg}); pass --db with a writable location"
            )
        if "not a database" in msg:
            return NotADatabase(f"{u.database} is not a tritonwatch database")
    return DatabaseUnavailable(f"cannot connect to {display_url(u)}: {msg}")


def _alembic_config(conn: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "tritonwatch.store:migrations")
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config(None))
    head = script.get_current_head()
    assert head is not None  # the package ships at least one migration
    return head


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(_alembic_config(None))
    return {rev.revision for rev in script.walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine, *, create: bool) -> int:
    """Make sure the database holds the current schema, creating it when empty.

    Returns the schema version. An older schema asks for `tritonwatch db upgrade`; a newer one,
    or tables that are not tritonwatch's, refuse with a message.
    """
    try:
        tables = set(inspect(engine).get_table_names())
    except DatabaseError as e:
        raise NotADatabase(f"not a tritonwatch database ({_first_line(e)})") from None
    if not tables:
        if not create:
            raise NotADatabase("the database is empty; run `tritonwatch db upgrade` to create it")
        upgrade(engine)
        return int(head_revision())
    if "alembic_version" not in tables or "runs" not in tables:
        raise NotADatabase(
            f"this database holds other tables ({', '.join(sorted(tables)[:5])}) and is not a "
            "tritonwatch database; pass --db with another URL"
        )
    rev = current_revision(engine)
    if rev is None:
        raise NotADatabase("the database has no schema version; it was not made by tritonwatch")
    if rev not in known_revisions():
        raise SchemaTooNew(
            f"the database has schema version {rev}, newer than this tritonwatch "
            f"(version {head_revision()}); upgrade tritonwatch"
        )
    if rev != head_revision():
        raise StoreError(
            f"the database has schema version {rev}; this tritonwatch needs {head_revision()}: "
            "run `tritonwatch db upgrade` (back the database up first)"
        )
    return int(rev)


def upgrade(
    engine: Engine, on_migrate: Callable[[str, str], None] | None = None
) -> tuple[str | None, str]:
    """Apply every pending migration; returns (version before, version after).

    ``on_migrate(before, after)`` is called first when an existing schema is about to change.
    """
    before = current_revision(engine)
    if before is not None and before not in known_revisions():
        raise SchemaTooNew(f"the database has schema version {before}, newer than this tritonwatch")
    if on_migrate is not None and before is not None and before != head_revision():
        on_migrate(before, head_revision())
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
    except OperationalError as e:
        raise _operational(e, engine.url) from None
    return before, head_revision()
