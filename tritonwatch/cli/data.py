"""Commands of the store area: db, import, export, runs, show."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from .. import settings
from ..report import runs as render
from ..store import Store, interchange
from .options import DATE, console, db_option, format_option, open_store, progress_bar


def _filters(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--machine", help="Only runs on this machine (its recorded name)."),
            click.option("--org", help="Only runs of this organisation."),
            click.option("--label", help="Only runs with this label."),
            click.option(
                "--since",
                type=DATE,
                metavar="DATE",
                help="Only runs started at or after DATE (ISO 8601, UTC).",
            ),
            click.option(
                "--until", type=DATE, metavar="DATE", help="Only runs started before DATE."
            ),
        ]
    ):
        f = opt(f)
    return f


@click.group("db")
def db_group() -> None:
    """Create, migrate and inspect the results database."""


@db_group.command("upgrade")
@db_option
def db_upgrade(db: str | None) -> None:
    """Create the database, or migrate it to this version's schema (forward only).

    A database is also created automatically the first time any command writes to an empty
    one; an older non-empty database is only migrated by this command (back it up first).
    Schema 1 -> 2 rewrites the results table on SQLite: about 6 s per million results.
    """
    with settings.scope(db=db):
        url = settings.get("db")

    def announce(old: int, new: int) -> None:
        click.echo(f"migrating schema version {old} -> {new} (one transaction; keep it running)")

    before, after = Store.upgrade(url, announce)
    if before == after:
        click.echo(f"schema version {after}: already up to date")
    else:
        click.echo(f"schema version {before if before is not None else '(new)'} -> {after}")


@db_group.command("info")
@db_option
@format_option("table", "json")
def db_info(db: str | None, fmt: str) -> None:
    """Print the database URL, schema version and row counts."""
    with open_store(db) as store:
        info = store.info()
    from ..report.runs import store_info_json, store_info_text

    if fmt == "json":
        click.echo(json.dumps(store_info_json(info), indent=2))
        return
    click.echo(store_info_text(info))


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(interchange.IMPORT_FORMATS)),
    default="auto",
    show_default=True,
    help="Input format; auto detects run/1 JSONL, tritonbench JSON and HUD v3.",
)
@db_option
def import_cmd(files: tuple[str, ...], fmt: str, db: str | None) -> None:
    """Import runs from FILES: tritonwatch.run/1 JSONL, tritonbench --output-json, HUD v3 records.

    Every file is read and validated before anything is written; runs already stored (same run
    id) are skipped, so importing a file twice adds nothing.
    """
    with open_store(db) as store, progress_bar() as progress:
        task = progress.add_task("reading", total=len(files))
        report = interchange.import_files(
            store,
            list(files),
            fmt,
            progress=lambda p: progress.update(task, advance=1, description=p),
        )
    for path, kind, n in report.files:
        click.echo(f"{path}: {kind}, {n} run(s)")
    click.echo(
        f"imported {report.added} run(s) with {report.results:,} result(s); "
        f"{report.skipped} already stored"
    )


@click.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(interchange.EXPORT_FORMATS)),
    default="jsonl",
    show_default=True,
    help="jsonl: run/1, one run per line; csv/parquet: one row per result; "
    "hud: PyTorch HUD oss_ci_benchmark_v3 records.",
)
@click.option("-o", "--output", default="-", show_default=True, help="Output file; - is stdout.")
@click.option(
    "--run", "run_ids", multiple=True, metavar="RUN", help="Export only this run (repeatable)."
)
@_filters
@db_option
def export_cmd(
    fmt: str,
    output: str,
    run_ids: tuple[str, ...],
    machine: str | None,
    org: str | None,
    label: str | None,
    since: datetime | None,
    until: datetime | None,
    db: str | None,
) -> None:
    """Export stored runs, oldest first. The file appears only when complete."""
    with open_store(db) as store:
        n = interchange.export_runs(
            store,
            output,
            fmt,
            runs=list(run_ids) or None,
            machine=machine,
            org=org,
            label=label,
            since=since,
            until=until,
        )
    if output != "-":
        click.echo(f"exported {n} run(s) to {output}", err=True)


@click.command("runs")
@_filters
@click.option("--limit", default=30, show_default=True, help="Show at most this many runs.")
@format_option("table", "json")
@db_option
def runs_cmd(
    machine: str | None,
    org: str | None,
    label: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    fmt: str,
    db: str | None,
) -> None:
    """List stored runs, newest first."""
    with open_store(db) as store:
        rows = store.runs.find(
            machine=machine,
            org=org,
            label=label,
            since=since,
            until=until,
            limit=limit,
        )
    if fmt == "json":
        click.echo(json.dumps([render.summary_json(r) for r in rows], indent=2))
    elif not rows:
        click.echo(
            "no runs stored yet; `tritonwatch run --suite smoke` makes one, `tritonwatch import` reads files"
        )
    else:
        console().print(render.runs_table(rows))


@click.command("show")
@click.argument("run")
@format_option("table", "json")
@db_option
def show_cmd(run: str, fmt: str, db: str | None) -> None:
    """Show one run's fingerprint and results. RUN is its id or a unique prefix (>= 4 chars)."""
    with open_store(db) as store:
        detail = store.runs.get(run)
    if fmt == "json":
        click.echo(json.dumps(interchange.run_document(detail), indent=2))
        return
    out = console()
    for line in render.run_header(detail):
        out.print(line, markup=False)
    out.print(render.results_table(detail))


COMMANDS = [db_group, import_cmd, export_cmd, runs_cmd, show_cmd]
