"""The shared server under hostile use (issue 15), against a real `tritonwatch serve` process on
SQLite and on PostgreSQL: scopes on every write, CSV formula injection, inputs that once
answered 500, conflicting re-sends, and what the OpenAPI document and 405s say.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fleetkit import Server, make_run

from tritonwatch.store import Store
from tritonwatch.store.access import SCOPES
from tritonwatch.store.alerts import AlertDraft


@dataclass
class Site:
    """A server on one backend, its database URL and a token per scope (plus one with all)."""

    srv: Server
    db: str
    tokens: dict[str, str]
    alert_id: int

    def url(self, path: str) -> str:
        return self.srv.url + path

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}


def _seed_alert(db: str) -> int:
    """An alert on the first stored series, so triage has something to change."""
    with Store.open(db) as st:
        ref = st.series.catalog(limit=1)[0]
        runs = st.runs.find(limit=2)
        draft = AlertDraft(
            series_id=ref.series_id,
            machine_id=ref.machine_id,
            last_good_run_id=runs[-1].id,
            first_bad_run_id=runs[0].id,
            direction="regression",
            ratio=1.2,
            ci_low=1.1,
            ci_high=1.3,
            p=1e-6,
            q=1e-5,
            details={},
        )
        return int(st.alerts.upsert([draft]).created[0])


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path_factory.mktemp('db') / 'tw.db'}"
    else:
        db = request.getfixturevalue("module_pg")
    Store.upgrade(db)
    with Store.open(db) as st:
        tokens = {s: st.access.create_token("acme", f"only-{s}", scopes=(s,)).token for s in SCOPES}
        tokens["all"] = st.access.create_token("acme", "everything").token
    from conftest import _servers

    srv = Server(db, tmp_path_factory.mktemp("server") / "server.log")
    _servers.append(srv)
    srv.start()
    try:
        for i in range(2):
            r = httpx.post(
                srv.url + "/api/v1/runs",
                json=make_run(3, started_at=f"2026-11-0{i + 1}T00:00:00Z", seed=i),
                headers={"Authorization": f"Bearer {tokens['upload']}"},
                timeout=30,
            )
            assert r.status_code == 201, r.text
        yield Site(srv=srv, db=db, tokens=tokens, alert_id=_seed_alert(db))
    finally:
        srv.stop()
        _servers.remove(srv)


# -- 1. every write checks its scope ---------------------------------------------------------------
# The scope each write route needs. A write route added to the API without an entry here fails
# the walk below, so none can ship unchecked.
WRITE_SCOPES = {
    ("post", "/api/v1/runs"): "upload",
    ("post", "/api/v1/alerts/{alert_id}/status"): "triage",
    ("post", "/api/v1/views"): "views",
}


def _write_request(site: Site, method: str, path: str) -> dict[str, Any]:
    """A request that the route would accept from a token with its scope."""
    if path == "/api/v1/runs":
        return {"json": make_run(2)}
    if path == "/api/v1/alerts/{alert_id}/status":
        return {"json": {"status": "acknowledged", "note": "seen"}}
    if path == "/api/v1/views":
        return {"json": {"name": f"v-{uuid.uuid4().hex[:8]}", "page": "runs", "query": ""}}
    raise AssertionError(f"no request written for {method.upper()} {path}")


def test_every_write_route_checks_its_scope(site: Site) -> None:
    doc = httpx.get(site.url("/openapi.json"), timeout=30).json()
    writes = {
        (method, path): op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in ("post", "put", "patch", "delete")
    }
    assert set(writes) == set(WRITE_SCOPES)
    seen: dict[tuple[str, str, str], int] = {}
    for (method, path), scope in WRITE_SCOPES.items():
        # the document declares the scope, and the scheme it names is defined
        assert writes[(method, path)]["security"] == [{"bearer": [scope]}]
        assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        url = site.url(path.replace("{alert_id}", str(site.alert_id)))
        for who in ("none", *SCOPES, "all"):
            r = httpx.request(
                method,
                url,
                headers=site.auth(who),
                timeout=30,
                **_write_request(site, method, path),
            )
            seen[(path, scope, who)] = r.status_code
            if who == "none":
                assert r.status_code == 401, (path, who, r.text)
            elif who in (scope, "all"):
                assert r.status_code in (200, 201), (path, who, r.text)
            else:
                assert r.status_code == 403, (path, who, r.text)
                assert scope in r.json()["error"]
    assert len(seen) == len(WRITE_SCOPES) * (len(SCOPES) + 2)
