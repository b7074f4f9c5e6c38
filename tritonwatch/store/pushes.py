"""The push spool: which local runs a server has accepted (table ``pushes``).

The spool is not a separate queue: it is every run in the local database without a row in
``pushes`` for that server. A run is marked only after the server answered 200/201, so a push
killed at any point leaves at worst a run that is sent again, and the server's idempotency by
run UUID turns that resend into a no-op. Reached as ``store.pushes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import and_, func, select

from ..errors import UsageError
from . import schema as s
from .database import Database


@dataclass(frozen=True)
class PendingRun:
    """A local run not yet accepted by a server, oldest first."""

    id: int
    uuid: str
    started_at: datetime
    n_results: int


@dataclass(frozen=True)
class SpoolStatus:
    """How many local runs a server has accepted and how many wait."""

    server: str
    pushed: int
    pending: int


def server_key(url: str) -> str:
    """The canonical form of a server URL, as stored in ``pushes.server``.

    Scheme and host are lower-cased and trailing slashes dropped, so ``HTTP://Host:8000/`` and
    ``http://host:8000`` share one spool. Credentials in the URL are refused: tokens travel in a
    header, never in a URL that ends up in logs.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"server {url!r} is not an http(s) URL like https://tritonwatch.example")
    if parts.username or parts.password:
        raise UsageError("put the token in --token or TRITONWATCH_TOKEN, not in the server URL")
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


class Pushes:
    """``store.pushes``: which local runs each server has accepted."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def pending(self, server: str, limit: int | None = None) -> list[PendingRun]:
        """Local runs that ``server`` has not accepted yet, oldest first."""
        key = server_key(server)
        q = (
            select(s.runs.c.id, s.runs.c.uuid, s.runs.c.started_at, s.runs.c.n_results)
            .select_from(
                s.runs.outerjoin(
                    s.pushes, and_(s.pushes.c.run_id == s.runs.c.id, s.pushes.c.server == key)
                )
            )
            .where(s.pushes.c.run_id.is_(None))
            .order_by(s.runs.c.started_at, s.runs.c.id)
        )
        if limit is not None:
            q = q.limit(limit)
        with self.db.connect() as conn:
            return [
                PendingRun(id=int(r[0]), uuid=r[1], started_at=r[2], n_results=int(r[3]))
                for r in conn.execute(q)
            ]

    def mark(self, run_id: int, server: str) -> None:
        """Record that ``server`` accepted run ``run_id`` (harmless if already recorded)."""
        key = server_key(server)
        ins = self.db.insert(s.pushes)
        with self.db.begin() as conn:
            conn.execute(
                ins.values(
                    run_id=run_id, server=key, pushed_at=datetime.now(UTC)
                ).on_conflict_do_nothing()  # type: ignore[attr-defined]
            )

    def status(self, server: str) -> SpoolStatus:
        """Counts of accepted and waiting runs for ``server``."""
        key = server_key(server)
        with self.db.connect() as conn:
            total = conn.execute(select(func.count()).select_from(s.runs)).scalar_one()
            pushed = conn.execute(
                select(func.count())
                .select_from(s.pushes.join(s.runs, s.runs.c.id == s.pushes.c.run_id))
                .where(s.pushes.c.server == key)
            ).scalar_one()
        return SpoolStatus(server=key, pushed=int(pushed), pending=int(total) - int(pushed))
