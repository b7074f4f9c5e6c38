"""Renderers for alerts: the `detect` summary, the `alerts` table and JSON, one alert's page.

Renderers only render: every number comes from an AlertRow, a DetectReport or a GateResult.
"""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..naming import build_change_text, build_text, shape_text
from ..store.alerts import AlertEvent, AlertRow


def series_text(a: AlertRow) -> str:
    """``matmul triton [pointers] M=4096 N=4096 fp16 fwd time``."""
    parts = [
        a.operator,
        a.provider,
        f"[{a.variant}]" if a.variant else "",
        shape_text(a.shape),
        a.dtype,
        a.mode if a.mode != "fwd" else "",
        a.metric,
    ]
    return " ".join(p for p in parts if p)


def change_text(ratio: float) -> str:
    """A ratio as a signed percentage of the value: 1.123 -> ``+12.3%``."""
    return f"{100 * (ratio - 1):+.1f}%"


def ci_text(ci: tuple[float, float] | None) -> str:
    if ci is None:
        return "-"
    return f"[{change_text(ci[0])}, {change_text(ci[1])}]"


def p_text(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def alert_build_change(a: AlertRow) -> str:
    return build_change_text(a.last_good_build, a.first_bad_build)


def _direction(a: AlertRow) -> Text:
    style = "red" if a.direction == "regression" else "green"
    return Text(a.direction, style=style)


def detect_summary(report: Any) -> str:
    """One line: how many series were tested and what happened to the changes found."""
    line = (
        f"{report.n_series} series tested, {report.n_screened} screened, "
        f"{len(report.findings)} change(s) filed: {len(report.created)} new, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged"
    )
    fixed = getattr(report, "fixed", [])
    notes = getattr(report, "notes", [])
    pending = sum(1 for n in notes if n.get("kind") == "pending")
    stability = sum(1 for n in notes if n.get("kind") == "stability")
    extra = [
        f"{len(fixed)} fixed" if fixed else "",
        f"{pending} pending (need more nights)" if pending else "",
        f"{stability} stability note(s)" if stability else "",
    ]
    return "; ".join([line, *[e for e in extra if e]])


def detect_table(report: Any) -> Table:
    """The summary `detect` prints: one line per change found, with what was done about it."""
    t = Table(title=detect_summary(report), title_justify="left")
    for col in ("alert", "action", "direction", "series", "change", "95% CI", "q"):
        t.add_column(col, justify="right" if col in ("alert", "change", "q") else "left")
    for f in sorted(
        report.findings, key=lambda f: (f.direction != "regression", -max(f.ratio, 1 / f.ratio))
    ):
        t.add_row(
            str(f.alert_id),
            f.action,
            Text(
                f.direction + (" (drift)" if getattr(f, "kind", "step") == "drift" else ""),
                style="red" if f.direction == "regression" else "green",
            ),
            escape(f.label),
            change_text(f.ratio),
            ci_text(f.ci),
            p_text(f.q),
        )
    return t


def pending_lines(report: Any) -> list[str]:
    """One line per change too new to alert: its size, since when, and the nights it needs."""
    out = []
    for n in getattr(report, "notes", []):
        if n.get("kind") != "pending":
            continue
        needs = int(n.get("needs", 1))
        out.append(
            f"pending: {n.get('label', n.get('series_id'))} {change_text(n.get('ratio', 1.0))} "
            f"since {n.get('since')}: needs {needs} more night{'s' if needs != 1 else ''} "
            "at this level to be alerted"
        )
    return out


def alerts_table(rows: list[AlertRow]) -> Table:
    """`tritonwatch alerts`: most severe first."""
    t = Table(
        title=f"{len(rows)} alert(s), most severe first",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    t.add_column("id", justify="right", no_wrap=True)
    t.add_column("status", no_wrap=True)
    t.add_column("series", min_width=18, overflow="fold")
    t.add_column("machine", overflow="fold")
    t.add_column("change [95% CI]", justify="right", min_width=16)
    t.add_column("q", justify="right", no_wrap=True)
    t.add_column("builds (last good -> first bad)", min_width=14, overflow="fold")
    for a in rows:
        t.add_row(
            str(a.id),
            a.status,
            escape(series_text(a)),
            escape(a.machine),
            f"[{_direction(a).style}]{a.direction} {change_text(a.ratio)}[/] {ci_text(a.ci)}",
            p_text(a.q),
            escape(alert_build_change(a)),
        )
    return t


def alerts_json(rows: list[AlertRow]) -> str:
    """`tritonwatch alerts --format json`: a list of objects with the documented fields."""
    return json.dumps([a.to_json() for a in rows], indent=2)


def alert_detail(a: AlertRow, history: list[AlertEvent]) -> RenderableType:
    """`tritonwatch alert ID`: the change, its evidence, what changed, and the triage history."""
    t = Table(
        show_header=False, title=f"alert {a.id}: {a.direction} ({a.status})", title_justify="left"
    )
    t.add_column("field", style="bold")
    t.add_column("value")
    d = a.details or {}
    rows: list[tuple[str, str]] = [
        ("series", series_text(a)),
        ("machine", a.machine + (f" ({a.gpu_model})" if a.gpu_model else "")),
        ("change", f"{change_text(a.ratio)} (ratio {a.ratio:.4f}, better is {a.better})"),
        ("95% CI", ci_text(a.ci)),
        ("p / q", f"{p_text(a.p)} / {p_text(a.q)}"),
        (
            "last good",
            f"run {a.last_good_run[:8]}  {build_text(a.last_good_build)}  "
            f"{d.get('last_good_at', '')}",
        ),
        (
            "first bad",
            f"run {a.first_bad_run[:8]}  {build_text(a.first_bad_build)}  "
            f"{d.get('first_bad_at', '')}",
        ),
    ]
    for name, ch in (d.get("changes") or {}).items():
        rows.append((f"changed: {name}", f"{ch.get('from')} -> {ch.get('to')}"))
    cg = d.get("codegen")
    if cg:
        rows.append(
            (
                "generated code",
                f"{cg['kernels_changed']} of {cg['kernels_compared']} kernel(s) changed",
            )
        )
    if d.get("before") and d.get("after"):
        rows.append(
            (
                "evidence",
                f"{d['before']['nights']} night(s) before, "
                f"{d['after']['nights']} after; method {d.get('method')}",
            )
        )
    for k, v in rows:
        t.add_row(k, escape(str(v)))
    h = Table(title="history", title_justify="left")
    for col in ("when (UTC)", "who", "status", "note"):
        h.add_column(col)
    for e in history:
        h.add_row(
            e.at.strftime("%Y-%m-%d %H:%M"),
            escape(e.actor),
            f"{e.old_status or '-'} -> {e.new_status}",
            escape(e.note or ""),
        )
    return Group(t, h)
