"""Renderers for an A/B comparison: a colored terminal table, Markdown for a pull-request
comment, and JSON. They only format what :class:`~tritonwatch.analysis.compare.Comparison`
computed."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..analysis.compare import CaseComparison, Comparison, json_safe

COLORS = {
    "slower": "bold red",
    "faster": "bold green",
    "same": "dim",
    "incorrect": "yellow",
    "failed": "yellow",
}
ORDER = ("slower", "faster", "incorrect", "failed", "same")


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.2f} us" if v < 1 else f"{v:.3f} ms"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}x"


def _ci(c: CaseComparison) -> str:
    ci = c.ci
    return "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _mde(c: CaseComparison) -> str:
    """The smallest change the case could have detected, as ``±1.2%``."""
    return "-" if c.mde is None else f"±{c.mde:.1%}"


def scope_lines(comparison: Comparison) -> list[str]:
    """What was compared: which providers both builds timed, what was not timed and why, and
    whether both sides were one build (an A/A)."""
    m = comparison.meta
    out = []
    if m.get("same_build"):
        out.append("A/A: both sides are the same Python and Triton; any verdict is noise")
    timed = m.get("timed_providers")
    if timed:
        n = sum(1 for c in comparison.cases if c.measured)
        out.append(f"timed by both builds: {', '.join(timed)} ({n} case(s))")
    missing = m.get("not_timed_cases") or []
    if missing:
        why: dict[str, int] = {}
        for row in missing:
            reason = str(row.get("reason") or "skipped").split(" (")[0]
            why[reason] = why.get(reason, 0) + 1
        parts = "; ".join(f"{k} ({v})" for k, v in sorted(why.items(), key=lambda x: -x[1]))
        out.append(f"not timed, so not compared: {len(missing)} case(s): {parts}")
    return out


def _p(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1e}" if v < 1e-3 else f"{v:.3f}"


def _case(c: CaseComparison) -> str:
    dims = ",".join(f"{k}={v}" for k, v in c.key.shape)
    return f"{c.key.operator}[{dims}]"


def ordered(comparison: Comparison) -> list[CaseComparison]:
    """Regressions first, then improvements, problems, and the rest; largest change first."""
    return [c for v in ORDER for c in comparison.by_verdict(v)]


def headline(comparison: Comparison) -> str:
    """One line: the geomean speedup of B over A and the verdict counts."""
    n = comparison.counts
    g = comparison.geomean
    speed = f"geomean speedup of B over A {g.speedup:.3f}x ({g.n} cases)" if g else "nothing timed"
    counts = ", ".join(f"{n[v]} {v}" for v in ORDER if n[v] or v in ("slower", "faster", "same"))
    text = f"{speed}; {counts} (threshold {comparison.threshold:.1%}, FDR {comparison.alpha:.0%})"
    mdes = sorted(c.mde for c in comparison.by_verdict("same") if c.mde is not None)
    if mdes:
        text += (
            f"; 'same' rules out changes above {mdes[len(mdes) // 2]:.1%} "
            f"(median case; the least certain {mdes[-1]:.1%})"
        )
    return text


def render_terminal(comparison: Comparison, console: Console, *, show_same: bool = True) -> None:
    t = Table(title=escape(f"A: {comparison.label_a}   vs   B: {comparison.label_b}"))
    for col in ("case", "provider", "dtype", "A median", "B median", "B/A", "95% CI", "p", "MDE"):
        t.add_column(col, justify="left" if col in ("case", "provider", "dtype") else "right")
    t.add_column("verdict")
    for c in ordered(comparison):
        if c.verdict == "same" and not show_same:
            continue
        style = COLORS[c.verdict]
        verdict = c.verdict if c.reason is None else f"{c.verdict}: {c.reason[:60]}"
        t.add_row(
            escape(_case(c)),
            escape(c.key.provider_key),
            escape(c.key.dtype),
            _ms(c.a.median),
            _ms(c.b.median),
            _ratio(c.ratio),
            _ci(c),
            _p(c.p),
            _mde(c),
            Text(verdict, style=style),
        )
    console.print(t)
    for line in scope_lines(comparison):
        console.print(Text(line), highlight=False)
    if comparison.per_operator:
        ops = ", ".join(f"{g.group} {g.speedup:.3f}x" for g in comparison.per_operator)
        console.print(Text(f"geomean speedup per operator (B over A): {ops}"), highlight=False)
    slower = comparison.counts["slower"]
    color = "red" if slower else "green"
    console.print(Text(headline(comparison), style=color), highlight=False)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _md_table(rows: list[CaseComparison]) -> list[str]:
    out = [
        "| case | provider | dtype | A | B | B/A | 95% CI | p | MDE | verdict |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for c in rows:
        verdict = c.verdict if c.reason is None else f"{c.verdict} ({c.reason[:80]})"
        cells = (
            _case(c),
            c.key.provider_key,
            c.key.dtype,
            _ms(c.a.median),
            _ms(c.b.median),
            _ratio(c.ratio),
            _ci(c),
            _p(c.p),
            _mde(c),
            verdict,
        )
        out.append("| " + " | ".join(_md_escape(str(x)) for x in cells) + " |")
    return out


def render_markdown(comparison: Comparison) -> str:
    """A pull-request comment: summary, regressions, improvements, then the rest folded."""
    n = comparison.counts
    lines = [
        "## tritonwatch compare",
        "",
        f"**A**: `{_md_escape(comparison.label_a)}`  ",
        f"**B**: `{_md_escape(comparison.label_b)}`",
        "",
        f"{'❌' if n['slower'] else '✅'} {_md_escape(headline(comparison))}",
        "",
        *[f"- {_md_escape(line)}" for line in scope_lines(comparison)],
        "",
    ]
    if comparison.per_operator:
        lines += ["| operator | geomean speedup (B over A) | cases |", "|---|---:|---:|"]
        lines += [
            f"| {_md_escape(g.group)} | {g.speedup:.3f}x | {g.n} |" for g in comparison.per_operator
        ]
        lines.append("")
    for verdict, title in (("slower", "Regressions"), ("faster", "Improvements")):
        rows = comparison.by_verdict(verdict)
        if rows:
            lines += [f"### {title} ({len(rows)})", "", *_md_table(rows), ""]
    rest = [c for v in ("incorrect", "failed", "same") for c in comparison.by_verdict(v)]
    if rest:
        lines += [
            "<details>",
            f"<summary>Other cases ({len(rest)}: "
            + ", ".join(f"{n[v]} {v}" for v in ("same", "incorrect", "failed") if n[v])
            + ")</summary>",
            "",
            *_md_table(rest),
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def to_json(comparison: Comparison, /, **extra: Any) -> dict[str, Any]:
    """``{"a", "b", "summary", "cases"}``; each case has operator, provider, variant, shape,
    dtype, a_median, b_median, ratio, ci, p, verdict (and q, n_a, n_b, reason)."""
    return json_safe(
        {
            "a": comparison.label_a,
            "b": comparison.label_b,
            **extra,
            "summary": comparison.summary(),
            "cases": [c.to_json() for c in ordered(comparison)],
        }
    )


def render_json(comparison: Comparison, /, **extra: Any) -> str:
    return json.dumps(to_json(comparison, **extra), indent=2)
