"""Renderers for the fleet commands: the ``nightly`` steps and the ``token list``.

Renderers only render: the rows come from a NightlyReport and the Store's token rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:  # the CLI imports this module at start-up; the store is imported on use
    from ..store.access import TokenRow


def nightly_table(report: Any) -> Table:
    """One row per nightly step: whether it succeeded and what happened."""
    table = Table(title="tritonwatch nightly", show_lines=False)
    for col in ("step", "ok", "what happened"):
        table.add_column(col)
    for s in report.steps:
        table.add_row(s.name, "yes" if s.ok else "[red]no[/red]", s.summary)
    return table


def tokens_json(rows: list[TokenRow]) -> list[dict[str, Any]]:
    """Tokens as `token list --format json` prints them (never their value)."""
    return [
        {
            "id": r.id,
            "org": r.org,
            "name": r.name,
            "scopes": list(r.scopes),
            "created_at": r.created_at.isoformat(),
            "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in rows
    ]


def tokens_table(rows: list[TokenRow]) -> Table:
    """Tokens as `token list` shows them: id, organisation, name, scopes, last use, revoked."""
    table = Table()
    for col in ("id", "org", "name", "scopes", "created", "last used", "revoked"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r.id),
            r.org,
            r.name,
            ",".join(r.scopes),
            f"{r.created_at:%Y-%m-%d %H:%M}",
            f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never",
            f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "",
        )
    return table
