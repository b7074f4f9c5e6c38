"""The dashboard in a real headless Chromium against a real `tritonwatch serve`."""

from __future__ import annotations

import csv
import io
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from webseed import STEP_NIGHT, XSS, XSS_MACHINE

pytestmark = [pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
Server = Any  # tests/browser/conftest.py's Server (conftest modules are not importable by name)

STEP = {
    "operator": "matmul",
    "provider": "triton",
    "dtype": "fp16",
    "metric": "time",
    "machine": "h100-a",
    "shape": '{"K":1024,"M":1024,"N":1024}',
}


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def set_token(page: Any, server: Server, token: str) -> None:
    page.goto(server.url + "/views")
    page.evaluate("t => localStorage.setItem('tritonwatch.token', t)", token)


def test_overview_shows_runs_alerts_and_heatmap(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    assert page.locator("h1").inner_text() == "Overview"
    rows = page.locator("#latest-runs tbody tr")
    assert rows.count() == 3
    assert "h100-a" in page.locator("#latest-runs").inner_text()
    # Every open alert is a 20% step: "major".
    assert page.locator(".sev.major strong").inner_text() == str(server.seeded.n_alerts)
    assert page.locator(".sev.critical strong").inner_text() == "0"
    page.wait_for_selector("#heatmap .main-svg")
    ticks = page.locator("#heatmap .ytick text").all_text_contents()
    assert "matmul" in ticks and XSS in ticks  # the operator named <script> is a label, as text
    shot(page, "overview")
    assert page.errors == [] and page.dialogs == []


def test_filter_to_a_series_and_see_its_change_point(page: Any, server: Server) -> None:
    page.goto(server.url + "/series")
    form = page.locator("#series-filters")
    for field, value in STEP.items():
        form.locator(f"select[name={field}]").select_option(value)
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#series-chart .main-svg")
    query = parse_qs(urlparse(page.url).query)
    assert {k: v[0] for k, v in query.items() if k in STEP} == STEP  # the filters are the URL
    names = page.evaluate("document.getElementById('series-chart').data.map(t => t.name)")
    assert "change points" in names and len(names) == 2
    marker = page.evaluate(
        "document.getElementById('series-chart').data.find(t => t.name === 'change points')"
    )
    assert marker["customdata"] == [server.seeded.alert_id]
    # The change point sits on the first bad night and is listed with a link to its alert.
    assert marker["x"][0].startswith(f"2026-11-0{1 + STEP_NIGHT}")
    link = page.locator(f"#series-alerts a[href='/alerts/{server.seeded.alert_id}']")
    assert link.count() == 1
    shot(page, "series")
    # The chart downloads as a PNG through Plotly's modebar (offline, under our CSP).
    page.hover("#series-chart")
    with page.expect_download() as dl:
        page.locator('#series-chart .modebar-btn[data-title="Download plot as a PNG"]').click()
    png = Path(dl.value.path())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    link.click()
    page.wait_for_url(re.compile(rf"/alerts/{server.seeded.alert_id}$"))
    assert page.errors == []


def test_save_a_view_and_reload_it(page: Any, server: Server) -> None:
    set_token(page, server, server.token)
    page.goto(server.url + "/series?" + urlencode({**STEP, "norm": "first"}))
    page.once("dialog", lambda d: d.accept("fp16 matmul regressions"))
    page.locator("#save-view").click()
    page.wait_for_selector("#flash:not([hidden])")
    assert "Saved view" in page.locator("#flash").inner_text()
    page.goto(server.url + "/views")
    shot(page, "views")
    page.locator("a.view-link", has_text="fp16 matmul regressions").click()
    page.wait_for_selector("#series-chart .main-svg")
    query = {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}
    assert query == {**STEP, "norm": "first"}
    assert page.locator("select[name=norm]").input_value() == "first"
    assert page.locator("select[name=dtype]").input_value() == "fp16"


def test_save_view_without_a_valid_token_is_refused(page: Any, server: Server) -> None:
    set_token(page, server, "tw_not-a-real-token")
    page.goto(server.url + "/runs")
    page.once("dialog", lambda d: d.accept("should not exist"))
    page.locator("#save-view").click()
    page.wait_for_selector("#flash.error")
    assert "unknown or revoked" in page.locator("#flash").inner_text()


def test_export_csv(page: Any, server: Server, tmp_path: Path) -> None:
    page.goto(server.url + "/runs?machine=h100-a")
    with page.expect_download() as dl:
        page.locator("a.export-csv").first.click()
    path = tmp_path / "runs.csv"
    dl.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == len(server.seeded.runs["h100-a"])
    assert {r["machine"] for r in rows} == {"h100-a"}
    assert set(server.seeded.runs["h100-a"]) == {r["uuid"] for r in rows}


def test_triage_an_alert_with_a_token(page: Any, server: Server) -> None:
    alert = server.seeded.alert_id
    set_token(page, server, server.token)
    page.goto(f"{server.url}/alerts/{alert}")
    page.wait_for_selector("#dist-chart .main-svg")  # before/after samples drawn
    assert "driver" in page.locator("#build-changes").inner_text()  # what changed
    shot(page, "alert")
    page.fill("#triage-note", "bisected to the new pipeliner")
    page.locator("button.triage[data-status=acknowledged]").click()
    page.wait_for_selector("#alert-history >> text=acknowledged")
    history = page.locator("#alert-history").inner_text()
    assert "acme/browser" in history and "bisected to the new pipeliner" in history
    assert "acknowledged" in page.locator("h1").inner_text()


XSS_PAGES = [
    "/",
    "/series?" + urlencode({"operator": XSS}),
    "/series?"
    + urlencode(
        {
            "machine": XSS_MACHINE,
            "operator": "matmul",
            "dtype": "fp16",
            "provider": "triton",
            "metric": "time",
        }
    ),
    "/runs",
    "/alerts",
    "/codegen",
    "/codegen/c0de",
    "/compare",
    "/compare/ab00",
    "/views",
    "/docs",
]


@pytest.mark.slow
def test_user_strings_render_as_text_everywhere(page: Any, server: Server) -> None:
    set_token(page, server, server.token)
    page.goto(server.url + "/series?" + urlencode({"operator": XSS}))
    page.once("dialog", lambda d: d.accept(XSS))  # a view named <script> too
    page.locator("#save-view").click()
    page.wait_for_selector("#flash:not([hidden])")
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    urls = [server.url + p for p in XSS_PAGES]
    urls += [
        f"{server.url}/alerts/{server.seeded.xss_alert_id}",
        f"{server.url}/runs/{server.seeded.runs['h100-a'][1]}",
    ]
    for i, url in enumerate(urls):
        page.goto(url)
        page.wait_for_load_state("load")
        page.wait_for_timeout(150)  # let charts draw
        shot(page, f"xss-{i:02d}")
        assert page.dialogs == [], f"{url} ran injected script"
        assert page.locator("img[src=x]").count() == 0, url
        assert page.locator("script:not([src]):not([type='application/json'])").count() == 0, url
        if "/docs" not in url:
            body = page.locator("main").inner_text()
            assert XSS in body or "<img src=x onerror=alert(2)>" in body or XSS_MACHINE in body, url
    # In charts the names are SVG text, not markup.
    page.goto(server.url + "/series?" + urlencode({"operator": XSS}))
    page.wait_for_selector("#series-chart .main-svg")
    legend = page.locator("#series-chart .legendtext").all_text_contents()
    assert XSS_MACHINE in legend, legend  # the traces differ by machine; its name is text
    assert page.dialogs == [] and page.errors == []


def test_quotes_in_names_read_as_quotes_in_the_heat_map(page: Any, server: Server) -> None:
    """Plotly decodes only a few named entities: a name with " once showed as &quot;.

    Last in this module: it adds a machine, which the overview's counts above do not expect.
    """
    import httpx

    name = """say "hi" & 'bye'"""
    for night in (1, 2):
        doc = {
            "format": "tritonwatch.run/1",
            "run": {"id": str(uuid.uuid4()), "started_at": f"2026-12-0{night}T00:00:00Z"},
            "machine": {"name": "quotes-box"},
            "build": {"triton": {"version": "3.9.0"}},
            "results": [
                {
                    "operator": name,
                    "provider": "triton",
                    "shape": {"M": 1},
                    "dtype": "fp16",
                    "metric": "time",
                    "unit": "ms",
                    "samples": [1.0 * night, 1.01 * night, 1.02 * night],
                }
            ],
        }
        r = httpx.post(
            server.url + "/api/v1/runs",
            json=doc,
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
    page.goto(server.url + "/")
    page.wait_for_selector("#heatmap .main-svg")
    ticks = page.locator("#heatmap .ytick text").all_text_contents()
    assert name in ticks, ticks
    assert not [t for t in ticks if "&quot;" in t or "&#" in t], ticks
