"""Renderers for notifications: Markdown, Slack and Discord webhook payloads, GitHub issues.

They render a :class:`tritonwatch.notify.Notification` (alerts already grouped by the
build change that caused them, most severe first) and never compute anything.
"""

from __future__ import annotations

from typing import Any

from ..store.alerts import AlertRow
from .alerts import change_text, ci_text, p_text, series_text

MAX_LINES = 50  # alerts listed per message; the rest are counted


def _link(base_url: str | None, a: AlertRow) -> str | None:
    return f"{base_url.rstrip('/')}/alerts/{a.id}" if base_url else None


def _md_escape(text: str) -> str:
    for ch in "\\|*_`[]":
        text = text.replace(ch, "\\" + ch)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _summary(n: Any) -> str:
    regs = sum(1 for g in n.groups for a in g.alerts if a.direction == "regression")
    imps = sum(len(g.alerts) for g in n.groups) - regs
    return (
        f"tritonwatch: {regs} regression(s) and {imps} improvement(s) "
        f"in {len(n.groups)} build change(s)"
    )


def _line_md(a: AlertRow, base_url: str | None) -> str:
    ident = f"[#{a.id}]({_link(base_url, a)})" if base_url else f"#{a.id}"
    return (
        f"| {ident} | {a.direction} | {_md_escape(series_text(a))} | {_md_escape(a.machine)} "
        f"| {change_text(a.ratio)} | {ci_text(a.ci)} | {p_text(a.q)} |"
    )


def _fixed_line(a: AlertRow) -> str:
    fx = (a.details or {}).get("fixed") or {}
    return (
        f"#{a.id} {series_text(a)} on {a.machine}: {change_text(a.ratio)} from "
        f"{str(a.details.get('first_bad_at', ''))[:10]}, back on {str(fx.get('at', ''))[:10]}"
    )


def _fixed_md(n: Any) -> list[str]:
    fixed = n.fixed
    if not fixed:
        return []
    out = ["### Fixed (the series went back)", ""]
    out += [f"- {_md_escape(_fixed_line(a))}" for a in fixed[:MAX_LINES]]
    return [*out, ""]


def markdown(n: Any, base_url: str | None = None) -> str:
    """A Markdown digest: one table per build change, most severe first, then fixed alerts."""
    if not n.groups:
        fixed = _fixed_md(n)
        return "\n".join(["tritonwatch: no new alerts.", "", *fixed]).rstrip() + "\n"
    out = [f"## {_summary(n)}", ""]
    shown = 0
    for g in n.groups:
        out += [f"### {_md_escape(g.title).replace('-&gt;', '→')}", ""]
        if g.changes:
            out += [
                "Also changed: "
                + ", ".join(
                    f"{_md_escape(k)} {_md_escape(str(v.get('from')))} -> {_md_escape(str(v.get('to')))}"
                    for k, v in g.changes.items()
                ),
                "",
            ]
        out += [
            "| alert | direction | series | machine | change | 95% CI | q |",
            "|---:|---|---|---|---:|---|---:|",
        ]
        for a in g.alerts:
            if shown >= MAX_LINES:
                break
            out.append(_line_md(a, base_url))
            shown += 1
        out.append("")
    total = sum(len(g.alerts) for g in n.groups)
    if total > shown:
        out.append(f"... and {total - shown} more (`tritonwatch alerts --status new`).")
    out += ["", *_fixed_md(n)]
    return "\n".join(out).rstrip() + "\n"


def github_issue(n: Any, base_url: str | None = None) -> dict[str, Any]:
    """A GitHub issue (title, body, labels) as the REST API takes it."""
    worst = n.groups[0].alerts[0] if n.groups else None
    title = (
        f"Performance: {_summary(n).removeprefix('tritonwatch: ')}; worst "
        f"{worst.operator} {change_text(worst.ratio)} on {worst.machine}"
        if worst
        else "Performance: no new alerts"
    )
    return {
        "title": title[:250],
        "body": markdown(n, base_url),
        "labels": ["performance", "regression"] if worst else ["performance"],
    }


def slack(n: Any, base_url: str | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook payload (text plus blocks)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _summary(n)[:150]}}
    ]
    shown = 0
    for g in n.groups:
        lines = [f"*{_slack_escape(g.title)}*"]
        for a in g.alerts:
            if shown >= MAX_LINES:
                break
            link = _link(base_url, a)
            ident = f"<{link}|#{a.id}>" if link else f"#{a.id}"
            lines.append(
                f"{ident} {a.direction} {change_text(a.ratio)} "
                f"{_slack_escape(series_text(a))} on {_slack_escape(a.machine)}"
            )
            shown += 1
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}}
        )
        if len(blocks) >= 49:
            break
    fixed = n.fixed
    if fixed and len(blocks) < 50:
        lines = ["*Fixed (the series went back)*"]
        lines += [_slack_escape(_fixed_line(a)) for a in fixed[:MAX_LINES]]
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}}
        )
    return {"text": _summary(n), "blocks": blocks}


def discord(n: Any, base_url: str | None = None) -> dict[str, Any]:
    """A Discord webhook payload (content plus up to ten embeds, one per build change)."""
    embeds = []
    for g in n.groups[:10]:
        lines = []
        for a in g.alerts[:20]:
            link = _link(base_url, a)
            ident = f"[#{a.id}]({link})" if link else f"#{a.id}"
            lines.append(
                f"{ident} {a.direction} {change_text(a.ratio)} "
                f"{_md_escape(series_text(a))} on {_md_escape(a.machine)}"
            )
        if len(g.alerts) > 20:
            lines.append(f"... and {len(g.alerts) - 20} more")
        worst = g.alerts[0]
        embeds.append(
            {
                "title": g.title[:256],
                "description": "\n".join(lines)[:4000],
                "color": 0xD03030 if worst.direction == "regression" else 0x30A050,
            }
        )
    fixed = n.fixed
    if fixed and len(embeds) < 10:
        embeds.append(
            {
                "title": "Fixed (the series went back)",
                "description": "\n".join(_md_escape(_fixed_line(a)) for a in fixed[:20])[:4000],
                "color": 0x30A050,
            }
        )
    return {"content": _summary(n)[:2000], "embeds": embeds}
