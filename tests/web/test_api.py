"""The JSON API through the app: lists, filters, pagination, exports, errors and tokens."""

from __future__ import annotations

import csv
import io
from urllib.parse import quote

import pytest
from webseed import NIGHTS, STEP_NIGHT, XSS, Site

from tritonwatch.web.export import parquet_available

STEP = {
    "operator": "matmul",
    "provider": "triton",
    "dtype": "fp16",
    "metric": "time",
    "machine": "h100-a",
    "shape": '{"K":1024,"M":1024,"N":1024}',
}


def test_runs_paginate_and_filter(site: Site) -> None:
    c = site.client
    page1 = c.get("/api/v1/runs", params={"machine": "h100-a", "limit": 3}).json()
    assert len(page1["items"]) == 3 and page1["next_offset"] == 3
    page2 = c.get("/api/v1/runs", params={"machine": "h100-a", "limit": 3, "offset": 3}).json()
    uuids = [r["uuid"] for r in page1["items"] + page2["items"]]
    assert len(set(uuids)) == 6
    assert uuids == list(reversed(site.seeded.runs["h100-a"]))[:6]  # newest first
    assert {r["machine"] for r in page1["items"]} == {"h100-a"}


@pytest.mark.parametrize("limit", [0, 1001, "x"])
def test_bad_pagination_is_a_json_error(site: Site, limit: object) -> None:
    r = site.client.get("/api/v1/runs", params={"limit": limit})
    assert r.status_code == 422
    assert set(r.json()) == {"error"} and "limit" in r.json()["error"]


def test_run_detail_and_document(site: Site) -> None:
    ref = site.seeded.runs["h100-a"][0]
    d = site.client.get(f"/api/v1/runs/{ref[:8]}").json()
    assert d["run"]["uuid"] == ref and d["machine"]["name"] == "h100-a"
    assert len(d["items"]) == d["run"]["n_results"]
    assert "samples" not in d["items"][0]
    with_samples = site.client.get(f"/api/v1/runs/{ref}", params={"samples": "true"}).json()
    assert len(with_samples["items"][0]["samples"]) == 15
    doc = site.client.get(f"/api/v1/runs/{ref}/document").json()
    assert doc["format"] == "tritonwatch.run/1" and doc["run"]["command"].startswith(
        "tritonwatch run"
    )


def test_unknown_run_is_404_json(site: Site) -> None:
    r = site.client.get("/api/v1/runs/ffffffff")
    assert r.status_code == 404 and "no run" in r.json()["error"]


def test_results_filters(site: Site) -> None:
    r = site.client.get("/api/v1/results", params={**STEP, "limit": 1000}).json()
    assert len(r["items"]) == NIGHTS
    assert {x["operator"] for x in r["items"]} == {"matmul"}
    assert r["next_offset"] is None
    run = site.seeded.runs["mi300-b"][0]
    assert len(site.client.get("/api/v1/results", params={"run": run}).json()["items"]) == 14


def test_series_catalog_and_points(site: Site) -> None:
    cat = site.client.get("/api/v1/series", params=STEP).json()["items"]
    assert len(cat) == 1
    ref = cat[0]
    pts = site.client.get(f"/api/v1/series/{ref['series_id']}/{ref['machine_id']}").json()["items"]
    assert len(pts) == NIGHTS
    values = [p["value"] for p in pts]
    before, after = values[:STEP_NIGHT], values[STEP_NIGHT:]
    assert min(after) > 1.15 * max(before)  # the planted 20% step
    assert pts[-1]["triton_commit"] == "b" * 40 and pts[0]["triton_version"] == "3.9.0"


