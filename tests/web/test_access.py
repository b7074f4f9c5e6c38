"""Tokens and saved views in the Store, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from tritonwatch.errors import NotFoundError, UsageError
from tritonwatch.store import Store
from tritonwatch.store import schema as s


def test_token_is_shown_once_and_stored_hashed(store: Store) -> None:
    made = store.access.create_token("acme", "runner-1")
    assert made.token.startswith("tw_") and len(made.token) > 40
    with store.engine.connect() as conn:
        stored = conn.execute(select(s.tokens.c.token_hash)).scalars().all()
    assert stored == [hashlib.sha256(made.token.encode()).hexdigest()]
    row = store.access.check_token(made.token)
    assert row is not None and row.actor == "acme/runner-1" and "triage" in row.scopes
    assert row.last_used_at is not None
    assert store.access.check_token(made.token + "x") is None
    assert store.access.check_token("") is None


def test_tokens_list_revoke_and_duplicates(store: Store) -> None:
    a = store.access.create_token("acme", "a")
    store.access.create_token("acme", "b", scopes=("upload",))
    store.access.create_token("other", "a")  # the same name in another organisation is fine
    with pytest.raises(UsageError, match="already has a token named 'a'"):
        store.access.create_token("acme", "a")
    with pytest.raises(UsageError, match="unknown scope"):
        store.access.create_token("acme", "c", scopes=("admin",))
    assert [(t.org, t.name) for t in store.access.tokens()] == [
        ("acme", "a"),
        ("acme", "b"),
        ("other", "a"),
    ]
    assert [t.name for t in store.access.tokens(org="other")] == ["a"]
    revoked = store.access.revoke_token(a.row.id)
    assert revoked.revoked_at is not None
    assert store.access.check_token(a.token) is None
    assert store.access.revoke_token(a.row.id).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(NotFoundError):
        store.access.revoke_token(999_999)


def test_saved_views(store: Store) -> None:
    t1 = store.access.create_token("acme", "a").row.id
    t2 = store.access.create_token("acme", "b").row.id
    v = store.access.save_view("fp16", "series", "?operator=matmul&dtype=fp16", t1)
    assert v.query == "operator=matmul&dtype=fp16" and v.page == "series"
    store.access.save_view("fp16", "series", "operator=matmul", t1)  # the owner may overwrite
    assert store.access.get_view("fp16").query == "operator=matmul"
    with pytest.raises(UsageError, match="belongs to another token"):
        store.access.save_view("fp16", "runs", "", t2)
    store.access.save_view("alerts", "alerts", "status=new", t2)
    assert [x.name for x in store.access.views()] == ["alerts", "fp16"]
    with pytest.raises(NotFoundError):
        store.access.get_view("nope")
    with pytest.raises(UsageError):
        store.access.save_view(" ", "series", "", t1)
