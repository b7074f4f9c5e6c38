"""Commands of the bench area: ``run``, ``list``, ``calibrate``.

Each command parses its options and calls one library function in :mod:`tritonwatch.bench`;
:mod:`tritonwatch.report.bench` renders what comes back.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

import click

from ..errors import UsageError
from ..report import bench as bench_report
from .options import console, db_option, open_store, progress_bar, split_names, suite_filters


def _gpus(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--gpus {text!r}: give GPU indices like 0,1") from None


@click.command("run")
@suite_filters
@click.option("--gpus", default=None, metavar="0,1", help="One worker per listed GPU.")
@click.option(
    "--budget-ms",
    type=float,
    default=None,
    help="Measuring budget per case in ms [default: setting budget_ms; 200 for smoke].",
)
@click.option(
    "--target-ci",
    type=float,
    default=None,
    help="Stop when the median's 95% CI is this narrow, relative (0.005 = 0.5%).",
)
@click.option("--label", default=None, help="A label stored with the run.")
@click.option("--seed", type=int, default=None, help="Seed for inputs and case order.")
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE:FUNC",
    help="Extra register function to load besides installed plugins.",
)
@click.option(
    "--codegen",
    is_flag=True,
    help="Also compile the suite's kernels for --targets and store registers, spills, shared "
    "memory and instruction counts as series (no GPU needed). -k picks the kernels too "
    "(softmax compiles softmax_kernel), unless --codegen-kernels names them.",
)
@click.option(
    "--targets",
    default=None,
    metavar="sm80,sm90,...",
    help="Targets for --codegen [default: setting `targets`].",
)
@click.option(
    "--codegen-kernels",
    default=None,
    metavar="PATTERN",
    help="With --codegen, only kernels or specs whose name matches PATTERN (instead of -k).",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="With --codegen, recompile every kernel instead of reading the compile cache.",
)
@db_option
def run_cmd(
    suite: str,
    patterns: tuple[str, ...],
    providers: tuple[str, ...],
    dtypes: tuple[str, ...],
    device: str | None,
    gpus: str | None,
    budget_ms: float | None,
    target_ci: float | None,
    label: str | None,
    seed: int | None,
    plugins: tuple[str, ...],
    codegen: bool,
    targets: str | None,
    codegen_kernels: str | None,
    no_cache: bool,
    db: str | None,
) -> None:
    """Run the benchmark suite on this machine and store the run."""
    from ..bench.runner import RunOptions, run_suite

    opts = RunOptions(
        suite=suite,
        patterns=patterns,
        providers=split_names(providers),
        dtypes=split_names(dtypes),
        device=device,
        budget_ms=budget_ms,
        target_ci=target_ci,
        label=label,
        seed=seed,
        gpus=_gpus(gpus),
        plugins=plugins,
        command=shlex.join(["tritonwatch", *sys.argv[1:]]),
        codegen=codegen,
        codegen_targets=targets,
        codegen_pattern=codegen_kernels,
        codegen_no_cache=no_cache,
    )
    store = open_store(db)
    try:
        with progress_bar() as bar:
            task = bar.add_task("starting workers", total=None)

            def on_plan(plan: Any, dev: Any) -> None:
                bar.update(task, total=len(plan.cases), description=f"{dev.kind}: starting")

            def progress(kind: str, case: Any, rec: Any) -> None:
                if kind == "start" and case is not None:
                    bar.update(task, description=case.id[:70])
                elif kind == "result":
                    bar.advance(task)
                elif kind == "codegen":
                    bar.update(task, description="compiling kernels for --codegen")

            outcome = run_suite(opts, store, progress=progress, on_plan=on_plan)
    finally:
        store.close()
    console().print(bench_report.results(outcome))
    if outcome.interrupted:
        click.secho(
            f"interrupted: stored the {outcome.n_finished} cases that finished",
            err=True,
            fg="yellow",
        )
        sys.exit(130)


@click.command("list")
@click.option(
    "--device",
    type=click.Choice(["auto", "cuda", "cpu"]),
    default=None,
    help="Check availability for this device [default: setting `device`].",
)
@click.option(
    "--suite",
    default="smoke",
    show_default=True,
    metavar="smoke|nightly|FILE.toml",
    help="Suite whose cases are counted.",
)
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE:FUNC",
    help="Extra register function to load besides installed plugins.",
)
def list_cmd(device: str | None, suite: str, plugins: tuple[str, ...]) -> None:
    """List operators, providers and cases, and which are available here and why not."""
    from ..bench.runner import listing

    info = listing(device=device, suite=suite, plugins=plugins)
    console().print(bench_report.listing(info, suite))


@click.command("calibrate")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default=None)
@click.option("--gpu", type=int, default=0, show_default=True, help="GPU index to measure.")
@db_option
def calibrate_cmd(device: str | None, gpu: int, db: str | None) -> None:
    """Measure this GPU's achievable bandwidth and matmul TFLOP/s and store them."""
    from ..bench.runner import calibrate

    store = open_store(db)
    try:
        cal = calibrate(store, device=device, gpu=gpu)
    finally:
        store.close()
    tf = ", ".join(f"{k} {v:.0f}" for k, v in cal.peaks["tflops"].items())
    click.echo(
        f"{cal.machine} ({cal.gpu_model}): {cal.peaks['bandwidth_gbps']:.0f} GB/s; "
        f"TFLOP/s {tf}; stored, % of peak now uses these"
    )


COMMANDS = [run_cmd, list_cmd, calibrate_cmd]
