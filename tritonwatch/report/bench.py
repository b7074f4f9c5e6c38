"""Renderers for the bench commands: the results of a ``run`` and the ``list`` of operators.

Renderers only render: every number comes from the runner's outcome or listing.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..naming import shape_sort_key, shape_text
from ..runformat import OUTCOMES
from ..runformat import outcome as run_outcome


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None or v != v else format(v, spec)


#: A run's outcomes as its summary line counts them (cases, not metric rows), failures last.
_SUMMARY = {
    "ok": "ok",
    "checked": "checked (correct under the Triton interpreter, not timed)",
    "not available": "not available here",
    "incorrect": "incorrect",
    "error": "error",
}


def results(outcome: Any) -> Group:
    """The per-case table of a finished ``run`` and a one-line summary under it.

    Cases not available here are counted, not listed (`tritonwatch list` says why); columns
    with no value in any row (``% peak`` on a CPU) are left out.
    """
    rows = sorted(
        outcome.outcomes,
        key=lambda o: (
            o.record.case.operator,
            shape_sort_key(o.record.case.shape),
            o.record.case.dtype,
            o.record.case.provider_key,
        ),
    )
    counts: dict[str, int] = {}
    table_rows: list[list[str]] = []
    for o in rows:
        r = o.record
        key = run_outcome(r.status, r.correct)
        counts[key] = counts.get(key, 0) + 1
        if key == "not available":
            continue
        c = r.case
        d = o.derived
        if key == "ok":
            status = "[green]ok[/]" + (
                " [yellow](throttled)[/]" if r.extra.get("throttled") else ""
            )
        elif key == "checked":
            status = "[cyan]checked[/]"
        else:
            status = f"[bold red]{key}[/] " + escape((r.error or "").strip()[:80])
        ci = ""
        if o.median_ms and o.ci_low is not None and o.ci_high is not None:
            ci = f"±{100 * (o.ci_high - o.ci_low) / 2 / o.median_ms:.2f}%"
        table_rows.append(
            [
                escape(f"{c.operator} {shape_text(c.shape)}"),
                escape(c.provider_key),
                c.dtype,
                _fmt(o.median_ms, ".4g"),
                ci,
                _fmt(d.tflops if d else None, ".3g"),
                _fmt(d.gbps if d else None, ".4g"),
                _fmt(d.pct_peak if d else None, ".1f"),
                status,
            ]
        )
    t = Table(
        title=f"run {outcome.run.run.id} ({outcome.run.run.device}, suite {outcome.run.run.suite})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    columns = ("case", "provider", "dtype", "median ms", "95% CI", "TFLOP/s", "GB/s", "% peak")
    keep = [
        i
        for i, col in enumerate(columns)
        if i < 3 or any(row[i] for row in table_rows) or col == "median ms"
    ]
    for i in keep:
        col = columns[i]
        if col == "case":
            t.add_column(col, min_width=16)
        elif i < 3:
            t.add_column(col, max_width=18, overflow="fold")
        else:
            t.add_column(col, justify="right", no_wrap=True)
    t.add_column("status", min_width=7)
    for row in table_rows:
        t.add_row(*(row[i] for i in keep), row[-1])
    summary = ", ".join(f"{counts[k]} {_SUMMARY[k]}" for k in OUTCOMES if counts.get(k))
    if "not available" in counts:
        summary += " (`tritonwatch list` says why)"
    peak = (
        f"% of peak from {outcome.peak_source} peaks"
        if outcome.peak_source
        else "no % of peak (no known peaks)"
    )
    stored = f"stored as run {outcome.stored.uuid}" if outcome.stored else "nothing stored"
    lines = [f"{summary}; {peak}; {stored}; {outcome.elapsed_s:.1f} s"]
    if outcome.codegen is not None:
        lines.append(codegen_line(outcome.codegen))
    return Group(t, Text("\n".join(lines)))


def codegen_line(c: Any) -> str:
    """What ``run --codegen`` compiled and stored, in one line."""
    by = f" ({c.selected_by})" if c.selected_by else " (the whole suite)"
    if not c.n_specs:
        what = f"codegen: nothing compiled{by}"
    else:
        kernels = ", ".join(c.kernels[:6]) + (
            f" and {len(c.kernels) - 6} more" if len(c.kernels) > 6 else ""
        )
        what = (
            f"codegen{by}: {c.n_specs} specs of {kernels} for {', '.join(c.targets)}: "
            f"{c.n_ok} compiled, {c.n_failed} failed; {c.n_results} static-metric results stored"
        )
    if c.unmatched:
        what += (
            f"; no kernel or spec is named by {', '.join(c.unmatched)} "
            "(name kernels with --codegen-kernels)"
        )
    return what


def listing(info: Any, suite: str) -> Group:
    """`tritonwatch list`: operators and providers, and which dtypes are available here."""
    t = Table(title=f"operators and providers on {info.device.kind} ({info.device.arch})")
    for col in ("operator", "provider", "kind", "cases", "available here"):
        t.add_column(col)
    for row in info.rows:
        ok = [dt for dt, why in row["dtypes"].items() if why is None]
        by_reason: dict[str, list[str]] = {}
        for dt, why in row["dtypes"].items():
            if why:
                by_reason.setdefault(why, []).append(dt)
        notes = [f"{', '.join(dts)}: {why}" for why, dts in by_reason.items()]
        if ok and row["kind"] == "inductor" and info.device.kind == "cpu":
            notes.append("runs on CPU only with --provider inductor (slow C++ compiles)")
        avail = (", ".join(ok) or "[red]none[/]") + "".join(f"\n[dim]{n}[/]" for n in notes)
        t.add_row(row["operator"], row["provider"], row["kind"], str(row["cases"]), avail)
    line = f"{info.n_cases} cases in suite {suite!r} can run here; {info.n_skipped} cannot"
    return Group(t, Text(line))
