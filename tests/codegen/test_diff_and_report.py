"""diff (summary counts, per-row deltas) and the renderers, on a hand-built report."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tritonwatch.codegen.diff import unified_diff
from tritonwatch.report.blast import render, render_html, render_json, render_table
from tritonwatch.report.blast_markdown import MARKER, render_markdown


def test_rows_and_summary(synthetic_report: Any) -> None:
    r = synthetic_report
    by = {(x.kernel, x.target): x for x in r.rows}
    assert by[("add", "sm90")].status == "identical"
    mm = by[("mm<kernel>", "sm90")]
    assert mm.status == "changed" and mm.first_changed_stage == "ttgir"
    assert mm.changed_stages == ("ttgir", "sass")
    assert mm.keys_lost == ("wgmma",) and mm.keys_gained == ("mma.sync",)
    assert mm.metric_deltas["registers"] == (120, 168)
    assert mm.opcode_deltas == {"HGMMA": (8, 0), "HMMA": (0, 32)}
    assert "-y = 2" in mm.diffs["ttgir"] and "+y = 3 <script>" in mm.diffs["ttgir"]
    assert by[("soft", "sm90")].status == "failed_b"
    s = r.summary
    assert (s.total, s.changed, s.identical, s.failed_b_only) == (4, 2, 1, 1)
    assert s.by_stage == {"TTGIR": 1, "AMDGCN": 1}
    assert s.keys_lost == {"wgmma on sm90": 1} and s.keys_gained == {"mma.sync on sm90": 1}
    assert (s.registers_up, s.registers_down, s.spills_appeared) == (1, 1, 1)
    assert s.headline == (
        "2 of 4 specialisations changed; the first difference is at TTGIR in 1 and AMDGCN "
        "in 1. Key instructions: wgmma on sm90 lost in 1; mma.sync on sm90 gained in 1. "
        "Registers went up in 1 and down in 1, spills appeared in 1. 1 specialisation fails "
        "to compile only in B."
    )


def test_error_line_picks_the_message_of_a_compilation_error(synthetic_report: Any) -> None:
    soft = next(x for x in synthetic_report.rows if x.kernel == "soft")
    assert soft.b.error_line == "CompilationError: broken | on purpose"


def test_json_has_the_documented_fields(synthetic_report: Any) -> None:
    doc = json.loads(render_json(synthetic_report))
    assert doc["format"] == "tritonwatch.blast/1"
    assert doc["summary"]["headline"] == synthetic_report.summary.headline
    rows = {(x["kernel"], x["target"]): x for x in doc["results"]}
    assert rows[("add", "sm90")]["first_changed_stage"] is None
    mm = rows[("mm<kernel>", "sm90")]
    assert mm["spec"] == "mm_fp16" and mm["first_changed_stage"] == "TTGIR"
    assert mm["a"]["metrics"]["registers"] == 120 and mm["b"]["metrics"]["spills"] == 24
    assert mm["key_instructions_lost"] == ["wgmma"]
    assert "+y = 3 <script>" in mm["diffs"]["TTGIR"]  # the diffs travel with the JSON
    assert rows[("add", "sm90")]["diffs"] == {}
    assert rows[("soft", "sm90")]["b"]["error"].startswith("CompilationError")
    assert doc["a"]["triton_version"] == "3.8.0" and doc["b"]["ptxas"] == {"ptxas": "12.9.86"}


def test_table_leads_with_the_summary_and_lists_failures(synthetic_report: Any) -> None:
    text = render_table(synthetic_report)
    assert text.splitlines()[0].startswith("2 of 4 specialisations changed")
    assert "120 → 168 (+48)" in text and "-wgmma +mma.sync" in text
    assert "compile failures" in text and "broken | on purpose" in text
    assert "add_fp32" not in text  # identical rows are summarised, not listed


def test_markdown_has_a_table_and_collapsible_diffs(synthetic_report: Any) -> None:
    md = render_markdown(synthetic_report)
    assert "**2 of 4 specialisations changed" in md
    assert "| mm<kernel> / mm_fp16 | sm90 | TTGIR | 120 → 168 (+48) | 0 → 24 (+24) |" in md
    assert "broken \\| on purpose" in md  # pipes escaped inside table cells
    assert "<details><summary>mm&lt;kernel&gt; / mm_fp16 on sm90: TTGIR diff</summary>" in md
    assert "```diff" in md
    # rows a reviewer must read (a lost wgmma, spills) come before alphabetical order would
    assert md.index("| mm<kernel> / mm_fp16 | sm90 |") < md.index(
        "| mm<kernel> / mm_fp16 | gfx942 |"
    )
    assert "vgprs 100 → 90 (-10)" in md and "occupancy 4 → 5 (+1)" in md
    # a PR comment: the hidden marker CI updates by, then the summary before anything else
    lines = md.splitlines()
    assert lines[0] == MARKER and lines[1].startswith("## Blast radius: triton 3.8.0 → 3.9.0")
    assert lines[3].startswith("**2 of 4 specialisations changed")
    assert render(synthetic_report, "markdown") == md


def test_markdown_links_the_full_report_and_fits_one_comment(synthetic_report: Any) -> None:
    import dataclasses

    url = "https://github.com/o/r/actions/runs/1"
    md = render_markdown(synthetic_report, report_url=url)
    assert f"Full report, every row and diff: {url}" in md.splitlines()[5]
    mm = next(r for r in synthetic_report.rows if r.status == "changed" and r.target == "sm90")
    big = dataclasses.replace(mm, diffs={"ttgir": "\n".join(f"+line {i}" for i in range(199))})
    rows = tuple(dataclasses.replace(big, spec=f"s{i}") for i in range(400))
    huge = dataclasses.replace(synthetic_report, rows=rows)
    md = render_markdown(huge, report_url=url)
    assert len(md) <= 60_000 and md.startswith(MARKER)
    assert "more changed rows are in [the full report](" in md


def test_html_escapes_and_puts_diffs_one_click_away(synthetic_report: Any) -> None:
    page = render_html(synthetic_report)
    assert page.startswith("<!doctype html>")
    assert "<script>" not in page and "y = 3 &lt;script&gt;" in page
    assert "mm&lt;kernel&gt;" in page
    assert "<details><summary>TTGIR diff</summary>" in page
    assert '<span class="add">+y = 3 &lt;script&gt;</span>' in page
    assert "1 identical specialisations" in page
    assert render(synthetic_report, "html") == page


def test_unified_diff_is_cut_at_the_limit() -> None:
    a = "\n".join(f"line {i}" for i in range(1000))
    b = "\n".join(f"line {i} changed" for i in range(1000))
    out = unified_diff(a, b, "PTX", limit=50).splitlines()
    assert out[0] == "--- A/PTX" and out[1] == "+++ B/PTX"
    assert len(out) == 51 and out[-1].startswith("... ") and "more diff lines" in out[-1]
    assert unified_diff("same\n", "same\n", "PTX") == ""


def test_header_only_changes_are_told_apart_from_code_changes() -> None:
    from tritonwatch.codegen.diff import compare, summarize
    from tritonwatch.codegen.metrics import Compiled
    from tritonwatch.codegen.normalize import stage_hash

    def side(attrs: str, llir: str) -> Compiled:
        stages = {
            "ttgir": f"module attributes {{{attrs}}} {{\n  tt.return\n}}\n",
            "llir": f'target datalayout = "{attrs}"\n{llir}\n',
        }
        return Compiled(
            kernel="k",
            spec="s",
            target="sm90",
            status="ok",
            stages=stages,
            stage_hashes={k: stage_hash(v) for k, v in stages.items()},
        )

    only_headers = compare(side("a = 1", "ret void"), side("a = 2", "ret void"))
    assert only_headers.first_changed_stage == "ttgir" and only_headers.first_code_stage is None
    code_later = compare(side("a = 1", "ret void"), side("a = 2", "unreachable"))
    assert code_later.first_changed_stage == "ttgir" and code_later.first_code_stage == "llir"
    s = summarize([only_headers, code_later])
    assert s.by_stage == {"TTGIR": 2} and s.by_code_stage == {"LLIR": 1} and s.header_only == 1
    assert s.headline == (
        "2 of 2 specialisations changed; the first difference is at TTGIR in 2. The code "
        "itself first differs at LLIR in 1. 1 of them differs only in module attributes or "
        "target lines."
    )
    # the report shows the diff of the stage where the code first changes, not only the header
    assert set(code_later.diffs) == {"ttgir", "llir"} and "+unreachable" in code_later.diffs["llir"]
    assert only_headers.to_json()["first_code_change"] is None
    assert code_later.to_json()["first_code_change"] == "LLIR"


def test_same_failure_in_both_builds_is_not_a_change_but_is_said() -> None:
    from tritonwatch.codegen.diff import compare, summarize
    from tritonwatch.codegen.metrics import Compiled

    def err(target: str) -> Compiled:
        return Compiled(
            kernel="k",
            spec="s",
            target=target,
            status="error",
            error="RuntimeError: PassManager::run failed",
        )

    ok = Compiled(kernel="k", spec="s", target="sm90", status="ok", stage_hashes={"ttir": "1"})
    rows = [compare(err("gfx999"), err("gfx999")), compare(ok, ok)]
    assert rows[0].status == "failed_same" and not rows[0].changed
    s = summarize(rows)
    assert s.changed == 0 and s.identical == 1 and s.failed_same == 1
    assert s.dead_targets == {"gfx999": "RuntimeError: PassManager::run failed"}
    assert s.headline == (
        "No change in 1 specialisation. Nothing compiles for gfx999 in either build "
        "(RuntimeError: PassManager::run failed). 1 specialisation fails to compile in both "
        "builds, the same way."
    )


def test_a_different_ptxas_is_named_in_the_summary() -> None:
    from tritonwatch.codegen.diff import compare, summarize
    from tritonwatch.codegen.metrics import Compiled

    def side(sass: str, ptxas: str) -> Compiled:
        return Compiled(
            kernel="k",
            spec="s",
            target="sm90",
            status="ok",
            stage_hashes={"ptx": "p", "sass": sass},
            tools={"ptxas": ptxas},
        )

    s = summarize([compare(side("1", "13.3.33"), side("2", "13.4.59"))])
    assert s.by_stage == {"SASS": 1} and s.ptxas_changes == {"sm90": "13.3.33 → 13.4.59"}
    assert "ptxas differs on sm90 (13.3.33 → 13.4.59)" in s.headline


def test_fail_on_conditions(synthetic_report: Any) -> None:
    from tritonwatch.codegen.blast import failing, parse_fail_on
    from tritonwatch.errors import UsageError

    assert failing(synthetic_report, []) == []
    (new,) = failing(synthetic_report, ["new-failures"])
    assert (
        new.startswith("1 specialisation fails to compile only in B")
        and "soft/soft_fp16 on sm90" in new
    )
    (sp,) = failing(synthetic_report, ["spills"])
    assert "1 specialisation spills more in B" in sp and "mm<kernel>/mm_fp16 on sm90" in sp
    assert len(failing(synthetic_report, ["registers>40"])) == 1  # 120 -> 168
    assert failing(synthetic_report, ["registers>48"]) == []
    assert parse_fail_on(["new-failures,registers>8", "spills"]) == (
        "new-failures",
        "registers>8",
        "spills",
    )
    with pytest.raises(UsageError, match="registers>N"):
        parse_fail_on(["registers"])


def test_one_blast_template_for_the_html_file_and_the_dashboard(
    synthetic_report: Any, tmp_path: Any
) -> None:
    """The CLI's HTML and the codegen page render the same body from one template (issue 18);
    the page reads the report back from the database, so this checks the round trip too."""
    import re
    import warnings

    from tritonwatch.store import Store
    from tritonwatch.web.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    def body(page: str) -> str:
        m = re.search(r'<div class="blast">.*?<p class="muted small">', page, re.S)
        assert m, page[:500]
        return m.group(0)

    file_body = body(render_html(synthetic_report))
    with Store.open(f"sqlite:///{tmp_path / 'b.db'}") as st:
        st.codegen.add_report(synthetic_report)
        with TestClient(create_app(st)) as client:
            page = client.get(f"/codegen/{synthetic_report.uuid}").text
    assert body(page) == file_body
    assert "Registers" in page and "failed_a_only" not in page and "A_MEDIAN" not in page
