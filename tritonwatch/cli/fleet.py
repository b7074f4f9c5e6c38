"""Commands of the fleet area (issue #8)."""

from __future__ import annotations

import click

from .options import not_available


@click.command("push", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def push_cmd() -> None:
    """Send local runs not yet accepted to a tritonwatch server."""
    raise not_available("push", 8)


@click.command("nightly", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def nightly_cmd() -> None:
    """Run the configured suite, push, detect and notify in one command."""
    raise not_available("nightly", 8)


@click.command("token", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def token_cmd() -> None:
    """Create, list and revoke upload tokens for an organisation."""
    raise not_available("token", 8)


COMMANDS = [push_cmd, nightly_cmd, token_cmd]
