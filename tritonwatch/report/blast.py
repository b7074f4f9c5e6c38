"""Renderers for blast-radius reports: terminal table, Markdown (for PRs), HTML, JSON.

They only format a :class:`~tritonwatch.codegen.blast.BlastReport`; every number was computed in
``tritonwatch.codegen.diff``. The summary sentence leads each format; structured signals
(first changed stage, registers, spills, shared memory, instructions, key instructions) come
next; normalised unified diffs are one click away in HTML (``<details>``) and Markdown.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..codegen.blast import BlastReport
from ..codegen.diff import KernelDiff
from ..codegen.envs import EnvInfo
from ..codegen.normalize import STAGE_LABELS

FORMATS = ("table", "markdown", "html", "json")
_AMD_METRICS = ("vgprs", "agprs", "sgprs", "scratch", "occupancy")


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def pair(a: float | None, b: float | None) -> str:
    """``120`` when equal, ``120 → 128 (+8)`` when not."""
    if a == b:
        return _num(a)
    if a is None or b is None:
        return f"{_num(a)} → {_num(b)}"
    d = b - a
    return f"{_num(a)} → {_num(b)} ({'+' if d > 0 else ''}{_num(d)})"


def _ms(a: float | None, b: float | None) -> str:
    if a is None and b is None:
        return "-"
    return f"{_num(a)} / {_num(b)}"


def _stage(r: KernelDiff) -> str:
    if r.status == "changed":
        first = STAGE_LABELS.get(r.first_changed_stage or "", "-")
        if r.ptxas_note == "ptxas":
            first += " (same PTX and ptxas: ptxas's change)"
        if r.first_code_stage == r.first_changed_stage:
            return first
        if r.first_code_stage is None:
            return f"{first} (header only)"
        return f"{first} (header); code {STAGE_LABELS[r.first_code_stage]}"
    if r.status == "skipped":
        c = r.a if r.a.status == "skipped" else r.b
        side = "both" if r.a.status == r.b.status else ("A" if c is r.a else "B")
        return f"skipped in {side}: {c.error}"
    return {
        "identical": "none",
        "failed_a": "fails in A",
        "failed_b": "fails in B",
        "failed_both": "fails in both",
        "failed_same": "fails in both (same error)",
        "unavailable": "unavailable",
    }.get(r.status, r.status)


def keys_text(r: KernelDiff) -> str:
    parts = [f"-{k}" for k in r.keys_lost] + [f"+{k}" for k in r.keys_gained]
    return " ".join(parts)


def top_opcodes(r: KernelDiff, n: int = 5) -> str:
    items = sorted(r.opcode_deltas.items(), key=lambda kv: -abs(kv[1][1] - kv[1][0]))[:n]
    return ", ".join(f"{op} {'+' if b > a else ''}{b - a}" for op, (a, b) in items)


def change_cells(r: KernelDiff) -> list[str]:
    """A changed row's cells as the terminal table and the Markdown comment show them: kernel /
    spec, target, first change, registers, spills, shared, instructions, key instructions."""
    return [
        f"{r.kernel} / {r.spec}",
        r.target,
        _stage(r),
        pair(*r.metric("registers")),
        pair(*r.metric("spills")),
        pair(*r.metric("shared")),
        pair(*r.metric("instructions")),
        keys_text(r),
    ]


def _amd(r: KernelDiff) -> str:
    return "; ".join(
        f"{m} {pair(*r.metric(m))}"
        for m in _AMD_METRICS
        if r.metric(m) != (None, None) and r.metric(m)[0] != r.metric(m)[1]
    )


def _env_line(tag: str, e: EnvInfo) -> str:
    ptxas = ", ".join(f"{k} {v}" for k, v in e.ptxas_versions.items()) or "no ptxas"
    commit = f" @ {e.triton_commit}" if e.triton_commit else ""
    where = "" if e.name == e.python else f" — {e.python}"
    return f"{tag}: {e.name} — triton {e.triton_version}{commit} ({ptxas}){where}"


def stats_text(report: BlastReport) -> str:
    st = report.stats
    if not st:
        return ""
    shared = st.get("shared", 0)
    same = f", {shared} the same compile as another row" if shared else ""
    return (
        f"{st.get('tasks', 0)} compiles: {st.get('compiled', 0)} run, "
        f"{st.get('cached', 0)} from the cache{same}, {st.get('wall_s', 0):.1f} s with "
        f"{st.get('jobs', '?')} workers"
    )


def _sorted_rows(rows: Sequence[KernelDiff]) -> list[KernelDiff]:
    order = {
        "failed_b": 0,
        "failed_a": 1,
        "failed_both": 2,
        "changed": 3,
        "failed_same": 4,
        "unavailable": 4,
        "identical": 5,
    }
    # Within a status, the rows a reviewer should read first (see KernelDiff.impact) come first.
    return sorted(
        rows, key=lambda r: (order.get(r.status, 9), -r.impact, r.kernel, r.spec, r.target)
    )


def _failures(report: BlastReport) -> list[KernelDiff]:
    return [r for r in report.rows if r.status.startswith("failed")]


# -- terminal -----------------------------------------------------------------------------------
def table(report: BlastReport, *, show_identical: bool = False) -> Group:
    head = Text(report.summary.headline, style="bold")
    envs = Text(
        "\n".join([_env_line("A", report.env_a), _env_line("B", report.env_b), stats_text(report)]),
        style="dim",
    )
    t = Table(
        title=f"{report.summary.changed} changed of {report.summary.total} "
        f"(kernel x spec x target)",
        title_justify="left",
    )
    for col in (
        "kernel / spec",
        "target",
        "first change",
        "registers",
        "spills",
        "shared",
        "instructions",
        "key instr.",
        "compile ms A / B",
    ):
        t.add_column(
            col,
            justify="right" if col in ("registers", "spills", "shared", "instructions") else "left",
        )
    for r in _sorted_rows(report.rows):
        if r.status != "changed" and not (show_identical and r.status == "identical"):
            continue
        t.add_row(*map(escape, change_cells(r)), _ms(r.a.compile_ms, r.b.compile_ms))
    parts: list[object] = [head, envs, t]
    fails = _failures(report)
    if fails:
        ft = Table(title="compile failures", title_justify="left")
        for col in ("kernel / spec", "target", "side", "error"):
            ft.add_column(col)
        for r in fails:
            for side, c in (("A", r.a), ("B", r.b)):
                if c.status != "ok":
                    ft.add_row(
                        escape(f"{r.kernel} / {r.spec}"), r.target, side, escape(c.error_line or "")
                    )
        parts.append(ft)
    return Group(*parts)  # type: ignore[arg-type]


def render_table(report: BlastReport, *, width: int = 160) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, highlight=False).print(table(report))
    return buf.getvalue()


# -- HTML ---------------------------------------------------------------------------------------
# One template renders the report's body for the standalone file and the dashboard's page.
TEMPLATES = Path(__file__).parent / "templates"
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)


def _metric_cell(a: float | None, b: float | None) -> dict[str, str]:
    cls = "" if a == b or a is None or b is None else ("up" if b > a else "down")
    return {"text": pair(a, b), "cls": cls}


def _diff_lines(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        cls = (
            "add"
            if line.startswith("+") and not line.startswith("+++")
            else "del"
            if line.startswith("-") and not line.startswith("---")
            else "hunk"
            if line.startswith("@@")
            else ""
        )
        out.append((cls, line))
    return out


def html_view(report: BlastReport) -> dict[str, Any]:
    """What the blast template shows, as text: every number formatted, rows in reading order
    (failures, then changes by impact); identical rows are only named."""
    s = report.summary
    rows = []
    for r in _sorted_rows(report.rows):
        if r.status == "identical":
            continue
        rows.append(
            {
                "kernel": r.kernel,
                "spec": r.spec,
                "target": r.target,
                "status": r.status,
                "failed": r.status.startswith("failed"),
                "stage": _stage(r),
                "metrics": [
                    _metric_cell(*r.metric(m))
                    for m in ("registers", "spills", "shared", "instructions")
                ],
                "key_text": keys_text(r),
                "opcodes": top_opcodes(r, 8),
                "amd": _amd(r),
                "compile": _ms(r.a.compile_ms, r.b.compile_ms),
                "errors": [
                    {"side": side, "line": c.error_line, "full": c.error}
                    for side, c in (("A", r.a), ("B", r.b))
                    if c.status in ("error", "unavailable") and c.error
                ],
                "diffs": [
                    {"stage": STAGE_LABELS.get(st, st), "lines": _diff_lines(text)}
                    for st, text in r.diffs.items()
                ],
            }
        )
    identical = sorted(
        {f"{r.kernel} / {r.spec} on {r.target}" for r in report.rows if r.status == "identical"}
    )
    if not report.rows:
        empty = "No specialisation was compiled: no spec matched, or every target was skipped."
    else:
        empty = f"All {s.total} specialisations compile to the same code in both builds."
    return {
        "version_a": report.env_a.triton_version,
        "version_b": report.env_b.triton_version,
        "headline": s.headline,
        "partial": report.partial,
        "env_lines": [
            x
            for x in (
                _env_line("A", report.env_a),
                _env_line("B", report.env_b),
                stats_text(report),
            )
            if x
        ],
        "targets": ", ".join(report.targets),
        "total": s.total,
        "uuid": report.uuid,
        "created": report.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        "rows": rows,
        "identical": identical,
        "empty": empty,
    }


def render_html(report: BlastReport) -> str:
    """The standalone HTML report (one file, no external resources)."""
    return _env.get_template("blast.html").render(b=html_view(report))


def render_json(report: BlastReport) -> str:
    """The report as JSON, with each changed row's normalised diffs (``diffs``: stage -> text)."""
    return json.dumps(report.to_json(with_diffs=True), indent=2, sort_keys=False) + "\n"


def render(report: BlastReport, fmt: str) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`) as text."""
    from .blast_markdown import render_markdown

    renderers: dict[str, Callable[[BlastReport], str]] = {
        "table": render_table,
        "markdown": render_markdown,
        "html": render_html,
        "json": render_json,
    }
    return renderers[fmt](report)
