"""Commands of the compare area: ``tritonwatch compare``."""

from __future__ import annotations

import math
import shlex
import shutil
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.text import Text

from ..errors import InputError, UsageError
from .options import (
    console,
    db_option,
    format_option,
    open_store,
    progress_bar,
    split_names,
    suite_filters,
)

if TYPE_CHECKING:
    from ..bench.ab import ABOptions
    from ..bench.live import Crew
    from ..store import Store


def parse_duration(text: str | None) -> float | None:
    """``90s``, ``10m``, ``1h`` or plain seconds -> seconds; None keeps the default."""
    if text is None:
        return None
    t = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(t[-1:])
    try:
        value = float(t[:-1] if scale else t) * (scale or 1.0)
    except ValueError:
        raise UsageError(f"--budget {text!r}: write a time like 90s, 10m or 1h") from None
    if value <= 0:
        raise UsageError(f"--budget {text!r}: give a positive time")
    return value


def parse_threshold(text: str | None) -> float | None:
    """``2%`` or ``0.02`` -> 0.02; None keeps the setting."""
    if text is None:
        return None
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise UsageError(
            f"--threshold {text!r}: write a percentage like 2% or a fraction like 0.02"
        ) from None
    if not t.endswith("%") and value >= 1:
        raise UsageError(f"--threshold {text!r} reads as {value:.0%}; write 2% or 0.02 for 2%")
    if not 0 <= value < 1:
        raise UsageError(f"--threshold {text!r}: give a value between 0% and 100%")
    return value


@click.command("compare")
@click.option(
    "--a", "env_a", metavar="ENV", help="Build A: an env name, venv folder, python path or current."
)
@click.option(
    "--b", "env_b", metavar="ENV", help="Build B (the candidate); ratios are B's time over A's."
)
@click.option(
    "--runs",
    "runs",
    nargs=2,
    metavar="RUN_A RUN_B",
    default=None,
    help="Compare two stored runs instead of measuring.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --runs: compare even when GPU, driver, clocks or suite differ.",
)
@suite_filters
@click.option(
    "--gpu", type=int, default=None, metavar="INDEX", help="The one GPU both builds run on."
)
@click.option(
    "--blocks",
    type=int,
    default=8,
    show_default=True,
    help="ABBA blocks planned per case; a case stops early once decided, or runs up to 3x "
    "as many while undecided and the budget allows.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Worker processes per build [default: 8 on a GPU, 4 on a CPU]; each case's blocks are "
    "spread over the pairs and the verdict is tested across pairs, since a process keeps an "
    "offset of its own (a few % on a CPU, up to ~1% on an H200). More pairs find smaller "
    "changes for more processes to start (each imports torch: about 1 s of CPU) and more "
    "copies of each case in memory. 1: one per build, cheaper but an A/A can then differ by "
    "that offset.",
)
@click.option(
    "--budget-ms",
    type=float,
    default=None,
    help="Measuring time per case and build in ms, split over the blocks (a segment stops "
    "early at 100 samples) [default: half the setting budget_ms (100 for smoke), so the two "
    "builds share what one run may spend on a case].",
)
@click.option(
    "--budget",
    "total_budget",
    default=None,
    metavar="TIME",
    help="Cap on the whole comparison's measuring time, e.g. 90s, 10m, 1h; below what the "
    "cases' --budget-ms plans, every case gets the same shorter share "
    "[default: what one run may spend].",
)
@click.option(
    "--threshold",
    default=None,
    metavar="PCT",
    help="Practical threshold: a change smaller than this is 'same' [default: setting threshold, 2%].",
)
@click.option("--seed", type=int, default=None, help="Seed for inputs and case order.")
@click.option("--label", default=None, help="A label stored with both runs.")
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE:FUNC",
    help="Extra register function to load besides installed plugins.",
)
@format_option("table", "markdown", "json")
@click.option("-o", "--output", default=None, metavar="FILE", help="Write the report to FILE.")
@click.option(
    "--fail-on-regression", is_flag=True, help="Exit with status 1 when any case is slower."
)
@db_option
def compare_cmd(
    env_a: str | None,
    env_b: str | None,
    runs: tuple[str, str] | None,
    force: bool,
    suite: str,
    patterns: tuple[str, ...],
    providers: tuple[str, ...],
    dtypes: tuple[str, ...],
    device: str | None,
    gpu: int | None,
    blocks: int,
    workers: int | None,
    budget_ms: float | None,
    total_budget: str | None,
    threshold: str | None,
    seed: int | None,
    label: str | None,
    plugins: tuple[str, ...],
    fmt: str,
    output: str | None,
    fail_on_regression: bool,
    db: str | None,
) -> None:
    """A/B: compare two Triton builds on one GPU, interleaved, with statistics.

    \b
    tritonwatch compare --a current --b triton-3.8 --suite nightly -k matmul
    tritonwatch compare --a base --b mybranch --format markdown -o comment.md --fail-on-regression
    tritonwatch compare --runs 1a2b3c4d 5e6f7a8b

    Each build gets --workers long-lived workers; case by case, all prepare it (one timer for
    all), then the case is timed in blocks of four short segments, ABBA or BAAB at random, one
    at a time, each block on one pair of workers (A's i-th and B's i-th); a block in which a
    build disagrees with itself (a transient: another process, a core slowing) is timed again
    once. Per case: both medians, B/A time ratio with a 95% CI and p-value from the variation
    between the pairs, and the smallest change it could have detected. `slower`/`faster` needs
    both significance (FDR 5% across cases) and a change beyond --threshold; `same` means no
    change larger than the case's detectable change, shown as `too noisy` when that exceeds
    --threshold. Cases neither build could time are listed with why. Both runs and the
    verdicts are stored as a comparison.

    \b
    Exit status: 0 compared; 1 a regression with --fail-on-regression; 130 interrupted
    (Ctrl-C: the cases that finished are compared and stored; none finished, nothing stored).
    """
    thr = parse_threshold(threshold)
    if runs and (env_a or env_b):
        raise UsageError("give either --a/--b (measure two builds) or --runs (two stored runs)")
    if not runs and not (env_a and env_b):
        raise UsageError(
            "give --a ENV and --b ENV (or --runs RUN_A RUN_B); `tritonwatch env list` "
            "shows environments, `current` is this Python"
        )
    if runs:
        store = open_store(db)
        try:
            comparison, saved = _runs(store, runs, thr, force)
        finally:
            store.close()
    else:
        from ..bench.ab import ABOptions, start_crew

        opts = ABOptions(
            a=env_a or "",
            b=env_b or "",
            suite=suite,
            patterns=patterns,
            providers=split_names(providers),
            dtypes=split_names(dtypes),
            device=device,
            gpu=gpu,
            blocks=blocks,
            workers=workers,
            budget_ms=budget_ms,
            total_budget_s=parse_duration(total_budget),
            threshold=thr,
            seed=seed,
            label=label,
            plugins=plugins,
            command=shlex.join(["tritonwatch", *sys.argv[1:]]),
        )
        # The workers import torch and Triton (most of their cost) while this process opens
        # the store and plans; run_ab closes them however it ends.
        with start_crew(opts) as crew:
            store = open_store(db)
            try:
                comparison, saved = _measure(store, opts, crew)
            finally:
                store.close()
    _emit(comparison, saved, fmt, output)
    if comparison.meta.get("interrupted"):
        sys.exit(130)  # what finished is stored, but the comparison is not whole
    if fail_on_regression and comparison.has_regression:
        sys.exit(1)


