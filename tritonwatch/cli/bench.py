"""Commands of the bench area (issue #3)."""

from __future__ import annotations

import click

from .options import not_available


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def run_cmd() -> None:
    """Run the benchmark suite on this machine and store the run."""
    raise not_available("run", 3)


@click.command("list", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def list_cmd() -> None:
    """List operators, providers and cases, and which are available here and why not."""
    raise not_available("list", 3)


@click.command("calibrate", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def calibrate_cmd() -> None:
    """Measure this GPU's achievable bandwidth and matmul TFLOP/s and store them."""
    raise not_available("calibrate", 3)


COMMANDS = [run_cmd, list_cmd, calibrate_cmd]
