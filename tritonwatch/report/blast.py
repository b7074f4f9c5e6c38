"""Renderers for blast-radius reports: terminal table, Markdown (for PRs), HTML, JSON.

They only format a :class:`~tritonwatch.codegen.blast.BlastReport`; every number was computed in
``tritonwatch.codegen.diff``. The summary sentence leads each format; structured signals
(first changed stage, registers, spills, shared memory, instructions, key instructions) come
next; normalised unified diffs are one click away in HTML (``<details>``) and Markdown.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Callable, Sequence

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
        t.add_row(
            escape(f"{r.kernel} / {r.spec}"),
            r.target,
            _stage(r),
            pair(*r.metric("registers")),
            pair(*r.metric("spills")),
            pair(*r.metric("shared")),
            pair(*r.metric("instructions")),
            escape(keys_text(r)),
            _ms(r.a.compile_ms, r.b.compile_ms),
        )
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
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1b1f24}
h1{font-size:1.4em} .headline{font-size:1.15em;font-weight:600;margin:1em 0}
table{border-collapse:collapse;margin:1em 0} th,td{border:1px solid #d0d7de;padding:4px 8px;
vertical-align:top;text-align:left} th{background:#f6f8fa} td.n{text-align:right;white-space:nowrap}
.up{color:#b42318} .down{color:#067647} .muted{color:#667085}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:40em;font-size:12px}
.add{color:#067647} .del{color:#b42318} .hunk{color:#6941c6}
details summary{cursor:pointer;color:#175cd3}
"""


def _h(s: object) -> str:
    return html.escape(str(s))


def _cell_pair(a: float | None, b: float | None) -> str:
    cls = (
        ""
        if a == b or a is None or b is None
        else (' class="n up"' if b > a else ' class="n down"')
    )
    return f"<td{cls or ' class=n'}>{_h(pair(a, b))}</td>"


def _diff_html(text: str) -> str:
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
        out.append(f'<span class="{cls}">{_h(line)}</span>' if cls else _h(line))
    return "<pre>" + "\n".join(out) + "</pre>"


def render_html(report: BlastReport) -> str:
    s = report.summary
    rows_html = []
    for r in _sorted_rows(report.rows):
        if r.status == "identical":
            continue
        diffs = "".join(
            f"<details><summary>{_h(STAGE_LABELS[st])} diff</summary>{_diff_html(t)}</details>"
            for st, t in r.diffs.items()
        )
        errors = "".join(
            f"<div class=up>{side}: {_h(c.error_line)}</div><details><summary>full "
            f"error</summary><pre>{_h(c.error)}</pre></details>"
            for side, c in (("A", r.a), ("B", r.b))
            if c.status in ("error", "unavailable")
        )
        opcodes = _h(top_opcodes(r, 8))
        amd = _h(_amd(r))
        rows_html.append(
            f"<tr><td>{_h(r.kernel)}<br><span class=muted>{_h(r.spec)}</span></td>"
            f"<td>{_h(r.target)}</td><td>{_h(_stage(r))}</td>"
            + _cell_pair(*r.metric("registers"))
            + _cell_pair(*r.metric("spills"))
            + _cell_pair(*r.metric("shared"))
            + _cell_pair(*r.metric("instructions"))
            + f"<td>{_h(keys_text(r))}</td><td>{opcodes}{'<br>' + amd if amd else ''}</td>"
            f"<td class=n>{_h(_ms(r.a.compile_ms, r.b.compile_ms))}</td>"
            f"<td>{errors}{diffs}</td></tr>"
        )
    identical = sorted(
        {f"{r.kernel} / {r.spec} on {r.target}" for r in report.rows if r.status == "identical"}
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Blast radius: triton {_h(report.env_a.triton_version)} vs {_h(report.env_b.triton_version)}</title>
<style>{_CSS}</style></head><body>
<h1>Blast radius: triton {_h(report.env_a.triton_version)} → {_h(report.env_b.triton_version)}</h1>
<div class="headline">{_h(s.headline)}</div>
<ul><li>{_h(_env_line("A", report.env_a))}</li><li>{_h(_env_line("B", report.env_b))}</li>
<li>{_h(stats_text(report))}</li>
<li>targets: {_h(", ".join(report.targets))}; {s.total} specialisations; report {_h(report.uuid)}
at {_h(report.created_at.strftime("%Y-%m-%d %H:%M UTC"))}</li></ul>
<table><thead><tr><th>kernel / spec</th><th>target</th><th>first change</th><th>registers</th>
<th>spills</th><th>shared</th><th>instructions</th><th>key instructions</th>
<th>opcode deltas</th><th>compile ms A / B</th><th>details</th></tr></thead>
<tbody>{"".join(rows_html)}</tbody></table>
<details><summary>{len(identical)} identical specialisations</summary><ul>
{"".join(f"<li>{_h(x)}</li>" for x in identical)}</ul></details>
<p class="muted">Stages are compared after normalisation (debug locations, paths and hashes
stripped; line info off and FP fusion on in both builds). Registers: ptxas on NVIDIA, arch VGPRs
on AMD. Spills: spill-store bytes on NVIDIA, spilled registers on AMD.</p>
</body></html>
"""


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
