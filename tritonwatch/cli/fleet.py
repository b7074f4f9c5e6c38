"""Commands of the fleet area: ``push``, ``nightly`` and ``token``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .. import settings
from ..report import fleet as fleet_report
from .options import console, db_option, format_option, open_store, progress_bar


@click.command("push")
@click.option("--server", metavar="URL", help="Server to send runs to [default: setting server].")
@click.option(
    "--token",
    metavar="TOKEN",
    help="Upload token [default: TRITONWATCH_TOKEN]; prefer the variable: options show in `ps`.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Retries per run on connection errors, timeouts, 5xx and 429.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="First retry delay in seconds; doubled each retry (with jitter), capped at 30 s.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the server on each request.",
)
@db_option
def push_cmd(
    server: str | None,
    token: str | None,
    retries: int,
    backoff: float,
    timeout: float,
    db: str | None,
) -> None:
    """Send local runs not yet accepted to a tritonwatch server.

    Safe to re-run: a run is marked as pushed only once the server accepted it, and the server
    ignores a run it already has. Exit status 0 when nothing is left to send, 1 when some runs
    are still spooled (server unreachable, or it refused them), 2 for a usage error.
    """
    from ..errors import UsageError
    from ..push import PushOptions, is_loopback, push

    with settings.scope(server=server, token=token):
        url, tok = settings.get("server"), settings.get("token")
    if not url:
        raise UsageError("no server: pass --server URL or set TRITONWATCH_SERVER")
    if not tok:
        raise UsageError(
            "pushing needs a token: pass --token or set TRITONWATCH_TOKEN "
            "(create one on the server with `tritonwatch token create`)"
        )
    if url.startswith("http://") and not is_loopback(url):
        click.secho(
            "warning: sending the token over plain http; use https for a remote server",
            err=True,
            fg="yellow",
        )
    err = console(err=True)
    opts = PushOptions(attempts=retries + 1, backoff_s=backoff, timeout_s=timeout)
    with open_store(db) as store, progress_bar(err) as bar:
        task = bar.add_task("push", total=None)

        def step(run: Any, i: int, n: int) -> None:
            bar.update(task, total=n, completed=i, description=f"run {run.uuid[:8]}")

        report = push(store, url, tok or "", opts, progress=step)
    for r in report.runs:
        if r.outcome in ("refused", "failed"):
            click.secho(f"{r.outcome}: run {r.uuid}: {r.message}", err=True, fg="yellow")
    click.echo(
        f"{report.server}: {report.count('created')} sent, "
        f"{report.count('existing')} already there, {report.pending} still spooled"
    )
    sys.exit(0 if report.complete else 1)


@click.command("nightly")
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Nightly configuration (TOML; see examples/nightly.toml) "
    "[default: TRITONWATCH_NIGHTLY_CONFIG, else ./tritonwatch-nightly.toml, else defaults].",
)
@db_option
def nightly_cmd(config_path: Path | None, db: str | None) -> None:
    """Run the configured suite, push, detect and notify in one command.

    \b
    Exit status (the first that applies, so a scheduler can act on it):
      3  the suite did not run, or some cases errored or were incorrect
      4  some runs were not pushed; they stay spooled for the next push
      6  detection failed
      5  the notification webhook failed
      1  new regressions were found tonight
      0  all steps succeeded and nothing regressed
      2  configuration or usage error (nothing was attempted)
      130  interrupted (Ctrl-C): finished cases stored, the later steps not run
    """
    from ..nightly import default_config_path, load_config, nightly

    cfg = load_config(config_path or default_config_path())
    err = console(err=True)
    with open_store(db or cfg.db) as store:
        report, text = nightly(store, cfg, on_step=lambda s: err.print(f"nightly: {s} ..."))
    out = console()
    out.print(fleet_report.nightly_table(report))
    if text:
        click.echo(text, nl=not text.endswith("\n"))
    out.print(f"exit status {report.exit_code}")
    sys.exit(report.exit_code)


@click.group("token")
def token_cmd() -> None:
    """Create, list and revoke upload tokens for an organisation (run on the server's db)."""


@token_cmd.command("create")
@click.option("--org", required=True, help="Organisation the token writes for.")
@click.option("--name", required=True, help="Runner name (unique in the organisation).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["upload", "triage", "views"]),
    help="What the token may do; repeat [default: upload only: least privilege for a runner].",
)
@db_option
def token_create_cmd(org: str, name: str, scopes: tuple[str, ...], db: str | None) -> None:
    """Create a token and print it once (only its hash is stored)."""
    with open_store(db) as store:
        made = store.access.create_token(org, name, scopes=tuple(scopes) or ("upload",))
    click.secho(
        f"token {made.row.id} for {made.row.actor} (scopes: {', '.join(made.row.scopes)}); "
        "it is shown only now:",
        err=True,
    )
    click.echo(made.token)


@token_cmd.command("list")
@click.option("--org", help="Only this organisation's tokens.")
@format_option("table", "json")
@db_option
def token_list_cmd(org: str | None, fmt: str, db: str | None) -> None:
    """List tokens (never their value): id, organisation, name, scopes, last use, revoked."""
    import json

    with open_store(db, create=False) as store:
        rows = store.access.tokens(org)
    if fmt == "json":
        click.echo(json.dumps(fleet_report.tokens_json(rows), indent=2))
        return
    console().print(fleet_report.tokens_table(rows))


@token_cmd.command("revoke")
@click.argument("token_id", type=int)
@db_option
def token_revoke_cmd(token_id: int, db: str | None) -> None:
    """Revoke a token by id (see `tritonwatch token list`); it stops working at once."""
    with open_store(db) as store:
        row = store.access.revoke_token(token_id)
    click.echo(f"revoked token {row.id} ({row.actor})")


COMMANDS = [push_cmd, nightly_cmd, token_cmd]
