"""``tritonwatch import`` and ``export``: stream files' runs into the Store, and stored runs out.

Files are read as streams (:mod:`.reader` tells their format) and all their runs go into the
Store in one transaction, so memory stays bounded however long the history is, and any error
leaves the database as it was. Exports write one run at a time, to a file that appears only when
complete.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import InputError, UsageError
from ..runformat import Run
from . import csv as csv_format
from . import hud_export, parquet, run1
from .jsontext import Progress, rare_collections
from .options import ImportOptions, Tally
from .reader import FileReport, open_runs

if TYPE_CHECKING:
    from ..store import RunDetail, Store

EXPORT_FORMATS = ("jsonl", "csv", "parquet", "hud")


@dataclass(frozen=True)
class ImportedFile:
    path: str
    format: str
    runs: list[Run]
    tally: Tally


def read_file(
    path: str | Path, fmt: str = "auto", opts: ImportOptions | None = None
) -> ImportedFile:
    """Parse one file (or tritonbench folder) into runs, detecting its format unless given."""
    report, runs = open_runs(str(path), fmt, opts or ImportOptions())
    items = list(runs)
    return ImportedFile(report.path, report.format, items, report.tally)


# -- the commands' library functions -----------------------------------------------------
@dataclass(frozen=True)
class ImportReport:
    files: list[FileReport]
    added: int  # runs written
    skipped: int  # runs already stored (same UUID)
    results: int  # results written


def import_files(
    store: Store,
    paths: list[str],
    fmt: str = "auto",
    opts: ImportOptions | None = None,
    progress: Progress | None = None,
    on_file: Callable[[str], None] | None = None,
) -> ImportReport:
    """Stream every file's runs into the Store in one transaction: all of them, or none.

    Memory stays bounded (records are grouped into runs as they are read); a bad file anywhere
    raises and rolls the whole import back.
    """
    opts = opts or ImportOptions()
    reports: list[FileReport] = []
    owners: list[FileReport] = []

    def runs() -> Generator[Run, None, None]:
        for p in paths:
            if on_file:
                on_file(p)
            report, items = open_runs(p, fmt, opts, progress)
            reports.append(report)
            for run in items:
                report.runs += 1
                owners.append(report)
                yield run

    # closing: a file's reader (a process, for a large HUD file) stops as soon as the store
    # refuses a run, not when the generator is collected.
    with rare_collections(), contextlib.closing(runs()) as items:
        added = store.runs.add_many(items)
    for a, report in zip(added, owners, strict=True):
        if a.created:
            report.stored += a.n_results
        else:
            report.tally.skip("run already stored (same run id)", a.n_results)
    return ImportReport(
        files=reports,
        added=sum(a.created for a in added),
        skipped=sum(not a.created for a in added),
        results=sum(a.n_results for a in added if a.created),
    )


def write_export(
    runs: Iterable[RunDetail],
    out: TextIO,
    fmt: str,
    hud_options: hud_export.ExportOptions | None = None,
) -> int:
    """Write stored runs in ``fmt`` (jsonl, csv, hud) to a text stream; returns runs written."""
    if fmt == "jsonl":
        return run1.write(runs, out)
    if fmt == "csv":
        return csv_format.write(runs, out)
    if fmt == "hud":
        meta = hud_export.ci_metadata(hud_options or hud_export.ExportOptions())
        n = 0
        for d in runs:
            n += 1
            for rec in hud_export.records(run1.run_document(d), meta):
                out.write(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
        return n
    raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")


def export_runs(
    store: Store,
    output: str,
    fmt: str,
    *,
    runs: list[str] | None = None,
    progress: Callable[[], None] | None = None,
    hud_options: hud_export.ExportOptions | None = None,
    **filters: Any,
) -> int:
    """Write the matching runs (or the named ``runs``) to ``output`` ('-' is stdout).

    A file appears only when complete (written beside it, then renamed).
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    if fmt == "hud":
        hud_export.ci_metadata(
            hud_options or hud_export.ExportOptions()
        )  # refuse before writing anything
    details: Iterable[RunDetail]
    details = (store.runs.get(r) for r in runs) if runs else store.runs.iter(**filters)
    if progress:
        details = _tap(details, progress)
    if fmt == "parquet":
        if output == "-":
            raise UsageError("Parquet is binary; give -o FILE.parquet")
        return _atomic(Path(output), lambda tmp: parquet.write(details, tmp))
    if output == "-":
        return write_export(details, sys.stdout, fmt, hud_options)

    def text(tmp: Path) -> int:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            return write_export(details, f, fmt, hud_options)

    return _atomic(Path(output), text)


def _tap(items: Iterable[RunDetail], tick: Callable[[], None]) -> Iterator[RunDetail]:
    for item in items:
        yield item
        tick()


def _atomic(target: Path, write: Callable[[Path], int]) -> int:
    tmp = target.with_name(target.name + ".partial")
    try:
        n = write(tmp)
        tmp.replace(target)  # never leave a half-written export under the real name
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror})", path=str(target)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return n
