"""Renderers for stored runs: the `runs` table and one run's results (`show`)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from ..naming import shape_text
from ..store.rows import ResultRow, RunDetail, RunSummary, StoreInfo


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
    t = Table(title=f"{len(runs)} run(s), newest first", title_justify="left")
    for col in (
        "run",
        "started (UTC)",
        "machine",
        "device",
        "triton",
        "label",
        "results",
        "failed",
    ):
        t.add_column(col, justify="right" if col in ("results", "failed") else "left")
    for r in runs:
        triton = r.triton_version + (f" ({r.triton_commit[:10]})" if r.triton_commit else "")
        device = r.gpu_model or r.device or "-"
        cells = [
            r.uuid[:8],
            r.started_at.strftime("%Y-%m-%d %H:%M"),
            r.machine,
            device,
            triton,
            r.label or "",
            str(r.n_results),
            str(r.n_failed) if r.n_failed else "",
        ]
        t.add_row(*map(escape, cells))
    return t


def run_header(d: RunDetail) -> list[str]:
    s = d.summary
    lines = [
        f"run {s.uuid}  started {s.started_at.isoformat()}  label {s.label or '-'}",
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
    return lines


def results_table(d: RunDetail) -> Table:
    t = Table(title=f"{len(d.results)} result(s)", title_justify="left")
    for col in (
        "operator",
        "provider",
        "variant",
        "shape",
        "dtype",
        "metric",
        "median",
        "95% CI",
        "n",
        "status",
    ):
        t.add_column(col, justify="right" if col in ("median", "95% CI", "n") else "left")
    for r in d.results:
        status = "ok" if r.status == "ok" else f"[red]{r.status.upper()}[/red]"
        if r.status != "ok" and r.error:
            status += " " + escape(r.error.strip().splitlines()[0][:60])
        cells = [
            r.operator,
            r.provider,
            r.variant,
            shape_text(r.shape),
            r.dtype,
            r.metric,
            value_text(r.value, r.unit),
            ci_text(r),
            str(r.n or ""),
        ]
        t.add_row(*map(escape, cells), status)
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
