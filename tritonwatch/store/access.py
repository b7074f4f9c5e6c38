"""Store queries for organisations, upload tokens and saved views.

Mixed into :class:`tritonwatch.store.Store`. Tokens are shown once and stored only as their
sha256. The dashboard's read queries live in ``dashboard.py``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from typing import cast as cast_

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ..errors import NotFoundError, UsageError
from . import schema as s
from .rows import utc

if TYPE_CHECKING:
    from sqlalchemy import Engine

TOKEN_PREFIX = "tw_"
SCOPES = ("upload", "triage", "views")
OPEN_ALERT_STATUSES = ("new", "confirmed", "acknowledged")
SERIES_FIELDS = ("operator", "provider", "variant", "shape", "dtype", "mode", "metric")


def _utc(t: datetime) -> datetime:
    """A NOT NULL time column, as UTC."""
    return cast_(datetime, utc(t))


def hash_token(plaintext: str) -> str:
    """The sha256 hex digest stored in ``tokens.token_hash``."""
    return hashlib.sha256(plaintext.strip().encode()).hexdigest()


@dataclass(frozen=True)
class TokenRow:
    id: int
    org: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def actor(self) -> str:
        """How this token appears in triage history: ``org/name``."""
        return f"{self.org}/{self.name}"


@dataclass(frozen=True)
class CreatedToken:
    """A new token: its row, and the plaintext, which is never shown again."""

    row: TokenRow
    token: str


@dataclass(frozen=True)
class SavedView:
    id: int
    name: str
    page: str
    query: str
    token_id: int | None
    created_at: datetime


def _org_id(conn: Connection, name: str) -> int:
    """The id of organisation ``name``, created if new (safe against a concurrent creator)."""
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(s.orgs)
    conn.execute(ins.values(name=name, created_at=datetime.now(UTC)).on_conflict_do_nothing())
    return int(conn.execute(select(s.orgs.c.id).where(s.orgs.c.name == name)).scalar_one())


class AccessMixin:
    """Store methods for tokens and saved views."""

    engine: Engine

    if TYPE_CHECKING:

        def _run_query(self) -> Any: ...

    # -- tokens ------------------------------------------------------------------------------
    def _token_query(self) -> Any:
        return select(s.tokens, s.orgs.c.name.label("org")).join(
            s.orgs, s.orgs.c.id == s.tokens.c.org_id
        )

    @staticmethod
    def _token_row(r: Any) -> TokenRow:
        return TokenRow(
            id=r["id"],
            org=r["org"],
            name=r["name"],
            scopes=tuple(x for x in r["scopes"].split(",") if x),
            created_at=_utc(r["created_at"]),
            revoked_at=utc(r["revoked_at"]),
            last_used_at=utc(r["last_used_at"]),
        )

    def create_token(
        self, org: str, name: str, *, scopes: tuple[str, ...] = SCOPES
    ) -> CreatedToken:
        """Create a token for ``org`` named ``name``; the plaintext is returned once only."""
        org, name = org.strip(), name.strip()
        if not org or not name:
            raise UsageError("a token needs an organisation and a name")
        bad = [x for x in scopes if x not in SCOPES]
        if bad:
            raise UsageError(f"unknown scope(s) {', '.join(bad)}; known: {', '.join(SCOPES)}")
        plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            oid = _org_id(conn, org)
            taken = conn.execute(
                select(s.tokens.c.id).where(s.tokens.c.org_id == oid, s.tokens.c.name == name)
            ).scalar()
            if taken is not None:
                raise UsageError(
                    f"organisation {org!r} already has a token named {name!r}; "
                    "choose another name or revoke it first"
                )
            tid = conn.execute(
                s.tokens.insert()
                .values(
                    org_id=oid,
                    name=name,
                    token_hash=hash_token(plaintext),
                    scopes=",".join(scopes),
                    created_at=datetime.now(UTC),
                )
                .returning(s.tokens.c.id)
            ).scalar_one()
            row = conn.execute(self._token_query().where(s.tokens.c.id == tid)).mappings().one()
        return CreatedToken(row=self._token_row(row), token=plaintext)

    def check_token(self, plaintext: str) -> TokenRow | None:
        """The token row for a plaintext token, or None if unknown or revoked."""
        if not plaintext:
            return None
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    self._token_query().where(
                        s.tokens.c.token_hash == hash_token(plaintext),
                        s.tokens.c.revoked_at.is_(None),
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            now = datetime.now(UTC)
            conn.execute(
                s.tokens.update().where(s.tokens.c.id == row["id"]).values(last_used_at=now)
            )
        return replace(self._token_row(row), last_used_at=now)

    def list_tokens(self, org: str | None = None) -> list[TokenRow]:
        q = self._token_query().order_by(s.orgs.c.name, s.tokens.c.name)
        if org:
            q = q.where(s.orgs.c.name == org)
        with self.engine.connect() as conn:
            return [self._token_row(r) for r in conn.execute(q).mappings()]

    def revoke_token(self, token_id: int) -> TokenRow:
        """Revoke a token by id; it stops working at once. Revoking twice is harmless."""
        with self.engine.begin() as conn:
            found = conn.execute(select(s.tokens.c.id).where(s.tokens.c.id == token_id)).scalar()
            if found is None:
                raise NotFoundError(
                    f"no token with id {token_id}; `tritonwatch token list` lists them"
                )
            conn.execute(
                s.tokens.update()
                .where(s.tokens.c.id == token_id, s.tokens.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            row = (
                conn.execute(self._token_query().where(s.tokens.c.id == token_id)).mappings().one()
            )
        return self._token_row(row)

    # -- saved views -------------------------------------------------------------------------
    @staticmethod
    def _view(r: Any) -> SavedView:
        return SavedView(
            id=r["id"],
            name=r["name"],
            page=r["page"],
            query=r["query"],
            token_id=r["token_id"],
            created_at=_utc(r["created_at"]),
        )

    def save_view(self, name: str, page: str, query: str, token_id: int | None) -> SavedView:
        """Store a named view (a page and its URL query); its owner may overwrite it."""
        name, page = name.strip(), page.strip().strip("/")
        if not name or len(name) > 200:
            raise UsageError("a view needs a name of 1 to 200 characters")
        if not page or len(page) > 50:
            raise UsageError("a view needs a page name of 1 to 50 characters")
        query = query.lstrip("?")
        with self.engine.begin() as conn:
            old = conn.execute(select(s.views).where(s.views.c.name == name)).mappings().first()
            values = {
                "page": page,
                "query": query,
                "token_id": token_id,
                "created_at": datetime.now(UTC),
            }
            if old is None:
                conn.execute(s.views.insert().values(name=name, **values))
            elif old["token_id"] is not None and old["token_id"] != token_id:
                raise UsageError(f"view {name!r} belongs to another token; choose another name")
            else:
                conn.execute(s.views.update().where(s.views.c.id == old["id"]).values(**values))
            row = conn.execute(select(s.views).where(s.views.c.name == name)).mappings().one()
        return self._view(row)

    def views(self) -> list[SavedView]:
        with self.engine.connect() as conn:
            return [
                self._view(r)
                for r in conn.execute(select(s.views).order_by(s.views.c.name)).mappings()
            ]

    def get_view(self, name: str) -> SavedView:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.views).where(s.views.c.name == name)).mappings().first()
        if row is None:
            raise NotFoundError(f"no saved view named {name!r}")
        return self._view(row)
