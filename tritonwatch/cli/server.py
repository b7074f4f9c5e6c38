"""Commands of the server area: ``tritonwatch serve``."""

from __future__ import annotations

import click

from .. import settings
from .options import db_option


@click.command("serve")
@db_option
@click.option(
    "--host",
    default=None,
    metavar="ADDR",
    help="Address to listen on [default: setting host, 127.0.0.1].",
)
@click.option(
    "--port",
    default=None,
    type=int,
    metavar="PORT",
    help="Port to listen on [default: setting port, 8000].",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="How much the server logs.",
)
def serve_cmd(db: str | None, host: str | None, port: int | None, log_level: str) -> None:
    """Serve the dashboard and the JSON API (docs at /docs) until interrupted.

    Reading is public; triage and saving views need a token (`tritonwatch token create`).
    Everything is served locally, so it works on a host with no internet access.
    """
    from ..web.server import serve

    with settings.scope(db=db, host=host, port=port):
        serve(
            settings.get("db"),
            host=settings.get("host"),
            port=settings.get("port"),
            log_level=log_level,
        )


COMMANDS = [serve_cmd]
