"""The command line: ``tritonwatch COMMAND``.

Each command lives in the module of its area (data, bench, detect, codegen, compare, server,
fleet), parses its options and calls one library function. User errors
(:class:`~tritonwatch.errors.TritonwatchError`) print one line and exit non-zero; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import __version__
from ..errors import TritonwatchError


class _Group(click.Group):
    """Turns user errors into one line on stderr and keeps commands in the order listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TritonwatchError as e:
            click.secho(f"error: {e}", err=True, fg="red")
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.secho("interrupted", err=True, fg="yellow")
            sys.exit(130)


@click.group(
    cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="tritonwatch")
def main() -> None:
    """Continuous performance engineering for Triton GPU kernels.

    \b
    Measure:   run, list, calibrate, compare
    Store:     db, import, export, runs, show
    Detect:    detect, alerts, alert, notify, gate
    Codegen:   env, blast
    Share:     serve, push, nightly, token

    Every command that touches data takes --db URL (default: a SQLite file in your user data
    folder; TRITONWATCH_DB or tritonwatch.toml set it too). See `tritonwatch COMMAND --help`.
    """


def _register() -> None:
    from . import bench, codegen, compare, data, detect, fleet, server

    for module in (bench, compare, data, detect, codegen, server, fleet):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
