"""Renderers for stored runs: the `runs` table and one run's results (`show`)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from ..naming import build_text, shape_sort_key, shape_text
from ..runformat import OUTCOME_TEXT, outcome
from ..store.rows import ResultRow, RunDetail, RunSummary, StoreInfo

#: How each outcome is written in a terminal (only incorrect and error are failures, in red).
OUTCOME_STYLE = {
    "ok": "green",
    "checked": "cyan",
    "not available": "dim",
    "incorrect": "bold red",
    "error": "bold red",
}


def outcomes_text(r: RunSummary) -> str:
    """``123 ok, 59 checked, 73 not available`` (failures last); ``no results`` for none."""
    parts = [f"{r.outcomes[k]} {k}" for k in OUTCOME_TEXT if r.outcomes.get(k)]
    return ", ".join(parts) or "no results"


def value_text(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.1f}"
    elif abs(value) >= 1:
        text = f"{value:.3f}"
    else:
        text = f"{value:.4g}"
    return f"{text} {unit}".strip()


def ci_text(r: ResultRow) -> str:
    """Half-width of the median's 95% CI as a percentage of the median."""
    if r.ci_low is None or r.ci_high is None or not r.value:
        return "-"
    return f"±{100 * (r.ci_high - r.ci_low) / 2 / abs(r.value):.2f}%"


def runs_table(runs: list[RunSummary]) -> Table:
    t = Table(
        title=f"{len(runs)} run(s), newest first",
        title_justify="left",
        caption="failed = incorrect + error; checked (correct, not timed) and not available "
        "here are not failures",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    t.add_column("run", no_wrap=True)
    t.add_column("started (UTC)", no_wrap=True)
    t.add_column("machine", overflow="fold")
    t.add_column("triton", overflow="fold")
    t.add_column("label", overflow="fold")
    t.add_column("results", min_width=14, overflow="fold")
    t.add_column("failed", justify="right", no_wrap=True)
    for r in runs:
        triton = build_text({"triton_version": r.triton_version, "triton_commit": r.triton_commit})
        device = r.gpu_model or r.device or "-"
        run = escape(r.uuid[:8]) + (" [yellow]interrupted[/]" if r.interrupted else "")
        cells = [
            r.started_at.strftime("%Y-%m-%d %H:%M"),
            # Machines named by their GPU (HUD and tritonbench imports) say it once.
            r.machine if device == r.machine else f"{r.machine} ({device})",
            triton,
            r.label or "",
            outcomes_text(r),
        ]
        failed = f"[bold red]{r.n_failed}[/]" if r.n_failed else "0"
        t.add_row(run, *map(escape, cells), failed)
    return t


def run_header(d: RunDetail) -> list[str]:
    s = d.summary
    lines = [
        f"run {s.uuid}  started {s.started_at.strftime('%Y-%m-%d %H:%M:%S UTC')}  "
        f"label {s.label or '-'}"
        + ("  INTERRUPTED (holds the cases that finished)" if s.interrupted else ""),
        f"machine {s.machine}  device {s.device or '-'}  GPU {s.gpu_model or '-'}",
        "build "
        + "  ".join(
            f"{k} {v.get('version')}" + (f"@{v['commit'][:10]}" if v.get("commit") else "")
            for k, v in d.build_info.items()
            if isinstance(v, dict)
        ),
    ]
    if d.info.get("command"):
        lines.append(f"reproduce: {d.info['command']}")
    lines.append(f"results: {outcomes_text(s)}; {s.n_failed} failed")
    return lines


def result_order(r: ResultRow) -> tuple[Any, ...]:
    """How a run's results are listed: operator, provider, variant, shape (by size), dtype,
    mode, then time before the metrics derived from it."""
    return (
        r.operator,
        r.provider,
        r.variant,
        shape_sort_key(r.shape),
        r.dtype,
        r.mode,
        r.metric != "time",
        r.metric,
    )


def results_table(d: RunDetail) -> Table:
    """Every result of a run; why a result was not available is a numbered note under it."""
    reasons: dict[str, int] = {}
    t = Table(
        title=f"{len(d.results)} result(s)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    t.add_column("case", min_width=16)
    t.add_column("provider", max_width=18, overflow="fold")
    t.add_column("dtype", no_wrap=True)
    t.add_column("median", justify="right", no_wrap=True)
    t.add_column("95% CI", justify="right", no_wrap=True)
    t.add_column("n", justify="right", no_wrap=True)
    t.add_column("status", min_width=17)
    for r in sorted(d.results, key=result_order):
        o = outcome(r.status, r.correct)
        status = f"[{OUTCOME_STYLE[o]}]{o}[/]"
        if r.error and o in ("not available", "incorrect", "error"):
            why = r.error.strip().splitlines()[0]
            status += f" ({reasons.setdefault(why, len(reasons) + 1)})"
        provider = r.provider + (f"/{r.variant}" if r.variant else "")
        cells = [
            f"{r.operator} {shape_text(r.shape)}",
            provider,
            r.dtype + (f" {r.mode}" if r.mode not in ("", "fwd") else ""),
            value_text(r.value, r.unit),
            ci_text(r),
            str(r.n or ""),
        ]
        t.add_row(*map(escape, cells), status)
    notes = [f"({i}) {escape(why)}" for why, i in reasons.items()]
    if any(outcome(r.status, r.correct) == "checked" for r in d.results):
        notes.insert(0, "checked: correct (checked against the reference), not timed")
    if notes:
        t.caption = "\n".join(notes)
        t.caption_justify = "left"
    return t


def summary_json(r: RunSummary) -> dict[str, Any]:
    return {
        "id": r.uuid,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "label": r.label,
        "suite": r.suite,
        "org": r.org,
        "machine": r.machine,
        "device": r.device,
        "gpu_model": r.gpu_model,
        "triton_version": r.triton_version,
        "triton_commit": r.triton_commit,
        "n_results": r.n_results,
        "n_failed": r.n_failed,
    }


def store_info_json(info: StoreInfo) -> dict[str, Any]:
    """`db info --format json`."""
    return {
        "url": info.url,
        "backend": info.backend,
        "schema_version": info.schema_version,
        "counts": info.counts,
    }


def store_info_text(info: StoreInfo) -> str:
    """`db info`: the URL, backend, schema version and a row count per table."""
    lines = [
        f"url             {info.url}",
        f"backend         {info.backend}",
        f"schema version  {info.schema_version}",
    ]
    lines += [f"{table:<15} {count:,}" for table, count in info.counts.items()]
    return "\n".join(lines)
