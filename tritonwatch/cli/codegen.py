"""Commands of the codegen area (issue #5)."""

from __future__ import annotations

import click

from .options import not_available


@click.command("env", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def env_cmd() -> None:
    """Manage build environments (virtual environments with a given Triton)."""
    raise not_available("env", 5)


@click.command("blast", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def blast_cmd() -> None:
    """Blast radius: compile every kernel with two Triton builds and report what changed."""
    raise not_available("blast", 5)


COMMANDS = [env_cmd, blast_cmd]