def test_explore_normalises_and_exports_csv(site: Site) -> None:
    params = {k: v for k, v in STEP.items() if k != "provider"}
    rel = site.client.get(
        "/api/v1/explore", params={**params, "provider": "triton", "norm": "first"}
    ).json()
    assert rel["items"][0]["value"] == pytest.approx(1.0)
    assert rel["alerts"][0]["id"] == site.seeded.alert_id
    vs_aten = site.client.get(
        "/api/v1/explore", params={**params, "norm": "provider", "base": "aten"}
    ).json()
    assert {i["provider"] for i in vs_aten["items"]} == {"triton"}
    assert vs_aten["items"][0]["value"] == pytest.approx(0.5 / 0.55, rel=0.02)
    text = site.client.get("/api/v1/explore", params={**STEP, "format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == NIGHTS and rows[0]["operator"] == "matmul"


def test_explore_rejects_bad_normalisation(site: Site) -> None:
    r = site.client.get("/api/v1/explore", params={"norm": "provider"})
    assert r.status_code == 400 and "base=PROVIDER" in r.json()["error"]


def test_overview_heatmap_shows_the_step(site: Site, sqlite_url: str) -> None:
    ov = site.client.get("/api/v1/overview").json()
    assert len(ov["latest"]) == 3
    assert len(ov["open_alerts"]["major"]) == 2
    hm = ov["heatmap"]
    assert "matmul" in hm["operators"] and XSS in hm["operators"]


def test_heatmap_sees_a_step_between_the_newest_two_runs(tmp_path: object) -> None:
    from webseed import seed

    from tritonwatch.store import Store

    with Store.open(f"sqlite:///{tmp_path}/step.db") as st:
        seed(st, nights=STEP_NIGHT + 1)  # the newest run is the first bad one
        cells = {(c.operator, c.dtype, c.machine): c for c in st.overview.heatmap()}
    fp16 = cells[("matmul", "fp16", "h100-a")]
    assert fp16.worst == pytest.approx(1.2, rel=0.03)  # the 1024 time and pct_peak series
    assert cells[("matmul", "bf16", "h100-a")].change == pytest.approx(1.0, abs=0.02)
    assert cells[("softmax", "fp16", "mi300-b")].change == pytest.approx(1.0, abs=0.02)


def test_alerts_list_detail_and_triage(site: Site) -> None:
    c, aid = site.client, site.seeded.alert_id
    items = c.get("/api/v1/alerts", params={"operator": "matmul"}).json()["items"]
    assert [a["id"] for a in items] == [aid] and items[0]["severity"] == "major"
    d = c.get(f"/api/v1/alerts/{aid}").json()
    assert len(d["before"]) == 5 * 15 and len(d["after"]) == 3 * 15
    assert ["driver", "550.54", "555.42"] in d["machine_changes"]
    body = {"status": "confirmed", "note": "real"}
    assert c.post(f"/api/v1/alerts/{aid}/status", json=body).status_code == 401
    bad = c.post(
        f"/api/v1/alerts/{aid}/status", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert bad.status_code == 401 and "unknown or revoked" in bad.json()["error"]
    ok = c.post(
        f"/api/v1/alerts/{aid}/status", json=body, headers={"Authorization": f"Bearer {site.token}"}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["alert"]["status"] == "confirmed"
    last = ok.json()["history"][-1]
    assert (last["actor"], last["new_status"], last["note"]) == ("acme/ci", "confirmed", "real")
    wrong = c.post(
        f"/api/v1/alerts/{aid}/status",
        json={"status": "maybe"},
        headers={"Authorization": f"Bearer {site.token}"},
    )
    assert wrong.status_code == 422 and "status" in wrong.json()["error"]


def test_revoked_token_and_missing_scope(site: Site) -> None:
    made = site.store.access.create_token("acme", "uploader", scopes=("upload",))
    r = site.client.post(
        f"/api/v1/alerts/{site.seeded.alert_id}/status",
        json={"status": "fixed"},
        headers={"Authorization": f"Bearer {made.token}"},
    )
    assert r.status_code == 403 and "triage" in r.json()["error"]
    row = site.store.access.check_token(site.token)
    assert row is not None
    site.store.access.revoke_token(row.id)
    r = site.client.post(
        "/api/v1/views",
        json={"name": "v", "page": "runs"},
        headers={"Authorization": f"Bearer {site.token}"},
    )
    assert r.status_code == 401


def test_views_need_a_token_and_round_trip(site: Site) -> None:
    c = site.client
    body = {"name": "fp16 step", "page": "series", "query": "?operator=matmul&dtype=fp16"}
    assert c.post("/api/v1/views", json=body).status_code == 401
    r = c.post("/api/v1/views", json=body, headers={"Authorization": f"Bearer {site.token}"})
    assert r.status_code == 201 and r.json()["query"] == "operator=matmul&dtype=fp16"
    assert [v["name"] for v in c.get("/api/v1/views").json()["items"]] == ["fp16 step"]
    assert c.get(f"/api/v1/views/{quote('fp16 step')}").json()["page"] == "series"
    page = c.get("/view", params={"name": "fp16 step"}, follow_redirects=False)
    assert (
        page.status_code == 303 and page.headers["location"] == "/series?operator=matmul&dtype=fp16"
    )
    other = site.store.access.create_token("other", "x").token
    taken = c.post("/api/v1/views", json=body, headers={"Authorization": f"Bearer {other}"})
    assert taken.status_code == 400 and "belongs to another token" in taken.json()["error"]


def test_codegen_and_comparisons(site: Site) -> None:
    c = site.client
    reports = c.get("/api/v1/codegen").json()["items"]
    assert len(reports) == 1 and reports[0]["summary"]["changed"] == 1
    rows = c.get(f"/api/v1/codegen/{reports[0]['uuid'][:6]}").json()["items"]
    assert rows[0]["first_changed_stage"] == "TTGIR" and rows[0]["b"]["metrics"]["spills"] == 4
    page = c.get(f"/codegen/{reports[0]['uuid']}").text
    assert "128 → 168 (+40)" in page and "wgmma -8" in page  # signals up front
    assert "+  mma &lt;script&gt;" in page  # the diff, escaped, one click away
    comps = c.get("/api/v1/comparisons").json()["items"]
    detail = c.get(f"/api/v1/comparisons/{comps[0]['id']}", params={"format": "csv"}).text
    assert detail.splitlines()[0].startswith("operator,ratio")
    assert c.get("/api/v1/codegen/zzzz").status_code == 404


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_every_table_exports(site: Site, fmt: str) -> None:
    if fmt == "parquet" and not parquet_available():
        pytest.skip("pyarrow is not installed")
    for path in (
        "/api/v1/runs",
        "/api/v1/results",
        "/api/v1/series",
        "/api/v1/alerts",
        "/api/v1/machines",
        "/api/v1/heatmap",
        "/api/v1/codegen",
        "/api/v1/comparisons",
        "/api/v1/views",
        f"/api/v1/runs/{site.seeded.runs['h100-a'][0]}",
    ):
        r = site.client.get(path, params={"format": fmt})
        assert r.status_code == 200, (path, r.text)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(r.content))
            assert table.num_rows == len(site.client.get(path).json()["items"]), path
        elif fmt == "csv":
            assert r.headers["content-type"].startswith("text/csv")


def test_openapi_and_offline_docs(site: Site) -> None:
    spec = site.client.get("/openapi.json").json()
    for p in (
        "/api/v1/runs",
        "/api/v1/results",
        "/api/v1/series",
        "/api/v1/alerts",
        "/api/v1/codegen",
        "/api/v1/views",
        "/api/v1/alerts/{alert_id}/status",
    ):
        assert p in spec["paths"], p
    docs = site.client.get("/docs").text
    assert "/openapi.json" in docs and "cdn" not in docs.lower() and "https://" not in docs
    js = site.client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000


def test_api_on_sqlite_and_postgres(any_site: Site) -> None:
    c = any_site.client
    assert len(c.get("/api/v1/runs", params={"limit": 1000}).json()["items"]) == 2 * NIGHTS + 2
    cat = c.get("/api/v1/series", params=STEP).json()["items"]
    pts = c.get(f"/api/v1/series/{cat[0]['series_id']}/{cat[0]['machine_id']}").json()["items"]
    assert len(pts) == NIGHTS
    ov = c.get("/api/v1/overview").json()
    assert len(ov["latest"]) == 3 and ov["heatmap"]["operators"]
    r = c.post(
        "/api/v1/views",
        json={"name": "pg", "page": "runs", "query": "machine=h100-a"},
        headers={"Authorization": f"Bearer {any_site.token}"},
    )
    assert r.status_code == 201
    for path in (
        "/",
        "/series?operator=matmul",
        "/runs",
        "/alerts",
        f"/alerts/{any_site.seeded.alert_id}",
        "/codegen",
        "/compare",
        "/views",
    ):
        assert c.get(path).status_code == 200, path
