"""The HTML pages through the app: they render, keep filters in links, and never emit raw markup."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest
from webseed import XSS, XSS_MACHINE, XSS_SHAPE, Site


def pages(site: Site) -> list[str]:
    s = site.seeded
    return [
        "/",
        "/series",
        "/series?" + urlencode({"operator": XSS}),
        "/series?" + urlencode({"machine": XSS_MACHINE, "operator": "matmul"}),
        "/series?operator=matmul&metric=time&norm=provider&base=aten",
        "/runs",
        f"/runs/{s.runs['h100-a'][1]}",
        f"/runs/{s.runs[XSS_MACHINE][0]}",
        "/alerts",
        f"/alerts/{s.alert_id}",
        f"/alerts/{s.xss_alert_id}",
        "/codegen",
        "/codegen/c0de",
        "/compare",
        "/compare/ab00",
        "/views",
        "/docs",
    ]


def test_no_page_emits_user_markup(site: Site) -> None:
    site.client.post(
        "/api/v1/views",
        json={"name": XSS, "page": "series", "query": f"x={XSS}"},
        headers={"Authorization": f"Bearer {site.token}"},
    )
    for path in pages(site):
        r = site.client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        html = r.text
        for raw in (XSS, XSS_SHAPE["name"], "<script>alert(3)"):
            assert raw not in html, (path, raw)
    # ... while the names are there, escaped, for the reader.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in site.client.get("/alerts").text


def test_series_page_plots_the_step_with_its_alert(site: Site) -> None:
    html = site.client.get(
        "/series",
        params={
            "operator": "matmul",
            "provider": "triton",
            "dtype": "fp16",
            "metric": "time",
            "machine": "h100-a",
            "shape": '{"K":1024,"M":1024,"N":1024}',
        },
    ).text
    assert 'id="series-data"' in html and 'id="series-chart"' in html
    assert f'href="/alerts/{site.seeded.alert_id}"' in html
    assert "% of peak" in html  # pct_peak exists for this series


def test_too_many_series_lists_instead_of_plotting(site: Site) -> None:
    html = site.client.get("/series").text
    assert "series-chart" not in html and "narrow the filters" in html


def test_overview_links_cells_and_runs(site: Site) -> None:
    html = site.client.get("/").text
    assert 'id="heatmap-data"' in html
    assert f'href="/runs/{site.seeded.runs["h100-a"][-1]}"' in html


def test_run_page_shows_reproduce_command_and_gpu_state(site: Site) -> None:
    html = site.client.get(f"/runs/{site.seeded.runs['h100-a'][0]}").text
    assert 'id="reproduce"' in html and "tritonwatch run --suite nightly" in html
    assert "sm_clock_mhz=1980" in html and "throttle=none" in html
    assert "NVIDIA H100 80GB HBM3" in html


@pytest.mark.parametrize(
    "path,status",
    [
        ("/runs/ffffffff", 404),
        ("/alerts/999", 404),
        ("/codegen/zzzz", 404),
        ("/series?norm=bogus", 400),
        ("/runs?limit=0", 422),
    ],
)
def test_errors_render_a_page(site: Site, path: str, status: int) -> None:
    r = site.client.get(path, headers={"accept": "text/html"})
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html") and "<h1>" in r.text


def test_alert_page_shows_generated_code_changes(site: Site) -> None:
    html = site.client.get(f"/alerts/{site.seeded.alert_id}").text
    table = html[html.index('id="codegen-changes"') :]
    assert "matmul_kernel" in table and "ttgir" in table and "registers: 128 &rarr; 168" in table
    assert "softmax_kernel" not in table  # unchanged code is not listed


def test_saved_view_redirects_to_its_page(site: Site) -> None:
    site.store.access.save_view("mine", "alerts", "status=new", None)
    r = site.client.get("/view", params={"name": "mine"}, follow_redirects=False)
    assert r.headers["location"] == "/alerts?status=new"
    assert site.client.get("/view", params={"name": "nope"}).status_code == 404


def test_run_page_says_how_a_gpu_result_was_measured_in_one_line(site: Site) -> None:
    from tritonwatch.testing import make_run

    during = {"samples": 9, "sm_clock_min_mhz": 1620, "sm_clock_max_mhz": 1980,
              "power_max_w": 690.4, "temperature_max_c": 71,
              "throttle_reasons": ["sw_power_cap"]}  # fmt: skip
    extra = {"timer": "event", "stop": "ci", "hold_misses": 2, "gpu_state": {"during": during}}
    run = make_run(n_results=1, machine="h200-box")
    doc = run.model_dump(mode="json")
    doc["results"][0]["extra"] = extra
    added = site.store.runs.add(type(run).model_validate(doc))
    html = site.client.get(f"/runs/{added.uuid}").text
    assert (
        "event timer (2 batches retaken) · CI reached · SM 1620-1980 MHz · up to 690 W · "
        "up to 71 °C · throttled: sw_power_cap"
    ) in html
    assert "<summary>all details</summary>" in html  # the raw record is one click away


def test_a_build_known_only_by_its_commit_reads_as_its_short_commit(store: Any) -> None:
    """PyTorch HUD's records name Triton by commit only: pages and the terminal show its first
    10 characters once, not the 40-character sha as a version beside the same commit."""
    import io
    from pathlib import Path

    from fastapi.testclient import TestClient
    from rich.console import Console

    from tritonwatch.formats.exchange import import_files
    from tritonwatch.naming import build_text
    from tritonwatch.report.runs import runs_table
    from tritonwatch.web.app import create_app

    hud = Path(__file__).parents[1] / "fixtures" / "interop" / "hud" / "hud_tritonbench_v3.json"
    import_files(store, [str(hud)])
    runs = store.runs.find()
    shas = {r.triton_commit for r in runs if r.triton_version == r.triton_commit}
    assert len(shas) == 2  # the fixture's two nights, each with its triton dependency's sha
    newest = runs[0].triton_commit
    sha = next(iter(shas))
    assert build_text({"triton_version": sha, "triton_commit": sha}) == sha[:10]
    assert build_text({"version": "3.9.0", "commit": sha}) == f"3.9.0 ({sha[:10]})"
    buf = io.StringIO()
    Console(file=buf, width=200).print(runs_table(runs))
    with TestClient(create_app(store)) as client:
        for name, text in (
            ("/", client.get("/").text),
            ("/runs", client.get("/runs").text),
            ("tritonwatch runs", buf.getvalue()),
        ):
            assert newest[:10] in text and not any(s in text for s in shas), name
    assert "NVIDIA B200 (NVIDIA B200)" not in buf.getvalue()  # a machine named by its GPU
    # The run page: the build's dependencies in the same words, their commit times as dates.
    with TestClient(create_app(store)) as client:
        html = client.get(f"/runs/{runs[0].uuid}").text
    build = html[html.index("<h2>Build</h2>") : html.index("Machine fingerprint")]
    assert ">version<" not in build  # HUD names no version: the commit is said once
    times = re.findall(r"commit_time</th><td>([^<]*)<", build)
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", t) for t in times), times


def test_the_comparison_page_says_what_was_compared_a_line_each(site: Site) -> None:
    """Torch-only cases in two environments: the page says no Triton kernel was timed, each
    statement on a line of its own (they were one run-on line joined by semicolons)."""
    html = site.client.get("/compare/ab00").text
    row = re.search(r"<th>what was compared</th><td>(.*?)</td>", html, re.S)
    assert row is not None
    lines = re.findall(r"<div>(.*?)</div>", row.group(1), re.S)
    assert lines[0] == "timed by both builds: torch"
    assert lines[1].startswith("no Triton kernel was timed: ")
    assert lines[2].startswith("not timed, so not compared: 1 case (&lt;script&gt;")
