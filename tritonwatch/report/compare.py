"""Renderers for an A/B comparison: a colored terminal table, Markdown for a pull-request
comment, and JSON. They only format what :class:`~tritonwatch.analysis.compare.Comparison`
computed."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..analysis.compare import CaseComparison, Comparison, json_safe
from ..naming import shape_text

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


def scope_lines(meta: dict[str, Any], n_timed: int | None = None) -> list[str]:
    """What was compared, from a comparison's summary: an A/A, which providers both builds
    timed (``n_timed`` cases), and the cases not timed, counted by reason."""
    out = []
    if meta.get("same_build"):
        out.append("A/A: both sides are the same Python and Triton; any verdict is noise")
    timed = meta.get("timed_providers")
    if timed:
        count = f" ({n_timed} case(s))" if n_timed is not None else ""
        out.append(f"timed by both builds: {', '.join(map(str, timed))}{count}")
    missing = meta.get("not_timed_cases") or []
    why: dict[str, int] = {}
    for row in missing:
        reason = str(row.get("reason") or "skipped").split(" (")[0]
        why[reason] = why.get(reason, 0) + 1
    if not why and meta.get("not_timed"):  # stored before reasons were kept per case
        why[str(meta.get("not_timed_reason") or "not timed")] = int(meta["not_timed"])
    if why:
        parts = "; ".join(f"{k} ({v})" for k, v in sorted(why.items(), key=lambda x: -x[1]))
        out.append(f"not timed, so not compared: {sum(why.values())} case(s): {parts}")
    return out


def scope_text(meta: dict[str, Any]) -> str:
    """:func:`scope_lines` as one line (the dashboard's summary)."""
    return "; ".join(scope_lines(meta))


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
    """One row per case, regressions first; seven columns, so it reads in 100 columns: the case
    (operator and shape, then provider and dtype) wraps instead of being cut."""
    t = Table(title=escape(f"A: {comparison.label_a}   vs   B: {comparison.label_b}"))
    t.add_column("case", overflow="fold", ratio=1)
    for col in ("A median", "B median", "B vs A [95% CI]", "p", "MDE"):
        t.add_column(col, justify="right", no_wrap=col != "B vs A [95% CI]")
    t.add_column("verdict", overflow="fold")
    for c in ordered(comparison):
        if c.verdict == "same" and not show_same:
            continue
        style = COLORS[c.verdict]
        verdict = c.verdict if c.reason is None else f"{c.verdict}: {c.reason[:60]}"
        shape = shape_text(c.key.shape_dict)
        t.add_row(
            escape(f"{c.key.operator} {shape}\n{c.key.provider_key} {c.key.dtype}"),
            _ms(c.a.median),
            _ms(c.b.median),
            change_text(c.ratio, c.ci),
            _p(c.p),
            _mde(c),
            Text(verdict, style=style),
        )
    console.print(t)
    n_timed = sum(1 for c in comparison.cases if c.measured)
    for line in scope_lines(comparison.meta, n_timed):
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
        *[
            f"- {_md_escape(line)}"
            for line in scope_lines(comparison.meta, sum(1 for c in comparison.cases if c.measured))
        ],
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


# -- the dashboard's comparison page (from the stored JSON rows) --------------------------------
def _pct(x: float) -> str:
    return f"{(x - 1) * 100:+.1f}"


def change_text(ratio: float | None, ci: Any) -> str:
    """A ratio B/A and its CI as a change: ``+1.2% [+0.4, +2.0]``."""
    if ratio is None:
        return "-"
    text = f"{_pct(ratio)}%"
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci:
        text += f" [{_pct(float(ci[0]))}, {_pct(float(ci[1]))}]"
    return text


def _shape_text(shape: Any) -> str:
    if isinstance(shape, dict):
        return shape_text(shape)
    return str(shape or "")


SUMMARY_LABELS = {
    "cases": "cases compared",
    "slower": "slower in B",
    "faster": "faster in B",
    "same": "no change",
    "incorrect": "incorrect",
    "failed": "failed",
    "only_in_a": "only in A",
    "only_in_b": "only in B",
    "triton_a": "Triton A",
    "triton_b": "Triton B",
    "threshold": "threshold",
    "alpha": "false-discovery rate",
    "forced": "compared despite differing",
    "design": "how it was measured",
    "stops": "cases stopped as",
}


def _detect_text(c: dict[str, Any]) -> str:
    """The smallest change the case could have detected, ``±0.4% (8 blocks on 4 pairs)``,
    else samples."""
    mde = c.get("mde")
    if isinstance(mde, (int, float)):
        blocks, pairs = c.get("blocks"), c.get("workers") or 1
        on = f" on {pairs} pairs" if pairs > 1 else ""
        return f"±{mde:.1%}" + (f" ({blocks} blocks{on})" if blocks else "")
    return f"{c.get('n_a', '-')} / {c.get('n_b', '-')} samples"


def comparison_view(summary: dict[str, Any], cases: list[Any]) -> dict[str, Any]:
    """A stored comparison as the dashboard shows it: a headline, labelled summary lines, and
    rows with human headers, units and rounded changes, regressions first, largest change first.
    """
    ranked: list[tuple[tuple[int, float], dict[str, str]]] = []
    for c in cases:
        if not isinstance(c, dict):
            continue
        ratio = c.get("ratio")
        verdict = str(c.get("verdict") or "-")
        effect = abs(math.log(ratio)) if isinstance(ratio, (int, float)) and ratio > 0 else 0.0
        rank = ORDER.index(verdict) if verdict in ORDER else len(ORDER)
        ranked.append(
            (
                (rank, -effect),
                {
                    "case": f"{c.get('operator', '')} {_shape_text(c.get('shape'))}".strip(),
                    "provider": str(c.get("provider") or "")
                    + (f"/{c['variant']}" if c.get("variant") else ""),
                    "dtype": str(c.get("dtype") or ""),
                    "a": _ms(c.get("a_median")),
                    "b": _ms(c.get("b_median")),
                    "change": change_text(ratio, c.get("ci")),
                    "p": _p(c.get("p")),
                    "detect": _detect_text(c),
                    "verdict": verdict,
                    "reason": str(c.get("reason") or ""),
                },
            )
        )
    rows = [row for _, row in sorted(ranked, key=lambda x: x[0])]
    s = summary
    g = s.get("geomean_speedup")
    if isinstance(g, (int, float)) and g > 0:
        faster = (g - 1) * 100
        lead = f"B is {abs(faster):.1f}% {'faster' if faster >= 0 else 'slower'} than A"
        lead += f" (geometric mean over {s.get('cases', len(rows))} cases)"
    else:
        lead = "Nothing was timed by both A and B"
    counts = ", ".join(f"{s[k]} {k}" for k in ORDER if s.get(k))
    lines = []
    if scope_text(s):
        lines.append(("what was compared", scope_text(s)))
    for key, label in SUMMARY_LABELS.items():
        v = s.get(key)
        if v in (None, "", [], {}) or key in ("cases", *ORDER):
            continue
        if key == "threshold":
            v = f"{float(v):.1%} (smaller changes are not called)"
        elif key == "alpha":
            v = f"{float(v):.0%}"
        elif isinstance(v, list):
            v = ", ".join(map(str, v))
        elif isinstance(v, dict):
            v = ", ".join(f"{k} {n}" for k, n in sorted(v.items()))
        lines.append((label, str(v)))
    per_op = s.get("per_operator")
    if isinstance(per_op, dict) and per_op:
        lines.append(
            (
                "speedup of B per operator",
                ", ".join(
                    f"{k} {float(v):.3f}x" for k, v in sorted(per_op.items()) if v is not None
                ),
            )
        )
    empty = (
        "No case was timed by both builds. On a CPU, Triton kernels run under the interpreter "
        "for correctness only and are not timed; compare torch providers there, or run on a GPU."
    )
    return {
        "headline": f"{lead}; {counts or 'no verdicts'}.",
        "summary": lines,
        "rows": rows,
        "empty": empty,
    }
