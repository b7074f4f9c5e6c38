"""Commands of the detect area (issue #4)."""

from __future__ import annotations

import click

from .options import not_available


@click.command("detect", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def detect_cmd() -> None:
    """Find regressions and improvements in every series and file alerts (idempotent)."""
    raise not_available("detect", 4)


@click.command("alerts", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def alerts_cmd() -> None:
    """List alerts with their triage status."""
    raise not_available("alerts", 4)


@click.command("alert", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def alert_cmd() -> None:
    """Show one alert or change its triage status."""
    raise not_available("alert", 4)


@click.command("notify", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def notify_cmd() -> None:
    """Render new alerts for Markdown, Slack, Discord or a GitHub issue, or post them."""
    raise not_available("notify", 4)


@click.command("gate", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def gate_cmd() -> None:
    """Pass or fail a release: a policy over operators x dtypes x GPUs, baseline vs candidate."""
    raise not_available("gate", 4)


COMMANDS = [detect_cmd, alerts_cmd, alert_cmd, notify_cmd, gate_cmd]
