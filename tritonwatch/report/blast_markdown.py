"""Markdown for a blast-radius report: what ``blast --format markdown`` prints, sized to be one
GitHub pull-request comment.

The summary sentence comes first, then the top changes by impact (a lost key instruction, new
spills, register and instruction growth), compile failures, and the normalised diff of the stage
where each top row's code first changes, collapsed. A comment holds 65,536 characters: diffs are
dropped first, then rows, and the rest is left to the full HTML report (``report_url``). The
first line is a hidden marker, so CI can find and update its own comment instead of adding one.
"""

from __future__ import annotations

import html

from ..codegen.blast import BlastReport
from ..codegen.diff import KernelDiff
from ..codegen.normalize import STAGE_LABELS
from .blast import (
    _amd,
    _env_line,
    _failures,
    _sorted_rows,
    change_cells,
    stats_text,
    top_opcodes,
)

#: The hidden first line of every blast comment (CI updates the comment that carries it).
MARKER = "<!-- tritonwatch-blast -->"
TOP_ROWS = 25
DIFF_ROWS = 8
DIFF_LINES = 60
LIMIT = 60_000  # GitHub's comment limit is 65,536 characters; leave room for the footer


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _row(r: KernelDiff) -> str:
    cells = (*change_cells(r), top_opcodes(r))
    return "| " + " | ".join(_md(c) for c in cells) + " |"


def _diff_stage(r: KernelDiff) -> str | None:
    """The stage whose diff a reviewer reads first: where the code first changes."""
    for st in (r.first_code_stage, r.first_changed_stage, *r.diffs):
        if st and st in r.diffs:
            return st
    return None


def _diffs(rows: list[KernelDiff]) -> list[str]:
    out: list[str] = []
    for r in rows:
        st = _diff_stage(r)
        if st is None:
            continue
        lines = r.diffs[st].splitlines()
        if len(lines) > DIFF_LINES:
            lines = lines[:DIFF_LINES] + ["... (the full report has the rest)"]
        out += [
            f"<details><summary>{html.escape(r.kernel)} / {html.escape(r.spec)} on {r.target}: "
            f"{STAGE_LABELS[st]} diff</summary>",
            "",
            "```diff",
            *lines,
            "```",
            "</details>",
            "",
        ]
    return out


def _build(
    report: BlastReport, top: int, diff_rows: int, report_url: str | None, marker: bool
) -> str:
    s = report.summary
    out = [MARKER] if marker else []
    out += [
        f"## Blast radius: triton {report.env_a.triton_version} → {report.env_b.triton_version}",
        "",
        f"**{_md(s.headline)}**",
        "",
    ]
    if report_url:
        out += [f"Full report, every row and diff: {report_url}", ""]
    changed = [r for r in _sorted_rows(report.rows) if r.status == "changed"]
    shown = changed[:top]
    if shown:
        title = "Top changes" if len(changed) > len(shown) else "Changes"
        out += [
            f"### {title} ({len(shown)} of {len(changed)}, most important first)",
            "",
            "| kernel / spec | target | first change | registers | spills | shared | "
            "instructions | key instructions | top opcode deltas |",
            "|---|---|---|--:|--:|--:|--:|---|---|",
            *(_row(r) for r in shown),
        ]
        if len(changed) > len(shown):
            where = "the full report" if not report_url else f"[the full report]({report_url})"
            out.append(f"\n{len(changed) - len(shown)} more changed rows are in {where}.")
        amd = [(r, _amd(r)) for r in shown if _amd(r)]
        if amd:
            out += ["", "AMD register and occupancy changes:", ""]
            out += [f"- {_md(r.kernel)} / {_md(r.spec)} on {r.target}: {_md(t)}" for r, t in amd]
    fails = _failures(report)
    if fails:
        out += ["", "### Compile failures", "", "| kernel / spec | target | side | error |"]
        out.append("|---|---|---|---|")
        for r in fails:
            for side, c in (("A", r.a), ("B", r.b)):
                if c.status != "ok":
                    out.append(
                        f"| {_md(r.kernel)} / {_md(r.spec)} | {r.target} | {side} | "
                        f"{_md(c.error_line or '')} |"
                    )
    diffs = _diffs([r for r in shown if r.diffs][:diff_rows])
    if diffs:
        out += ["", "### Where the code first changes", "", *diffs]
    out += [
        "",
        "<sub>"
        + " · ".join(
            _md(x)
            for x in (
                _env_line("A", report.env_a),
                _env_line("B", report.env_b),
                f"targets {', '.join(report.targets)}",
                stats_text(report),
            )
            if x
        )
        + "</sub>",
    ]
    return "\n".join(out).rstrip() + "\n"


def render_markdown(
    report: BlastReport, *, report_url: str | None = None, marker: bool = True
) -> str:
    """The report as Markdown for a pull-request comment (at most :data:`LIMIT` characters)."""
    top, diff_rows = TOP_ROWS, DIFF_ROWS
    while True:
        text = _build(report, top, diff_rows, report_url, marker)
        if len(text) <= LIMIT or (top <= 1 and diff_rows == 0):
            return text
        if diff_rows:
            diff_rows //= 2
        else:
            top //= 2
