"""The Store: the one API the rest of tritonwatch uses to read and write the results database.

A :class:`Store` is a :class:`~.database.Database` handle plus one small object per noun, each
in its own module: ``store.runs``, ``store.series``, ``store.history``, ``store.alerts``,
``store.codegen``, ``store.reports``, ``store.access``, ``store.pushes``, ``store.overview``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, select

from ..naming import canonical_shape
from . import engine as _engine
from . import schema as s
from .access import Access
from .alerts import Alerts
from .codegen import Codegen
from .database import Database
from .history import History
from .overview import Overview
from .pushes import Pushes
from .reports import Reports
from .rows import StoreInfo
from .runs import Runs, series_key
from .series import Series

if TYPE_CHECKING:
    pass


class Store:
    """A tritonwatch results database (SQLite file or PostgreSQL)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.db = Database(engine, url)
        self.runs = Runs(self.db)
        self.series = Series(self.db)
        self.history = History(self.db)
        self.alerts = Alerts(self.db)
        self.codegen = Codegen(self.db)
        self.reports = Reports(self.db)
        self.access = Access(self.db)
        self.pushes = Pushes(self.db)
        self.overview = Overview(self.db, self.runs)

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        """Connect, create the schema in an empty database, and refuse a foreign or newer one."""
        engine = _engine.connect(url, create=create)
        try:
            _engine.check_schema(engine, create=create)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, _engine.display_url(engine.url))

    @staticmethod
    def upgrade(
        url: str, on_migrate: Callable[[int, int], None] | None = None
    ) -> tuple[int | None, int]:
        """Create or migrate the database at ``url`` to this version's schema.

        Returns (schema version before, after); before is None for a new database.
        ``on_migrate(before, after)`` is called just before an existing schema changes.
        """
        engine = _engine.connect(url, create=True)
        notify = None if on_migrate is None else (lambda a, b: on_migrate(int(a), int(b)))
        try:
            before, after = _engine.upgrade(engine, notify)
        finally:
            engine.dispose()
        return (int(before) if before else None), int(after)

    def close(self) -> None:
        self.db.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        return self.db.engine

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def info(self) -> StoreInfo:
        counts = {}
        with self.db.connect() as conn:
            for t in (
                s.machines,
                s.builds,
                s.runs,
                s.series,
                s.results,
                s.alerts,
                s.codegen,
                s.comparisons,
                s.views,
                s.orgs,
                s.tokens,
            ):
                counts[t.name] = conn.execute(select(func.count()).select_from(t)).scalar_one()
        rev = _engine.current_revision(self.engine)
        return StoreInfo(
            url=self.url, backend=self.dialect, schema_version=int(rev or 0), counts=counts
        )


__all__ = ["Store", "canonical_shape", "series_key"]