def _runs(store: Store, runs: tuple[str, str], thr: float | None, force: bool) -> Any:
    from .. import settings
    from ..analysis.compare_runs import compare_stored_runs

    with settings.scope(threshold=thr):
        threshold = float(settings.get("threshold"))
    return compare_stored_runs(store, runs[0], runs[1], threshold=threshold, force=force)


def _measure(store: Store, opts: ABOptions, crew: Crew) -> Any:
    from ..bench.ab import run_ab

    with progress_bar() as bar:
        task = bar.add_task("starting the workers", total=None)

        def on_plan(n: int, dev: Any, design: str) -> None:
            bar.console.print(Text(f"{n} cases on {dev.kind}: {design}"), highlight=False)
            bar.update(task, total=n, description=f"{dev.kind}: starting the workers")

        def progress(kind: str, case: Any, info: dict[str, Any]) -> None:
            if kind == "case":
                bar.update(task, description=f"{case.id[:60]} preparing")
            elif kind == "block":
                bar.update(task, description=f"{case.id[:60]} block {info['k']}")
            elif kind == "done":
                bar.advance(task)

        out = run_ab(opts, store, progress=progress, on_plan=on_plan, crew=crew)
    if out.interrupted:
        click.secho("interrupted: compared the cases that finished", err=True, fg="yellow")
    return out.comparison, out.stored


def _emit(comparison: Any, saved: Any, fmt: str, output: str | None) -> None:
    from ..report.compare import render_json, render_markdown, render_terminal

    ids = {"comparison": saved.uuid, "run_a": saved.run_a, "run_b": saved.run_b}
    if fmt == "json":
        text = render_json(comparison, **ids) + "\n"
    elif fmt == "markdown":
        text = render_markdown(comparison)
    else:
        text = ""
    if output:
        if fmt == "table":
            with open(output, "w", encoding="utf-8") as f:
                render_terminal(comparison, Console(file=f, width=160, color_system=None))
        else:
            try:
                Path(output).write_text(text, encoding="utf-8")
            except OSError as e:
                raise InputError(f"cannot write the report: {e.strerror}", path=output) from None
    elif fmt == "table":
        render_terminal(comparison, console())
    else:
        click.echo(text, nl=False)
    hint = noisy_hint(comparison)
    if hint:
        width = min(shutil.get_terminal_size().columns, 100)
        click.secho(textwrap.fill(hint, width=width), err=True, fg="yellow")
    click.echo(
        f"stored comparison {saved.uuid[:8]} (runs {saved.run_a[:8]} and {saved.run_b[:8]}); "
        f"`tritonwatch serve` shows it under /compare",
        err=True,
    )


def noisy_hint(comparison: Any) -> str | None:
    """For a measured comparison with too-noisy cases: the knobs that narrow what this machine
    can tell apart (the headline gives the figure). A stored-runs comparison has neither
    workers nor blocks to raise, so gets none."""
    from ..report.compare import noisy_mdes

    workers, blocks = comparison.meta.get("workers"), comparison.meta.get("blocks")
    noisy = noisy_mdes(comparison)
    if not isinstance(workers, int) or not isinstance(blocks, int) or not noisy:
        return None
    timed = sum(1 for c in comparison.cases if c.measured)
    mde = noisy[len(noisy) // 2]
    return (
        f"{len(noisy)} of {timed} cases too noisy for a {comparison.threshold:.1%} threshold on "
        f"this machine. To narrow what it can see: more worker pairs (--workers "
        f"{max(2 * workers, 4)}) and blocks (--blocks {2 * blocks}), nothing else running; or "
        f"ask what it can tell (--threshold {math.ceil(mde * 100)}%)"
    )


COMMANDS = [compare_cmd]
