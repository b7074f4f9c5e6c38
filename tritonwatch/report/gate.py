"""Renderers for the release gate: a terminal table and a Markdown summary for a pull request."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..analysis.gate import GateCase, GateResult
from ..naming import shape_text
from .alerts import change_text, ci_text, p_text


def _case_name(c: GateCase) -> str:
    parts = [
        c.operator,
        c.provider,
        f"[{c.variant}]" if c.variant else "",
        shape_text(c.shape) if c.shape else "",
        c.dtype,
        c.mode if c.mode != "fwd" else "",
    ]
    return " ".join(p for p in parts if p)


def _verdict(r: GateResult) -> str:
    return "PASS" if r.passed else "FAIL"


def gate_table(r: GateResult) -> Table:
    """Failures first, then the passing cases."""
    t = Table(
        title=f"gate {_verdict(r)}: {r.candidate} vs {r.baseline} ({r.policy}): "
        f"{len(r.cases) - len(r.failures)} of {len(r.cases)} blocking case(s) pass",
        title_justify="left",
    )
    for col in ("verdict", "reason", "case", "GPU", "change", "95% CI", "p", "limit"):
        t.add_column(col, justify="right" if col in ("change", "p", "limit") else "left")
    for c in sorted(r.cases, key=lambda c: c.passed):
        t.add_row(
            Text("pass", style="green") if c.passed else Text("FAIL", style="bold red"),
            c.reason,
            escape(_case_name(c)),
            escape(c.gpu or c.machine),
            change_text(c.ratio) if c.ratio is not None else "-",
            ci_text(c.ci),
            p_text(c.p),
            f"+{100 * c.threshold:.1f}%",
        )
    return t


def _md(text: str) -> str:
    for ch in "\\|*_`[]":
        text = text.replace(ch, "\\" + ch)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def gate_markdown(r: GateResult) -> str:
    """A Markdown summary to paste into (or post on) a pull request."""
    icon = ":white_check_mark:" if r.passed else ":x:"
    lines = [
        f"## {icon} Release gate {_verdict(r)}: `{r.candidate}` vs `{r.baseline}`",
        "",
        f"Policy `{_md(r.policy)}`: {len(r.cases) - len(r.failures)} of {len(r.cases)} "
        "blocking case(s) pass.",
        "",
    ]
    if r.failures:
        lines += [
            "### Failures",
            "",
            "| reason | case | GPU | change | 95% CI | p | limit |",
            "|---|---|---|---:|---|---:|---:|",
        ]
        for c in r.failures:
            lines.append(
                f"| {c.reason} | {_md(_case_name(c))} | {_md(c.gpu or c.machine)} | "
                f"{change_text(c.ratio) if c.ratio is not None else '-'} | "
                f"{ci_text(c.ci)} | {p_text(c.p)} | +{100 * c.threshold:.1f}% |"
            )
        lines.append("")
    passing = [c for c in r.cases if c.passed]
    if passing:
        lines += [
            "<details><summary>Passing cases</summary>",
            "",
            "| case | GPU | change | 95% CI | p |",
            "|---|---|---:|---|---:|",
        ]
        for c in passing:
            lines.append(
                f"| {_md(_case_name(c))} | {_md(c.gpu or c.machine)} | "
                f"{change_text(c.ratio) if c.ratio is not None else '-'} | "
                f"{ci_text(c.ci)} | {p_text(c.p)} |"
            )
        lines += ["", "</details>", ""]
    return "\n".join(lines)
