"""Commands of the compare area (issue #7)."""

from __future__ import annotations

import click

from .options import not_available


@click.command("compare", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def compare_cmd() -> None:
    """A/B: compare two Triton builds on one GPU, interleaved, with statistics."""
    raise not_available("compare", 7)


COMMANDS = [compare_cmd]
