"""Options shared by many commands, and opening the Store they name."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from .. import settings
from ..errors import UsageError

if TYPE_CHECKING:
    from ..store import Store

F = TypeVar("F", bound=Callable[..., Any])


class DateType(click.ParamType):
    """A date or time option: ISO 8601 (``2026-11-01``, ``2026-11-01T12:00``, ``...Z``), naive
    values taken as UTC. The one parser every command's DATE option uses."""

    name = "date"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        try:
            t = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            opt = param.opts[0] if param is not None and param.opts else "the date"
            raise UsageError(
                f"{opt} {value!r} is not a date; use ISO 8601 like 2026-11-01 or 2026-11-01T12:00"
            ) from None
        return t if t.tzinfo else t.replace(tzinfo=UTC)


DATE = DateType()


def db_option(f: F) -> F:
    return click.option(
        "--db",
        "db",
        metavar="URL",
        default=None,
        help="Results database: sqlite:///PATH or postgresql://USER@HOST/DB "
        "[default: TRITONWATCH_DB, tritonwatch.toml, else a SQLite file in the user data folder].",
    )(f)


def format_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    def deco(f: F) -> F:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(list(choices)),
            default=default,
            show_default=True,
            help="Output format.",
        )(f)

    return deco


def open_store(db: str | None, *, create: bool = True) -> Store:
    """The Store for ``--db`` (or the setting), created and migrated on first use."""
    from ..store import Store

    with settings.scope(db=db):
        url = settings.get("db")
    return Store.open(url, create=create)


def suite_filters(f: F) -> F:
    """--suite, -k, --provider, --dtype, --device: which cases of a suite, and where (run, compare)."""
    for opt in reversed(
        [
            click.option(
                "--suite",
                default="smoke",
                show_default=True,
                metavar="smoke|nightly|FILE.toml",
                help="Built-in suite or a suite file.",
            ),
            click.option(
                "-k",
                "patterns",
                multiple=True,
                metavar="PATTERN",
                help="Only cases whose id contains PATTERN (glob if it has * ? [); repeatable.",
            ),
            click.option(
                "--provider",
                "providers",
                multiple=True,
                metavar="NAME",
                help="Only these providers (triton, triton/persistent, torch, inductor); "
                "comma list or repeat.",
            ),
            click.option(
                "--dtype",
                "dtypes",
                multiple=True,
                metavar="DTYPE",
                help="Only these dtypes (fp32, tf32, fp16, bf16, fp8e4m3); comma list or repeat.",
            ),
            click.option(
                "--device",
                type=click.Choice(["auto", "cuda", "cpu"]),
                default=None,
                help="Where kernels run [default: setting `device`, auto].",
            ),
        ]
    ):
        f = opt(f)
    return f


def split_names(values: tuple[str, ...]) -> list[str] | None:
    """``--provider a,b --provider c`` -> ["a", "b", "c"]; None when none were given."""
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out or None


def console(err: bool = False) -> Console:
    """The console a command prints to: the terminal's width (or ``COLUMNS``), else 200 columns
    into a pipe or file."""
    wide = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(stderr=err, highlight=False, soft_wrap=False, width=None if wide else 200)


def progress_bar(err: Console | None = None, *, in_bytes: bool = False) -> Progress:
    """The progress bar of long commands, on stderr: gone when done, off when not a terminal.

    ``in_bytes`` counts bytes read (imports) instead of items.
    """
    err = err or console(err=True)
    count = [DownloadColumn(), TransferSpeedColumn()] if in_bytes else [MofNCompleteColumn()]
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *count,
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
