"""Upload tokens and saved views, as ``store.access``.

Tokens are shown once and stored only as their sha256.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from typing import cast as cast_

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection, RowMapping

from ..errors import NotFoundError, UsageError
from . import schema as s
from .database import Caches, Database
from .limits import max_length
from .rows import utc

TOKEN_PREFIX = "tw_"
SCOPES = ("upload", "triage", "views")
MAX_VIEW_NAME = max_length(s.views.c.name)
MAX_VIEW_PAGE = max_length(s.views.c.page)


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


class Access:
    """``store.access``: create, check, list and revoke tokens; save and read views."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- tokens ------------------------------------------------------------------------------
    @staticmethod
    def _token_query() -> Select[Any]:
        return select(s.tokens, s.orgs.c.name.label("org")).join(
            s.orgs, s.orgs.c.id == s.tokens.c.org_id
        )

    @staticmethod
    def _token_row(r: RowMapping) -> TokenRow:
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
        with self.db.writing() as (conn, staged):
            oid = self._org_id(conn, org, staged)
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
        with self.db.begin() as conn:
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

    def tokens(self, org: str | None = None) -> list[TokenRow]:
        q = self._token_query().order_by(s.orgs.c.name, s.tokens.c.name)
        if org:
            q = q.where(s.orgs.c.name == org)
        with self.db.connect() as conn:
            return [self._token_row(r) for r in conn.execute(q).mappings()]

    def revoke_token(self, token_id: int) -> TokenRow:
        """Revoke a token by id; it stops working at once. Revoking twice is harmless."""
        with self.db.begin() as conn:
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

    def _org_id(self, conn: Connection, name: str, staged: Caches) -> int:
        oid = self.db.org_id(conn, name, staged)
        assert oid is not None  # name is not empty: create_token checked it
        return oid

    # -- saved views -------------------------------------------------------------------------
    @staticmethod
    def _view(r: RowMapping) -> SavedView:
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
        if not name or len(name) > MAX_VIEW_NAME:
            raise UsageError(f"a view needs a name of 1 to {MAX_VIEW_NAME} characters")
        if not page or len(page) > MAX_VIEW_PAGE:
            raise UsageError(f"a view needs a page name of 1 to {MAX_VIEW_PAGE} characters")
        query = query.lstrip("?")
        with self.db.begin() as conn:
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
        with self.db.connect() as conn:
            return [
                self._view(r)
                for r in conn.execute(select(s.views).order_by(s.views.c.name)).mappings()
            ]

    def get_view(self, name: str) -> SavedView:
        with self.db.connect() as conn:
            row = conn.execute(select(s.views).where(s.views.c.name == name)).mappings().first()
        if row is None:
            raise NotFoundError(f"no saved view named {name!r}")
        return self._view(row)
