"""The command line: ``tritonwatch COMMAND``.

Each command lives in the module of its area (data, bench, detect, codegen, compare, server,
fleet), parses its options and calls one library function. User errors
(:class:`~tritonwatch.errors.TritonwatchError`) print one line and exit non-zero; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from .. import __version__
from ..errors import TritonwatchError

#: Each command and the module that defines it, in the order `--help` lists them. A module is
#: imported when one of its commands runs, so `tritonwatch --version` (and a command of one area)
#: does not pay for the database, the web stack and the analysis libraries.
_COMMANDS = {
    **dict.fromkeys(("run", "list", "calibrate"), "bench"),
    "compare": "compare",
    **dict.fromkeys(("db", "import", "export", "runs", "show"), "data"),
    **dict.fromkeys(("detect", "alerts", "alert", "notify", "gate"), "detect"),
    **dict.fromkeys(("env", "blast", "cache", "capture"), "codegen"),
    "serve": "server",
    **dict.fromkeys(("push", "nightly", "token"), "fleet"),
}


class _Group(click.Group):
    """Turns user errors into one line on stderr, keeps commands in the order listed, and
    imports a command's module only when the command is used."""

    _loaded = False

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        if not self._loaded:
            self._loaded = True
            for name in _COMMANDS:
                self._load(name)
        return self._commands

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._commands = value

    def _load(self, name: str) -> click.Command | None:
        if name not in self._commands and name in _COMMANDS:
            module = importlib.import_module(f".{_COMMANDS[name]}", __name__)
            for command in module.COMMANDS:
                self._commands.setdefault(command.name or "", command)
        return self._commands.get(name)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TritonwatchError as e:
            click.secho(f"error: {e}", err=True, fg="red")
            sys.exit(e.exit_code)
        except KeyboardInterrupt as e:
            click.secho(f"interrupted {e}".strip(), err=True, fg="yellow")
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
