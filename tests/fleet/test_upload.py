"""POST /api/v1/runs against a real server on PostgreSQL: auth, idempotency, validation, orgs."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fleetkit import SHARED_LIMIT_MB, Server, pg_counts

from tritonwatch.store import Store
from tritonwatch.store.alerts import AlertDraft
from tritonwatch.testing import make_run_document

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def tokens(module_pg: str) -> dict[str, Any]:
    with Store.open(module_pg) as st:
        a = st.access.create_token("acme", "runner-a", scopes=("upload",))
        a_triage = st.access.create_token("acme", "triager", scopes=("triage",))
        b = st.access.create_token("globex", "runner-b", scopes=("upload", "triage"))
        gone = st.access.create_token("acme", "old-runner")
        st.access.revoke_token(gone.row.id)
    return {"a": a, "a_triage": a_triage, "b": b, "revoked": gone}


def _auth(tok: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok.token}"}


def _post(srv: Server, doc: Any, tok: Any | None = None, **kw: Any) -> httpx.Response:
    headers = {**(_auth(tok) if tok else {}), **kw.pop("headers", {})}
    if "content" not in kw:
        kw["json"] = doc
    return httpx.post(f"{srv.url}/api/v1/runs", headers=headers, timeout=30, **kw)


def test_upload_is_idempotent_and_the_run_belongs_to_the_tokens_org(
    shared_server: Server, module_pg: str, tokens: dict[str, Any]
) -> None:
    doc = make_run_document(n_results=5, machine="h100-a")
    first = _post(shared_server, doc, tokens["a"])
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] is True and body["run"] == doc["run"]["id"]
    assert body["org"] == "acme" and body["machine"] == "acme/h100-a"
    again = _post(shared_server, doc, tokens["a"])
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert again.json()["created"] is False
    with Store.open(module_pg) as st:
        runs = st.runs.find(org="acme", limit=None)
        stored = [r for r in runs if r.uuid == doc["run"]["id"]]
        assert len(stored) == 1 and stored[0].n_results == 5
        assert st.runs.get(doc["run"]["id"]).info["org"] == "acme"
    counts = pg_counts(module_pg)
    assert counts["dup_uuids"] == 0 and counts["partial"] == 0
    # the dashboard's org filter sees it
    listed = httpx.get(f"{shared_server.url}/api/v1/runs", params={"org": "acme"}).json()
    assert doc["run"]["id"] in {r["uuid"] for r in listed["items"]}


def test_concurrent_retries_of_one_new_run_store_it_once(
    shared_server: Server, module_pg: str, tokens: dict[str, Any]
) -> None:
    doc = make_run_document(n_results=50, machine="race")
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(lambda _: _post(shared_server, doc, tokens["a"]).status_code, range(8))
        )
    assert sorted(codes) == [200] * 7 + [201]
    c = pg_counts(module_pg)
    assert c["dup_uuids"] == 0 and c["partial"] == 0


def test_no_write_without_a_valid_token(
    shared_server: Server, module_pg: str, tokens: dict[str, Any]
) -> None:
    before = pg_counts(module_pg)
    doc = make_run_document(n_results=2)
    cases = {
        "none": {},
        "not bearer": {"Authorization": f"Basic {tokens['a'].token}"},
        "unknown": {"Authorization": "Bearer tw_not-a-real-token"},
        "revoked": _auth(tokens["revoked"]),
    }
    for what, headers in cases.items():
        r = _post(shared_server, doc, headers=headers)
        assert r.status_code == 401, what
        assert r.headers.get("www-authenticate") == "Bearer"
        assert "token" in r.json()["error"], what
    scope = _post(shared_server, doc, tokens["a_triage"])
    assert scope.status_code == 403 and "upload" in scope.json()["error"]
    assert pg_counts(module_pg) == before


def test_malformed_invalid_and_oversized_payloads_get_a_4xx_with_a_message(
    shared_server: Server, module_pg: str, tokens: dict[str, Any]
) -> None:
    before = pg_counts(module_pg)
    tok = tokens["a"]
    r = _post(shared_server, None, tok, content=b'{"format": ')
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = _post(shared_server, None, tok, content=b"[1, 2]")
    assert r.status_code == 400 and "one JSON object" in r.json()["error"]
    r = _post(shared_server, None, tok, content=b"")
    assert r.status_code == 400 and "no body" in r.json()["error"]

    bad = make_run_document(n_results=2)
    bad["results"][1]["samples"] = []
    bad["results"][0]["dtype"] = ""
    del bad["machine"]["name"]
    r = _post(shared_server, bad, tok)
    assert r.status_code == 422
    msg = r.json()["error"]
    assert "machine.name: Field required" in msg
    assert "results.0.dtype" in msg and "results.1" in msg

    nul = make_run_document(n_results=1, machine="a\x00b")
    assert _post(shared_server, nul, tok).status_code == 422
    nan = make_run_document(n_results=1)
    nan["results"][0]["extra"] = {"x": float("nan")}
    r = _post(shared_server, None, tok, content=json.dumps(nan).encode())
    assert r.status_code == 422 and "results.0.extra.x" in r.json()["error"]
    long_device = make_run_document(n_results=1)
    long_device["run"]["device"] = "d" * 50
    r = _post(shared_server, long_device, tok)
    assert r.status_code == 422 and "run.device" in r.json()["error"]

    limit = SHARED_LIMIT_MB * 1024 * 1024
    big = make_run_document(n_results=1)
    big["run"]["padding"] = "x" * (limit + 10)
    payload = json.dumps(big).encode()
    r = _post(shared_server, None, tok, content=payload)
    assert r.status_code == 413 and "max_upload_mb" in r.json()["error"]

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(payload), 256 * 1024):
            yield payload[i : i + 256 * 1024]

    r = _post(shared_server, None, tok, content=chunks())
    assert r.status_code == 413 and "limit" in r.json()["error"]
    assert pg_counts(module_pg) == before


def _alert_for(st: Store, run_uuid: str, org: str) -> int:
    d = st.runs.get(run_uuid)
    from sqlalchemy import select

    from tritonwatch.store import schema as s

    with st.engine.connect() as conn:
        sid, mid, rid = conn.execute(
            select(s.results.c.series_id, s.results.c.machine_id, s.results.c.run_id)
            .where(s.results.c.run_id == d.summary.id)
            .limit(1)
        ).one()
        oid = conn.execute(select(s.orgs.c.id).where(s.orgs.c.name == org)).scalar_one()
    res = st.alerts.upsert(
        [
            AlertDraft(
                series_id=sid,
                machine_id=mid,
                last_good_run_id=rid,
                first_bad_run_id=rid,
                direction="regression",
                ratio=1.2,
                ci_low=1.1,
                ci_high=1.3,
                p=0.001,
                q=0.01,
                org_id=oid,
            )
        ]
    )
    return res.ids[0]


def test_a_token_can_neither_write_nor_triage_another_orgs_data(
    shared_server: Server, module_pg: str, tokens: dict[str, Any]
) -> None:
    mine = make_run_document(n_results=3, machine="shared-name")
    assert _post(shared_server, mine, tokens["a"]).status_code == 201
    before = pg_counts(module_pg)
    # globex re-sending acme's run id, or claiming acme in the run, is refused
    stolen = _post(shared_server, mine, tokens["b"])
    assert stolen.status_code == 409 and "another organisation" in stolen.json()["error"]
    claim = make_run_document(n_results=3, org="acme")
    r = _post(shared_server, claim, tokens["b"])
    assert r.status_code == 403 and "acme" in r.json()["error"]
    assert pg_counts(module_pg) == before
    # the same machine name in two orgs makes two machines, never one shared series
    theirs = make_run_document(n_results=3, machine="shared-name")
    assert _post(shared_server, theirs, tokens["b"]).json()["machine"] == "globex/shared-name"
    with Store.open(module_pg) as st:
        names = {m.name for m in st.series.machines()}
        assert {"acme/shared-name", "globex/shared-name"} <= names
        alert_id = _alert_for(st, mine["run"]["id"], "acme")
    url = f"{shared_server.url}/api/v1/alerts/{alert_id}/status"
    r = httpx.post(url, json={"status": "acknowledged"}, headers=_auth(tokens["b"]))
    assert r.status_code == 403 and "acme" in r.json()["error"]
    assert "''s" not in r.json()["error"]  # the toast once read "'globex''s alerts"
    r = httpx.post(url, json={"status": "acknowledged"}, headers=_auth(tokens["a"]))
    assert r.status_code == 403  # acme's upload-only runner token may not triage either
    r = httpx.post(url, json={"status": "acknowledged"}, headers=_auth(tokens["a_triage"]))
    assert r.status_code == 200, r.text
    with Store.open(module_pg) as st:
        assert st.alerts.get(alert_id).status == "acknowledged"
        assert [e.actor for e in st.alerts.history(alert_id)][-1] == "acme/triager"


def test_a_new_run_id_is_refused_by_uuid_format(
    shared_server: Server, tokens: dict[str, Any]
) -> None:
    doc = make_run_document(n_results=1, run_id="not-a-uuid")
    r = _post(shared_server, doc, tokens["a"])
    assert r.status_code == 422 and "run.id" in r.json()["error"]
    assert uuid.UUID(make_run_document(n_results=1)["run"]["id"])
