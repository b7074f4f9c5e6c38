"""The database handle every store noun shares: engine, transactions, get-or-create, bulk insert,
and the one rule for naming a row by UUID, UUID prefix or numeric id.

Nothing here knows what a run or an alert is; the classes in ``runs.py``, ``alerts.py`` and the
other noun modules hold a :class:`Database` and write their queries against ``schema``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from ..errors import NotFoundError, UsageError
from . import schema as s
from .limits import INT64_MAX
from .rows import key_hash

# Shortest UUID prefix accepted: shorter ones match too many rows to be a name.
MIN_PREFIX = 4
IN_CHUNK = 500  # keys per IN (...): far below every driver's limit on bound parameters


@dataclass
class Caches:
    """Ids of rows that never change once written, keyed by what identifies them."""

    series_by_tuple: dict[tuple[Any, ...], int] = field(default_factory=dict)
    machines: dict[str, int] = field(default_factory=dict)
    builds: dict[str, int] = field(default_factory=dict)
    orgs: dict[str, int] = field(default_factory=dict)

    def merge(self, other: Caches) -> None:
        self.series_by_tuple.update(other.series_by_tuple)
        self.machines.update(other.machines)
        self.builds.update(other.builds)
        self.orgs.update(other.orgs)


class Database:
    """An open results database: the engine plus the few operations every noun needs."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.caches = Caches()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def connect(self) -> Connection:
        return self.engine.connect()

    def begin(self) -> contextlib.AbstractContextManager[Connection]:
        return self.engine.begin()

    @contextlib.contextmanager
    def writing(self) -> Iterator[tuple[Connection, Caches]]:
        """A write transaction with staged caches, merged into the shared ones only on commit."""
        staged = Caches()
        with self.engine.begin() as conn:
            yield conn, staged
        self.caches.merge(staged)

    def insert(self, table: Table) -> Insert:
        """The dialect's INSERT, which offers ``on_conflict_do_nothing``/``do_update``."""
        ins = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return ins(table)

    def get_or_create(
        self,
        conn: Connection,
        table: Table,
        cache: dict[str, int],
        key_col: str,
        key: str,
        values: dict[str, Any],
    ) -> int:
        """The id of the row whose ``key_col`` is ``key``, inserting it (race-safe) if new."""
        if key in cache:
            return cache[key]
        return self.get_or_create_many(conn, table, cache, key_col, {key: values})[key]

    def get_or_create_many(
        self,
        conn: Connection,
        table: Table,
        cache: dict[str, int],
        key_col: str,
        rows: dict[str, dict[str, Any]],
    ) -> dict[str, int]:
        """The ids of the rows whose ``key_col`` is each key of ``rows``, inserting the new
        ones (race-safe) with one SELECT, one INSERT and one more SELECT per 500 keys."""
        ids = {k: cache[k] for k in rows if k in cache}
        missing = [k for k in rows if k not in ids]
        col = table.c[key_col]

        def look_up(keys: list[str]) -> None:
            for i in range(0, len(keys), IN_CHUNK):
                q = select(col, table.c.id).where(col.in_(keys[i : i + IN_CHUNK]))
                ids.update({str(k): int(v) for k, v in conn.execute(q)})

        look_up(missing)
        new = [{key_col: k, **rows[k]} for k in missing if k not in ids]
        if new:
            conn.execute(self.insert(table).on_conflict_do_nothing(), new)  # type: ignore[attr-defined]
            look_up([row[key_col] for row in new])
        cache.update((k, ids[k]) for k in missing)
        return ids

    def org_id(self, conn: Connection, name: str | None, staged: Caches) -> int | None:
        """The id of organisation ``name`` (created if new), or None for no organisation."""
        if not name:
            return None
        return self.get_or_create(
            conn, s.orgs, staged.orgs, "name", name, {"created_at": datetime.now(UTC)}
        )

    def build_id(self, conn: Connection, build: dict[str, Any], staged: Caches) -> int:
        """The id of a run's build section (created if new): runs and codegen share builds."""
        return self.build_ids(conn, [build], staged)[0]

    def build_ids(
        self, conn: Connection, builds: Sequence[dict[str, Any]], staged: Caches
    ) -> list[int]:
        """:meth:`build_id` of several builds, with one round trip for all the new ones."""
        keys, rows = [], {}
        for build in builds:
            triton = build.get("triton") or {}
            if not triton.get("version"):
                raise UsageError("a build needs build['triton']['version']")
            key = key_hash(build)
            keys.append(key)
            if key not in staged.builds:
                rows[key] = {
                    "triton_version": triton["version"],
                    "triton_commit": triton.get("commit"),
                    "torch_version": (build.get("torch") or {}).get("version"),
                    "info": build,
                    "created_at": datetime.now(UTC),
                }
        self.get_or_create_many(conn, s.builds, staged.builds, "key", rows)
        return [staged.builds[k] for k in keys]

    def bulk_insert(
        self, conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert many rows: COPY on PostgreSQL, one executemany on SQLite.

        The ORM-free path matters: results arrive by the hundred thousand and SQLAlchemy's
        per-row bind processing was 10x the cost of the insert itself.
        """
        if not rows:  # a run whose every case crashed before reporting: nothing to insert
            return
        cols = ", ".join(columns)
        if self.dialect == "postgresql":
            raw: Any = conn.connection.driver_connection  # a psycopg.Connection
            with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(columns))
            conn.exec_driver_sql(f"INSERT INTO {table.name} ({cols}) VALUES ({marks})", rows)

    def resolve(
        self,
        table: Table,
        ref: str,
        what: str,
        *,
        by_id: bool = False,
        hint: str = "",
        conn: Connection | None = None,
    ) -> int:
        """The id of the row of ``table`` named by its UUID, a unique UUID prefix, or its id.

        The one rule for every reference a person types: a UUID prefix of at least
        :data:`MIN_PREFIX` characters is tried first (a prefix made only of digits is still a
        prefix); where ``by_id``, digits that match no prefix are the row's numeric id. Unknown
        refs are :class:`NotFoundError`; too short or ambiguous ones :class:`UsageError`.
        """
        ref = ref.strip().lower()
        if not ref:
            raise UsageError(f"empty {what} id; give its UUID or a prefix of it")
        # ASCII digits only: str.isdigit() is also true of '¹' and '٣', which int() refuses.
        numeric = (
            by_id
            and ref.isascii()
            and ref.isdigit()
            and len(ref) <= 19
            and 0 < int(ref) <= INT64_MAX
        )
        if len(ref) < MIN_PREFIX and not numeric:
            raise UsageError(
                f"{what} id {ref!r} is too short; give at least {MIN_PREFIX} characters of the UUID"
            )
        if conn is None:
            with self.engine.connect() as c:
                return self.resolve(table, ref, what, by_id=by_id, hint=hint, conn=c)
        ids: list[int] = []
        if len(ref) >= MIN_PREFIX:
            like = table.c.uuid.like(ref.replace("%", "") + "%")
            ids = [int(x) for x in conn.execute(select(table.c.id).where(like).limit(2)).scalars()]
        if not ids and numeric:
            ids = [
                int(x)
                for x in conn.execute(select(table.c.id).where(table.c.id == int(ref))).scalars()
            ]
        if not ids:
            raise NotFoundError(f"no {what} {ref!r}" + (f"; {hint}" if hint else ""))
        if len(ids) > 1:
            raise UsageError(f"{what} id {ref!r} is ambiguous; give more characters")
        return ids[0]
