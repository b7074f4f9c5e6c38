"""Commands of the codegen area: ``env create|list|remove``, ``blast`` and ``cache``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from .. import settings
from ..errors import InputError, UsageError
from .options import console, db_option, open_store, progress_bar


@click.group("env")
def env_cmd() -> None:
    """Manage build environments (virtual environments with a given Triton).

    \b
    tritonwatch env create tri38 --triton 3.8.0
    tritonwatch env create mybuild --triton ./dist/triton-3.9.0+git123-cp311-linux_x86_64.whl
    tritonwatch env create dev --triton ~/src/triton
    tritonwatch env list
    tritonwatch env remove tri38
    """


@env_cmd.command("create")
@click.argument("name")
@click.option(
    "--triton",
    "triton",
    required=True,
    metavar="VERSION|WHEEL|DIR",
    help="Triton version from the package index (3.8.0), a path to a .whl file, or a Triton "
    "checkout built in place (pip install -e), used where it is.",
)
@click.option(
    "--system-site-packages",
    is_flag=True,
    help="Also see the host's packages (e.g. torch); the environment's own Triton "
    "still shadows the host's.",
)
@click.option(
    "--python",
    "base_python",
    metavar="PATH",
    default=None,
    help="Python to make the virtual environment with [default: this one].",
)
def env_create_cmd(
    name: str, triton: str, system_site_packages: bool, base_python: str | None
) -> None:
    """Make a build environment NAME with the given Triton (under the envs_dir setting)."""
    from ..codegen.envs import create_env

    with console(err=True).status(f"creating environment {name} with triton {triton} ..."):
        info = create_env(
            name, triton, system_site_packages=system_site_packages, base_python=base_python
        )
    click.echo(f"created {info.name}: triton {info.triton_version} at {info.python}")


@env_cmd.command("list")
def env_list_cmd() -> None:
    """List build environments and what each one sees: its Triton, and torch and tritonwatch
    if it can import them (`compare` needs torch in both; `blast` needs only Triton)."""
    from ..codegen.envs import envs_dir, list_envs

    envs = list_envs()
    if not envs:
        click.echo(
            f"no environments in {envs_dir()}; make one with "
            "`tritonwatch env create NAME --triton VERSION`"
        )
        return
    t = Table(title=f"environments in {envs_dir()}", title_justify="left")
    for col in ("name", "triton", "torch", "tritonwatch", "python", "ptxas"):
        t.add_column(col)
    t.add_column("path", overflow="fold")  # whole, to copy into --a/--b: folded, never cut
    for e in envs:
        if e.info is not None:
            i = e.info
            ptxas = ", ".join(i.ptxas_versions.values()) or "-"
            t.add_row(
                e.name,
                i.triton_version,
                i.torch_version or "[dim]no[/dim]",
                i.tritonwatch_version or "[dim]no[/dim]",
                i.python_version,
                ptxas,
                i.python,
            )
        else:
            t.add_row(e.name, "[red]broken[/red]", "-", "-", "-", "-", escape(e.problem or ""))
    console().print(t)


@env_cmd.command("remove")
@click.argument("name")
def env_remove_cmd(name: str) -> None:
    """Delete the build environment NAME (its folder under the envs_dir setting)."""
    from ..codegen.envs import remove_env

    folder = remove_env(name)
    click.echo(f"removed {name} ({folder})")


@click.command("blast")
@click.option(
    "--a",
    "env_a",
    required=True,
    metavar="ENV",
    help="Baseline: an environment name, a venv folder, a python path, or 'current'.",
)
@click.option("--b", "env_b", required=True, metavar="ENV", help="Candidate, the same way.")
@click.option(
    "--targets",
    default=None,
    metavar="LIST",
    help="Comma-separated targets, e.g. sm80,sm90,sm100,gfx942,gfx950 "
    "[default: the targets setting].",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel compile workers [default: the jobs setting].",
)
@click.option(
    "-k",
    "pattern",
    default=None,
    metavar="PATTERN",
    help="Only specs whose kernel or spec name matches (substring or glob).",
)
@click.option(
    "--kernels",
    "kernel_files",
    multiple=True,
    metavar="FILE",
    help="Kernel file declaring COMPILE_SPECS, a spec file written by `capture`, or 'suite' "
    "for the suite's own (repeatable) [default: the suite's].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "html", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the full HTML report to this file (e.g. a CI artifact).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the JSON report (with the diffs) to this file.",
)
@click.option(
    "--report-url",
    default=None,
    metavar="URL",
    help="With --format markdown: link the full report there (e.g. the CI run's artifacts).",
)
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    metavar="COND",
    help="Exit with code 1 when the report shows COND (repeatable or comma-separated): "
    "new-failures (compiles in A, fails in B), spills (spills more in B), registers>N "
    "(more than N registers more in B).",
)
@click.option("--no-store", is_flag=True, help="Do not record the report in the database.")
@click.option(
    "--no-cache",
    is_flag=True,
    help="Recompile everything instead of reading the compile cache (fresh results still "
    "refresh it).",
)
@db_option
def blast_cmd(
    env_a: str,
    env_b: str,
    targets: str | None,
    jobs: int | None,
    pattern: str | None,
    kernel_files: tuple[str, ...],
    fmt: str,
    output: Path | None,
    html_out: Path | None,
    json_out: Path | None,
    report_url: str | None,
    fail_on: tuple[str, ...],
    no_store: bool,
    no_cache: bool,
    db: str | None,
) -> None:
    """Blast radius: compile every kernel with two Triton builds and report what changed.

    No GPU needed. Each kernel specialisation is compiled for each target in both environments
    (cached, in parallel), normalised, and compared: first changed stage, registers, spills,
    shared memory, instructions, key instructions (wgmma, tcgen05, TMA, mfma ...), compile time.
    """
    from ..codegen.blast import blast, failing, parse_fail_on
    from ..codegen.specs import parse_targets
    from ..report.blast import render, table
    from ..report.blast_markdown import render_markdown

    parse_fail_on(fail_on)  # bad conditions and targets fail before minutes of compiling
    if targets is not None:
        parse_targets(targets)

    for path in (output, html_out, json_out):
        if path is not None and path.parent and not path.parent.exists():
            raise InputError("the folder for the report does not exist", path=str(path))
    # Open the database first: a bad --db should fail before minutes of compiling, not after.
    store = None if no_store else open_store(db)
    try:
        with settings.scope(jobs=jobs), progress_bar() as bar:
            task = bar.add_task("compiling", total=None)

            def step(label: str, done: int, total: int) -> None:
                bar.update(task, description=label, completed=done, total=total)

            report = blast(
                env_a,
                env_b,
                targets=targets,
                jobs=jobs,
                pattern=pattern,
                kernel_files=list(kernel_files) or None,
                progress=step,
                no_cache=no_cache,
            )
        if store is not None and not report.partial:  # a partial report is not a record
            store.codegen.add_report(report)
    finally:
        if store is not None:
            store.close()

    def text(kind: str) -> str:
        if kind == "markdown":
            return render_markdown(report, report_url=report_url)
        return render(report, kind)

    for path, kind in ((html_out, "html"), (json_out, "json"), (output, fmt)):
        if path is None:
            continue
        try:
            path.write_text(text(kind), encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror}") from None
        click.echo(f"{kind} report written to {path}", err=True)
    if output is not None:
        click.echo(report.summary.headline)
    elif fmt == "table":
        console().print(table(report))
    else:
        click.echo(text(fmt), nl=False)
    if report.partial:
        click.secho("interrupted: the report above is partial (not stored)", err=True, fg="yellow")
        sys.exit(130)
    reasons = failing(report, fail_on)
    for why in reasons:
        click.echo(f"failing: {why}", err=True)
    if reasons:
        sys.exit(1)


@click.group("cache")
def cache_cmd() -> None:
    """Inspect or shrink the compile cache of `blast` and `run --codegen`.

    \b
    tritonwatch cache info
    tritonwatch cache prune --max-mb 500
    tritonwatch cache prune --older-than-days 30
    """


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


@cache_cmd.command("info")
def cache_info_cmd() -> None:
    """Where the compile cache is, how many entries and bytes it holds, and its size cap."""
    from ..codegen.cache import CompileCache

    i = CompileCache().info()
    click.echo(f"folder:  {i.root}")
    click.echo(f"entries: {i.entries}")
    click.echo(f"size:    {_mib(i.bytes)} of {_mib(i.max_bytes)} (setting cache_max_mb)")


@cache_cmd.command("prune")
@click.option(
    "--max-mb",
    type=click.FloatRange(min=0),
    default=None,
    help="Drop the least recently used entries until the cache fits (0 empties it) "
    "[default: the cache_max_mb setting].",
)
@click.option(
    "--older-than-days",
    type=click.FloatRange(min=0),
    default=None,
    help="Also drop every entry not used for this many days.",
)
def cache_prune_cmd(max_mb: float | None, older_than_days: float | None) -> None:
    """Shrink the compile cache: least recently used entries go first."""
    from ..codegen.cache import CompileCache

    r = CompileCache().prune(
        None if max_mb is None else int(max_mb * 1024 * 1024), older_than_days=older_than_days
    )
    click.echo(
        f"removed {r.removed} entries ({_mib(r.freed_bytes)}); "
        f"{r.left.entries} left ({_mib(r.left.bytes)})"
    )


@click.command(
    "capture",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Spec file to write (JSON); `blast --kernels FILE` reads it.",
)
@click.option(
    "--interpret",
    is_flag=True,
    help="Run the command's kernels under Triton's interpreter (TRITON_INTERPRET=1), for a "
    "machine with no GPU; what Triton would compile on a GPU is recorded.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def capture_cmd(output: Path, interpret: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND and record every Triton specialisation it launches.

    Each distinct launch (signature, constants, divisibility, options, as Triton specialised
    them) becomes one spec in the output file, with no hand-writing. The command's own exit
    code is kept: when it fails, the specs it launched before are still written.

    \b
    tritonwatch capture -o specs.json --interpret -- pytest tests/ops
    tritonwatch blast --a tri38 --b current --kernels specs.json
    """
    from ..codegen.capture import capture

    result = capture(list(command), output, interpret=interpret)
    click.echo(result.headline, err=True)
    if result.returncode:
        sys.exit(result.returncode)


COMMANDS = [env_cmd, blast_cmd, cache_cmd, capture_cmd]
