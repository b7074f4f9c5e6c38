"""Renderers for the bench commands: the results of a ``run`` and the ``list`` of operators.

Renderers only render: every number comes from the runner's outcome or listing.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None or v != v else format(v, spec)


def results(outcome: Any) -> Group:
    """The per-case table of a finished ``run`` and a one-line summary under it."""
    t = Table(
        title=f"run {outcome.run.run.id} ({outcome.run.run.device}, suite {outcome.run.run.suite})"
    )
    for col in (
        "case",
        "provider",
        "dtype",
        "median ms",
        "95% CI",
        "TFLOP/s",
        "GB/s",
        "% peak",
        "status",
    ):
        t.add_column(
            col, justify="right" if col not in ("case", "provider", "dtype", "status") else "left"
        )
    order = {"ok": 0, "incorrect": 1, "error": 2, "checked under the interpreter": 3}
    rows = sorted(
        outcome.outcomes,
        key=lambda o: (
            o.record.case.operator,
            str(o.record.case.shape),
            o.record.case.dtype,
            o.record.case.provider_key,
        ),
    )
    counts: dict[str, int] = {}
    for o in rows:
        r = o.record
        key = r.status
        if r.status == "skipped":
            key = "checked under the interpreter" if r.correct else "not available here"
        counts[key] = counts.get(key, 0) + 1
        if r.status == "skipped" and not r.correct:
            continue  # not runnable here: `tritonwatch list` says why; counted below
        c = r.case
        shape = ",".join(f"{k}={v}" for k, v in c.shape.items())  # compact: inside brackets
        ci = ""
        if o.median_ms:
            ci = f"{(o.ci_low or 0):.4g}-{(o.ci_high or 0):.4g}"
        d = o.derived
        if r.status == "ok":
            status = "[green]ok[/]" + (
                " [yellow](throttled)[/]" if r.extra.get("throttled") else ""
            )
        elif r.status == "incorrect":
            status = f"[red]INCORRECT[/] {r.error}"
        elif r.status == "skipped":
            status = "[cyan]correct[/] (interpreter)"
        else:
            status = f"[red]error[/] {(r.error or '')[:80]}"
        t.add_row(
            f"{c.operator}[{shape}]",
            c.provider_key,
            c.dtype,
            _fmt(o.median_ms, ".4g"),
            ci,
            _fmt(d.tflops if d else None, ".3g"),
            _fmt(d.gbps if d else None, ".4g"),
            _fmt(d.pct_peak if d else None, ".1f"),
            status,
        )
    summary = ", ".join(f"{counts[k]} {k}" for k in sorted(counts, key=lambda k: order.get(k, 9)))
    if "not available here" in counts:
        summary += " (`tritonwatch list` says why)"
    peak = (
        f"% of peak from {outcome.peak_source} peaks"
        if outcome.peak_source
        else "no % of peak (no known peaks)"
    )
    stored = f"stored as run {outcome.stored.uuid}" if outcome.stored else "nothing stored"
    return Group(t, Text.from_markup(f"{summary}; {peak}; {stored}; {outcome.elapsed_s:.1f} s"))


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
