"""Commands of the store area: db, import, export, runs, show."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from .. import settings
from ..errors import UsageError
from ..formats import exchange, hud_export, reader, run1
from ..formats.options import DEVICES, ImportOptions
from ..report import runs as render
from ..store import Store
from ..store.limits import SERIES_TEXT
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
    with open_store(db, create=False) as store:
        info = store.info()
    from ..report.runs import store_info_json, store_info_text

    if fmt == "json":
        click.echo(json.dumps(store_info_json(info), indent=2))
        return
    click.echo(store_info_text(info))


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(reader.IMPORT_FORMATS)),
    default="auto",
    show_default=True,
    help="Input format; auto detects run/1 JSONL, tritonbench output and HUD v3 records.",
)
@click.option(
    "--shape-names",
    metavar="NAMES",
    help="Name tritonbench's tuple inputs, e.g. M,N,K (default: the operator's own label).",
)
@click.option(
    "--operator",
    help="The operator of a tritonbench CSV (default: the file name, as --output-dir names it).",
)
@click.option(
    "--dtype",
    metavar="DTYPE",
    help="Data type of tritonbench results whose benchmark name has none (per-op files, CSVs):"
    " the --precision it ran with, e.g. bf16.",
)
@click.option(
    "--machine",
    help="Machine name for files that record none (tritonbench per-op "
    "files); overrides the file's.",
)
@click.option(
    "--device",
    type=click.Choice(list(DEVICES)),
    help="Where the kernels ran, for files that do not say (tritonbench --device cpu runs).",
)
@click.option(
    "--date",
    type=DATE,
    metavar="DATE",
    help="Run time for files that record none (ISO 8601); "
    "default: a run-TIMESTAMP folder name, else the file's modification time.",
)
@db_option
def import_cmd(
    paths: tuple[str, ...],
    fmt: str,
    shape_names: str | None,
    operator: str | None,
    dtype: str | None,
    machine: str | None,
    device: str | None,
    date: datetime | None,
    db: str | None,
) -> None:
    """Import runs from PATHS: tritonwatch.run/1 JSONL, tritonbench output, HUD v3 records.

    tritonbench: per-operator --output-json files, a folder of them (each folder under it is one
    run; a nightly result.json stands for its folder), the nightly result.json, and the
    ';'-separated --output CSV. PyTorch HUD: oss_ci_benchmark_v3 records as a JSON list, one
    record, or JSON each row, streamed in bounded memory.

    Everything goes in one transaction: an error anywhere writes nothing. Runs already stored
    (same run id, derived from the file's content when it has none) are skipped, so importing
    a file twice adds nothing.
    """
    names = tuple(n.strip() for n in shape_names.split(",") if n.strip()) if shape_names else None
    if dtype and len(dtype.strip()) > SERIES_TEXT["dtype"]:
        raise UsageError(f"--dtype: at most {SERIES_TEXT['dtype']} characters, e.g. bf16")
    opts = ImportOptions(
        shape_names=names or None,
        operator=operator,
        dtype=dtype.strip() if dtype else None,
        machine=machine,
        device=device,
        started_at=date,
    )
    total = sum(_size(p) for p in paths)
    with open_store(db) as store, progress_bar(in_bytes=True) as progress:
        task = progress.add_task("reading", total=total or None)
        report = exchange.import_files(
            store,
            list(paths),
            fmt,
            opts,
            progress=lambda n: progress.update(task, advance=n),
            on_file=lambda p: progress.update(task, description=p),
        )
    for f in report.files:
        t = f.tally
        click.echo(
            f"{f.path}: {f.format}, {f.runs} run(s), {t.items:,} item(s) read, "
            f"{f.stored:,} result(s) stored"
        )
        for reason, n in sorted(t.skipped.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {n:,} not stored: {reason}")
        for message, n in sorted(t.warnings.items(), key=lambda kv: -kv[1])[:10]:
            click.echo(f"  warning: {message}" + (f" ({n:,} times)" if n > 1 else ""), err=True)
    click.echo(
        f"imported {report.added} run(s) with {report.results:,} result(s); "
        f"{report.skipped} already stored"
    )


def _size(path: str) -> int:
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.is_file() else 0


@click.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(exchange.EXPORT_FORMATS)),
    default="jsonl",
    show_default=True,
    help="jsonl: run/1, one run per line; csv/parquet: one row per result; "
    "hud: PyTorch HUD oss_ci_benchmark_v3 records (JSON each row).",
)
@click.option("-o", "--output", default="-", show_default=True, help="Output file; - is stdout.")
@click.option(
    "--run", "run_ids", multiple=True, metavar="RUN", help="Export only this run (repeatable)."
)
@click.option(
    "--hud-repo",
    metavar="OWNER/NAME",
    help="HUD export: set the records' repo (otherwise the upload script's metadata supplies it).",
)
@click.option(
    "--hud-ci",
    is_flag=True,
    help="HUD export: fill workflow_id, job_id, head_sha, "
    "name, head_branch and timestamp from GitHub Actions variables (GITHUB_RUN_ID, "
    "GITHUB_SHA, ...; JOB_ID) instead of leaving them to the upload script.",
)
@_filters
@db_option
def export_cmd(
    fmt: str,
    output: str,
    run_ids: tuple[str, ...],
    hud_repo: str | None,
    hud_ci: bool,
    machine: str | None,
    org: str | None,
    label: str | None,
    since: datetime | None,
    until: datetime | None,
    db: str | None,
) -> None:
    """Export stored runs, oldest first. The file appears only when complete."""
    with open_store(db, create=False) as store:
        n = exchange.export_runs(
            store,
            output,
            fmt,
            runs=list(run_ids) or None,
            hud_options=hud_export.ExportOptions(repo=hud_repo, from_ci_env=hud_ci),
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
    with open_store(db, create=False) as store:
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
    with open_store(db, create=False) as store:
        detail = store.runs.get(run)
    if fmt == "json":
        click.echo(json.dumps(run1.run_document(detail), indent=2))
        return
    out = console()
    for line in render.run_header(detail):
        out.print(line, markup=False)
    out.print(render.results_table(detail))


COMMANDS = [db_group, import_cmd, export_cmd, runs_cmd, show_cmd]
