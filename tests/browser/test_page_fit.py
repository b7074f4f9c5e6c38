"""Pages fit a 1280 px window: no table hides columns behind a scroll (issue 14, item 3), and
tables carry human headers (item 4)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.browser]

Server = Any

# Every table, and every box around it up to the page, must show all it holds.
HIDDEN = """() => {
  const bad = [];
  for (const t of document.querySelectorAll('table')) {
    for (let el = t; el && el !== document.documentElement; el = el.parentElement) {
      if (el.scrollWidth > el.clientWidth + 1) {
        bad.push(`${el.tagName}#${el.id}.${el.className} ${el.scrollWidth} > ${el.clientWidth}`);
        break;
      }
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth)
    bad.push(`page ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
  return bad;
}"""

RAW_HEADERS = ("A_MEDIAN", "P_ROUNDS", "FAILED_A_ONLY", "FIRST_CHANGED_STAGE", "N_A")


def long_blast_doc() -> dict[str, Any]:
    """A stored blast report with long kernel and spec names (Liger-style module:kernel)."""
    rows = []
    for i in range(6):
        rows.append(
            {
                "kernel": f"liger_kernel.ops.fused_linear_cross_entropy:element_mul_kernel_{i}",
                "spec": "BLOCK_SIZE=4096,num_warps=32,num_stages=4,X_stride=8192,"
                "grad_output_ptr=*bf16:16,n_cols=131072",
                "target": "sm90",
                "status": "changed",
                "first_changed_stage": "TTGIR",
                "changed_stages": ["TTGIR", "LLIR", "PTX", "SASS"],
                "a": {
                    "status": "ok",
                    "metrics": {
                        "registers": 128,
                        "spills": 0,
                        "shared": 65536,
                        "instructions": 10240,
                    },
                    "compile_ms": 1234.5,
                },
                "b": {
                    "status": "ok",
                    "metrics": {
                        "registers": 168,
                        "spills": 4,
                        "shared": 98304,
                        "instructions": 11264,
                    },
                    "compile_ms": 1302.25,
                },
                "opcode_deltas": {
                    f"opcode.{k}.sync.aligned.m64n128k16": {"a": 8, "b": 16} for k in range(6)
                },
                "key_instructions_gained": ["mma", "ldmatrix"],
                "key_instructions_lost": ["wgmma", "tma_load", "tma_store"],
                "diffs": {"TTGIR": "--- a\n+++ b\n" + "-" + "x" * 400 + "\n+" + "y" * 400},
            }
        )
    return {
        "format": "tritonwatch.blast/1",
        "uuid": "b1a57000-0000-4000-8000-000000000001",
        "created_at": "2026-11-27T10:00:00+00:00",
        "a": {
            "name": "/opt/envs/triton-3.8.0-with-a-long-name/bin/python",
            "triton_version": "3.8.0",
        },
        "b": {
            "name": "/opt/envs/triton-3.9.0-with-a-long-name/bin/python",
            "triton_version": "3.9.0",
        },
        "targets": ["sm90"],
        "summary": {"total": 6, "changed": 6, "headline": "6 of 6 specialisations changed"},
        "results": rows,
    }


@pytest.mark.parametrize("width", [1280, 1920])
def test_pages_hide_no_columns(browser: Any, server: Server, width: int) -> None:
    from tritonwatch.codegen.blast import blast_from_json
    from tritonwatch.report.blast import render_html

    s = server.seeded
    pages = {
        "overview": "/",
        "runs": "/runs",
        "run": f"/runs/{s.runs['h100-a'][-1]}",
        "codegen": "/codegen/c0de",
        "compare": "/compare/ab00",
        "alerts": "/alerts",
    }
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = ctx.new_page()
    problems = {}
    try:
        for name, path in pages.items():
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            bad = page.evaluate(HIDDEN)
            if bad:
                problems[name] = bad
            heads = " ".join(page.locator("th").all_inner_texts()).upper().split()
            if set(RAW_HEADERS) & set(heads):
                problems[f"{name} headers"] = sorted(set(RAW_HEADERS) & set(heads))
        page.set_content(render_html(blast_from_json(long_blast_doc())))
        bad = page.evaluate(HIDDEN)
        if bad:
            problems["blast.html"] = bad
    finally:
        ctx.close()
    assert problems == {}


def test_series_chart_has_distinct_colours_and_a_log_scale(page: Any, server: Server) -> None:
    """Past ten series no colour repeats, and scale=log draws a log axis (issue 14, item 5)."""
    page.goto(server.url + "/series?operator=matmul&machine=h100-a&metric=time&scale=log&norm=none")
    page.wait_for_selector("#series-chart .main-svg")
    layout = page.evaluate("document.getElementById('series-chart').layout")
    assert len(set(layout["colorway"])) >= 24
    assert layout["yaxis"]["type"] == "log"
    assert page.errors == []


def test_alert_page_says_how_it_was_detected_in_words(page: Any, server: Server) -> None:
    """The detection record reads as sentences; the raw record is one click away."""
    page.goto(f"{server.url}/alerts/{server.seeded.alert_id}")
    text = page.locator("#detection-summary").inner_text()
    assert "nights, median" in text and "night-to-night" in text
    assert not page.locator("details:has-text('the full detection record')").get_attribute("open")


# The heat map's slanted "dtype @ machine" labels, each inside the chart's box.
LABELS_OUTSIDE = """() => {
  const box = document.getElementById('heatmap').getBoundingClientRect();
  const out = [];
  for (const t of document.querySelectorAll('#heatmap .xtick text')) {
    const r = t.getBoundingClientRect();
    if (r.bottom > box.bottom + 1 || r.left < box.left - 1 || r.right > box.right + 1)
      out.push(`${t.textContent}: ${Math.round(r.bottom)} > ${Math.round(box.bottom)}`);
  }
  return [document.querySelectorAll('#heatmap .xtick text').length, out];
}"""


def test_heatmap_labels_fit_with_real_gpu_names(browser: Any, tmp_path: Any) -> None:
    """Two nights of PyTorch HUD's real tritonbench records (H100 and B200 runners): the
    labels name the GPUs in full, and none runs off the chart."""
    from pathlib import Path

    from support.server import ServeProcess

    from tritonwatch.formats.exchange import import_files
    from tritonwatch.store import Store

    hud = Path(__file__).parents[1] / "fixtures" / "interop" / "hud" / "hud_tritonbench_v3.json"
    url = f"sqlite:///{tmp_path / 'hud.db'}"
    with Store.open(url) as st:
        import_files(st, [str(hud)])
    proc = ServeProcess(url, tmp_path / "server.log", env={}, clean_env=True, cwd=tmp_path)
    proc.start(timeout=30)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(proc.url + "/")
        page.wait_for_selector("#heatmap .xtick text")
        n, outside = page.evaluate(LABELS_OUTSIDE)
    finally:
        ctx.close()
        proc.stop()
    assert n >= 2 and outside == []
