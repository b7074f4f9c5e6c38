"""Commands of the server area (issue #6)."""

from __future__ import annotations

import click

from .options import not_available


@click.command("serve", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def serve_cmd() -> None:
    """Serve the dashboard, the JSON API and the upload API."""
    raise not_available("serve", 6)


COMMANDS = [serve_cmd]
