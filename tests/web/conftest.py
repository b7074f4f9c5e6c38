"""An app over a seeded database, and a test client for it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from webseed import Site, seed

with warnings.catch_warnings():  # starlette's TestClient warns about httpx at import time
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from tritonwatch.store import Store  # noqa: E402
from tritonwatch.web.app import create_app  # noqa: E402


def make_site(store: Store) -> Iterator[Site]:
    seeded = seed(store)
    token = store.access.create_token("acme", "ci").token
    with TestClient(create_app(store)) as client:
        yield Site(client=client, store=store, seeded=seeded, token=token)


@pytest.fixture
def site(sqlite_url: str) -> Iterator[Site]:
    """A seeded SQLite store behind the app."""
    st = Store.open(sqlite_url)
    try:
        yield from make_site(st)
    finally:
        st.close()


@pytest.fixture
def any_site(store: Store) -> Iterator[Site]:
    """The same, on SQLite and on PostgreSQL."""
    yield from make_site(store)
