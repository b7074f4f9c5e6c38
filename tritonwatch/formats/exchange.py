"""``tritonwatch import`` and ``export``: detect a file's format, stream its runs into the Store.

Formats read: tritonwatch.run/1 (JSONL or one pretty-printed run), tritonbench (``--output-json``
files, a folder of them, the nightly ``result.json``, the ``;``-separated ``--output`` CSV) and
PyTorch HUD v3 records (a JSON list, one record, JSON each row, ClickHouse's JSON output).
Files are read as streams and all their runs go into the Store in one transaction, so memory stays
bounded however long the history is, and any error leaves the database as it was.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import InputError, UsageError
from ..runformat import Run
from . import csv as csv_format
from . import hud, jsontext, parquet, run1, tritonbench
from .options import ImportOptions, Tally

if TYPE_CHECKING:
    from ..store import RunDetail, Store

EXPORT_FORMATS = ("jsonl", "csv", "parquet", "hud")
IMPORT_FORMATS = ("auto", "jsonl", "tritonbench", "hud")
READS = (
    "tritonwatch.run/1 JSONL; tritonbench --output-json files (or a folder of them), nightly "
    "result.json and --output CSV; PyTorch HUD v3 records (JSON list, one record, JSON each "
    "row)"
)
_SNIFF = 1 << 16

Progress = Callable[[int], None]  # bytes read since the last call


@dataclass
class FileReport:
    """What one file (or tritonbench folder) gave: its format, runs, and the tally of items."""

    path: str
    format: str
    runs: int = 0
    stored: int = 0  # results written by this import
    tally: Tally = field(default_factory=Tally)


@dataclass(frozen=True)
class ImportedFile:
    path: str
    format: str
    runs: list[Run]
    tally: Tally


# -- reading --------------------------------------------------------------------------------
def read_file(
    path: str | Path, fmt: str = "auto", opts: ImportOptions | None = None
) -> ImportedFile:
    """Parse one file (or tritonbench folder) into runs, detecting its format unless given."""
    report, runs = open_runs(str(path), fmt, opts or ImportOptions())
    items = list(runs)
    return ImportedFile(report.path, report.format, items, report.tally)


def open_runs(
    path: str, fmt: str, opts: ImportOptions, progress: Progress | None = None
) -> tuple[FileReport, Iterator[Run]]:
    """The format of ``path`` and a lazy iterator over its runs (read as it is consumed)."""
    if fmt not in IMPORT_FORMATS:
        raise UsageError(
            f"unknown import format {fmt!r}; choose one of {', '.join(IMPORT_FORMATS)}"
        )
    p = Path(path)
    if p.is_dir():
        if fmt not in ("auto", "tritonbench"):
            raise InputError(
                f"is a folder; only tritonbench output folders are read as "
                f"one (not --format {fmt})",
                path=path,
            )
        report = FileReport(path, "tritonbench")
        return report, _folder_runs(p, opts, report, progress)
    head = _head(p)
    stripped = head.lstrip()
    if not stripped:
        raise InputError("the file is empty", path=path)
    if stripped[0] not in "{[":
        return _text_table(p, head, fmt, opts, progress)
    if _CLICKHOUSE.match(head):
        _check("hud", fmt, path)
        report = FileReport(path, "hud")
        items = _json_records(p, progress, key="data")
        return report, hud.read_runs(items, path, opts, report.tally, _mtime(p))
    first_line, only_line = _first_line(p)
    first: Any = _NO_LINE
    if first_line is None and stripped[0] == "{":  # one object too long to sniff: read whole
        return _whole_doc(p, _load_whole(p), fmt, opts, progress)
    if first_line is not None:
        with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
            first = jsontext.loads(first_line)
    if first is not _NO_LINE:
        sample = first[0] if isinstance(first, list) and first else first
        kind = _kind(sample)
        if kind in ("nightly", "per-op") and only_line:
            return _whole_doc(p, first, fmt, opts, progress)
        if kind in ("run/1", "hud"):
            _check(kind, fmt, path)
            report = FileReport(path, "jsonl" if kind == "run/1" else "hud")
            return report, _row_runs(p, kind, opts, report, progress)
        if kind in ("nightly", "per-op"):
            _check(kind, fmt, path)
        if isinstance(first, list):
            raise InputError(
                "a JSON list, but not of PyTorch HUD v3 records (none has a 'metric')",
                path=path,
                line=1,
            )
        raise InputError(
            f"cannot tell the format: the first line is {_describe(first)}; "
            f"tritonwatch reads {READS} (see docs/run-format.md)",
            path=path,
            line=1,
        )
    if stripped[0] == "[":  # a pretty-printed list or one too long a line: stream its elements
        _check("hud", fmt, path)
        report = FileReport(path, "hud")
        items = _json_records(p, progress)
        return report, hud.read_runs(items, path, opts, report.tally, _mtime(p))
    return _whole_doc(p, _load_whole(p), fmt, opts, progress)


_NO_LINE = object()
_SNIFF_LINE = 1 << 24  # a first line longer than this is streamed, never parsed whole to sniff


def _first_line(p: Path) -> tuple[bytes | None, bool]:
    """The first non-blank line (None when longer than _SNIFF_LINE: a one-line list or object)
    and whether it is the only one; never holds more than _SNIFF_LINE bytes of it."""
    with p.open("rb") as f:
        raw = f.readline(_SNIFF_LINE + 1)
        while raw and not raw.strip():
            raw = f.readline(_SNIFF_LINE + 1)
        first: bytes | None = raw
        if len(raw) > _SNIFF_LINE and not raw.endswith(b"\n"):  # too long to sniff
            first = None
            while raw and not raw.endswith(b"\n"):  # skip to its end
                raw = f.readline(_CHUNK)
        while chunk := f.read(_CHUNK):
            if chunk.strip():
                return first, False
    return first, True


_CHUNK = 1 << 20
_CLICKHOUSE = re.compile(
    r'\s*\{\s*"meta"\s*:'
)  # clickhouse FORMAT JSON: {"meta": [...], "data": [...]}


class _JsonStream:
    """JSON values read one at a time from a sliding buffer over a text file."""

    def __init__(self, f: TextIO, path: str, progress: Progress | None) -> None:
        self.f, self.path, self.progress = f, path, progress
        self.buf, self.pos, self.eof = "", 0, False
        self.decoder = json.JSONDecoder()

    def more(self) -> bool:
        chunk = self.f.read(_CHUNK)
        if self.progress and chunk:
            self.progress(len(chunk.encode("utf-8")))
        self.eof = not chunk
        self.buf, self.pos = self.buf[self.pos :] + chunk, 0
        return bool(chunk)

    def peek(self) -> str:
        """The next character that is not white space ('' at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf) or not self.more():
                return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def expect(self, char: str, what: str) -> None:
        c = self.peek()
        if c != char:
            found = f"{c!r}" if c else "the end of the file"
            raise InputError(f"not valid JSON: expected {what}, found {found}", path=self.path)
        self.pos += 1

    def value(self, where: str) -> Any:
        self.peek()
        while True:
            try:
                item, self.pos = self.decoder.raw_decode(self.buf, self.pos)
                return item
            except json.JSONDecodeError as e:
                if self.more():
                    continue
                raise InputError(
                    f"not valid JSON ({e.msg}) {where}; the file looks truncated", path=self.path
                ) from None

    def items(self) -> Iterator[Any]:
        """The elements of the list that starts here."""
        self.expect("[", "a list")
        while True:
            c = self.peek()
            if c == "]":
                self.pos += 1
                return
            if c == "":
                raise InputError(
                    "not valid JSON (the list never closes); the file looks truncated",
                    path=self.path,
                )
            yield self.value("in a list item")
            if self.peek() == ",":
                self.pos += 1

    def enter(self, key: str) -> None:
        """Move into the value of ``key`` of the object that starts here (keys before it are
        read and dropped: ClickHouse's ``meta`` is small)."""
        self.expect("{", "an object")
        while self.peek() == '"':
            name = self.value("in a key")
            self.expect(":", "':' after a key")
            if name == key:
                return
            self.value(f"in the value of {name!r}")
            if self.peek() == ",":
                self.pos += 1
        raise InputError(f"a JSON object without {key!r}", path=self.path)


def _json_records(
    p: Path, progress: Progress | None, key: str | None = None
) -> Iterator[tuple[int | None, Any]]:
    """HUD records of a file of JSON lists and objects in any layout (a pretty-printed list, a
    list on one line, lists and records one after another), or of the list under ``key`` of
    a ClickHouse FORMAT JSON object: one value at a time, never the whole file."""
    with p.open("r", encoding="utf-8") as f:
        stream, first = _JsonStream(f, str(p), progress), True
        if key is not None:
            stream.enter(key)
            values: Iterator[Any] = stream.items()
        else:
            values = _top_level(stream)
        for item in values:
            if first and not hud.is_record(item):
                raise InputError(
                    "a JSON list, but not of PyTorch HUD v3 records (its first "
                    "item has no 'metric')",
                    path=str(p),
                )
            first = False
            yield None, item


def _top_level(stream: _JsonStream) -> Iterator[Any]:
    while c := stream.peek():
        if c == "[":
            yield from stream.items()
        else:
            yield stream.value("at the top level")


def _head(p: Path) -> str:
    try:
        with p.open("rb") as f:
            raw = f.read(_SNIFF)
    except FileNotFoundError:
        raise InputError("no such file", path=str(p)) from None
    except OSError as e:
        raise InputError(f"cannot read ({e.strerror})", path=str(p)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(raw) - 4:  # not just a character cut at the sniff boundary
            raise InputError(
                "not a text file (tritonwatch imports JSON, JSONL and tritonbench CSV)", path=str(p)
            ) from None
        return raw[: e.start].decode("utf-8")


def _kind(obj: Any) -> str | None:
    if isinstance(obj, dict):
        if (
            "format" in obj
            and "run" in obj
            or str(obj.get("format", "")).startswith("tritonwatch.")
        ):
            return "run/1"
        if hud.is_record(obj):
            return "hud"
        if tritonbench.is_nightly(obj):
            return "nightly"
        if tritonbench.is_metrics_dict(obj):
            return "per-op"
    return None


_FORMAT_OF = {
    "run/1": "jsonl",
    "hud": "hud",
    "nightly": "tritonbench",
    "per-op": "tritonbench",
    "csv": "tritonbench",
}
_WHAT = {
    "run/1": "a tritonwatch.run/1 run",
    "hud": "PyTorch HUD v3 records",
    "nightly": "a tritonbench nightly result.json",
    "per-op": "a tritonbench --output-json file",
    "csv": "a tritonbench CSV",
}


def _check(kind: str, fmt: str, path: str) -> None:
    if fmt not in ("auto", _FORMAT_OF[kind]):
        raise InputError(
            f"not a {fmt} file: it looks like {_WHAT[kind]} "
            f"(use --format auto or --format {_FORMAT_OF[kind]})",
            path=path,
        )


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = ", ".join(sorted(str(k) for k in obj)[:6])
        return f"a JSON object with keys {keys}" if keys else "an empty JSON object"
    if isinstance(obj, list):
        return f"a JSON list of {len(obj)} item(s)"
    return f"a JSON {type(obj).__name__}"


def _load_whole(p: Path) -> Any:
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        hint = "; the file looks truncated" if e.pos >= len(text.rstrip()) - 1 else ""
        raise InputError(
            f"not valid JSON ({e.msg} at column {e.colno}){hint}", path=str(p), line=e.lineno
        ) from None


def _mtime(p: Path) -> datetime:
    return datetime.fromtimestamp(p.stat().st_mtime, UTC)


def _whole_doc(
    p: Path, doc: Any, fmt: str, opts: ImportOptions, progress: Progress | None
) -> tuple[FileReport, Iterator[Run]]:
    path = str(p)
    if progress:
        progress(p.stat().st_size)
    if isinstance(doc, dict) and isinstance(doc.get("data"), list) and "meta" in doc:
        doc = doc["data"]  # ClickHouse's FORMAT JSON: {"meta": [...], "data": [records]}
    if isinstance(doc, list):
        if not any(hud.is_record(r) for r in doc):
            raise InputError(
                "a JSON list, but not of PyTorch HUD v3 records (none has a 'metric')", path=path
            )
        _check("hud", fmt, path)
        report = FileReport(path, "hud")
        pairs = ((None, r) for r in doc)
        return report, hud.read_runs(pairs, path, opts, report.tally, _mtime(p))
    kind = _kind(doc)
    if kind is None:
        raise InputError(
            f"cannot tell the format: {_describe(doc)}; tritonwatch reads "
            f"{READS} (see docs/run-format.md)",
            path=path,
        )
    _check(kind, fmt, path)
    report = FileReport(path, _FORMAT_OF[kind])
    text = p.read_text(encoding="utf-8", errors="replace")
    if kind == "run/1":
        return report, iter([run1.validate(doc, path, None)])
    if kind == "hud":
        return report, hud.read_runs([(None, doc)], path, opts, report.tally, _mtime(p))
    if kind == "nightly":
        return report, _lazy(lambda: tritonbench.nightly_run(doc, text, path, opts, report.tally))
    return report, _lazy(lambda: tritonbench.per_op_run(doc, text, path, opts, report.tally))


def _lazy(make: Callable[[], Run]) -> Iterator[Run]:
    yield make()


def _text_table(
    p: Path, head: str, fmt: str, opts: ImportOptions, progress: Progress | None
) -> tuple[FileReport, Iterator[Run]]:
    path = str(p)
    first = head.lstrip().partition("\n")[0]
    if first.startswith("run_id,"):
        raise InputError(
            "this is tritonwatch's own CSV export, which is not importable; "
            "export and import --format jsonl instead",
            path=path,
        )
    if ";" not in first:
        raise InputError(
            f"cannot tell the format: text that is not JSON and not a "
            f"';'-separated tritonbench CSV; tritonwatch reads {READS}",
            path=path,
        )
    _check("csv", fmt, path)
    report = FileReport(path, "tritonbench")
    if progress:
        progress(p.stat().st_size)
    text = p.read_text(encoding="utf-8")
    return report, _lazy(lambda: tritonbench.csv_run(text, path, opts, report.tally))


def _json_rows(
    p: Path, kind: str, tally: Tally, progress: Progress | None
) -> Iterator[tuple[int, Any]]:
    """(line, object) of a JSON-each-row file, a line's list flattened as the uploader does."""
    pending = 0  # bytes not yet reported: a progress call per line would cost more than JSON
    with p.open("rb") as f:
        n = 0
        for n, raw in enumerate(f, start=1):  # noqa: B007 - n is read after the loop
            if progress:
                pending += len(raw)
                if pending >= 1 << 20:
                    progress(pending)
                    pending = 0
            if not raw.strip():
                continue
            try:
                obj = jsontext.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                if kind == "hud":  # the uploader skips a bad line with a warning; so do we
                    tally.items += 1
                    tally.skip("a line that is not valid JSON")
                    tally.warn(f"line {n} is not valid JSON")
                    continue
                last = not raw.endswith(b"\n")
                hint = "; the file looks truncated" if last else ""
                msg = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
                col = f" at column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
                raise InputError(
                    f"not valid JSON ({msg}{col}){hint}", path=str(p), line=n
                ) from None
            if isinstance(obj, list):
                for item in obj:
                    yield n, item
            elif isinstance(obj, dict):
                yield n, obj
            elif kind == "hud":
                tally.items += 1
                tally.skip("a line that is not a JSON object or list")
            else:
                raise InputError("each line must be one JSON object", path=str(p), line=n)
        if progress and pending:
            progress(pending)
        if n == 0:
            raise InputError("the file has no records", path=str(p))


def _row_runs(
    p: Path, kind: str, opts: ImportOptions, report: FileReport, progress: Progress | None
) -> Iterator[Run]:
    rows = _json_rows(p, kind, report.tally, progress)
    if kind == "hud":
        yield from hud.read_runs(rows, str(p), opts, report.tally, _mtime(p))
        return
    for n, obj in rows:
        if not isinstance(obj, dict):
            raise InputError("each line must be one JSON object", path=str(p), line=n)
        yield run1.validate(obj, str(p), n)


def _folder_runs(
    root: Path, opts: ImportOptions, report: FileReport, progress: Progress | None
) -> Iterator[Run]:
    """Each folder of tritonbench output as runs: nightly result.json files, else one run of
    every per-operator file in it (as ``--output-dir`` writes them, ``{op}.json``/``{op}.csv``)."""
    found = False
    for folder, files in tritonbench.folder_files(root):
        nightly: list[tuple[Path, Any]] = []
        per_op: list[tuple[Path, str, Any]] = []
        for f in files:
            head = _head(f).lstrip()
            if f.suffix == ".csv" and head and head[0] not in "{[":
                per_op.append((f, "csv", None))
                continue
            try:
                doc = json.loads(f.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                report.tally.warn(f"{f}: not JSON, skipped")
                continue
            kind = _kind(doc)
            if kind == "nightly":
                nightly.append((f, doc))
            elif kind == "per-op":
                per_op.append((f, "json", doc))
            else:
                report.tally.warn(f"{f}: not tritonbench output, skipped")
        for f, doc in nightly:
            found = True
            if progress:
                progress(f.stat().st_size)
            yield tritonbench.nightly_run(
                doc, f.read_text(encoding="utf-8"), str(f), opts, report.tally
            )
        if per_op and nightly:  # result.json holds their ids already
            ids = 0
            for f, kind, doc in per_op:
                text = f.read_text(encoding="utf-8")
                ids += (
                    len(doc)
                    if kind == "json"
                    else len(tritonbench.csv_metrics(text, str(f), opts)[0])
                )
            report.tally.items += ids
            report.tally.skip("in a per-operator file that the folder's result.json merges", ids)
        elif per_op:
            found = True
            yield _per_op_folder_run(folder, per_op, opts, report.tally, progress)
    if not found:
        raise InputError(
            "no tritonbench output in this folder (.json or .csv files)", path=str(root)
        )


def _per_op_folder_run(
    folder: Path,
    files: list[tuple[Path, str, Any]],
    opts: ImportOptions,
    tally: Tally,
    progress: Progress | None,
) -> Run:
    results, texts = [], []
    for f, kind, doc in files:
        if progress:
            progress(f.stat().st_size)
        text = f.read_text(encoding="utf-8")
        texts.append(text)
        if kind == "csv":
            metrics, label = tritonbench.csv_metrics(text, str(f), opts)
            names = opts.shape_names or tritonbench.label_names(label)
            local = ImportOptions(**{**opts.__dict__, "shape_names": names})
            results.append(tritonbench.results_from_metrics(metrics, local, tally))
        else:
            results.append(tritonbench.results_from_metrics(doc, opts, tally))
    started = tritonbench.file_time([f for f, _, _ in files], opts, tally)
    return tritonbench.plain_run(results, texts, str(folder), opts, tally, started)


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

    def runs() -> Iterator[Run]:
        for p in paths:
            if on_file:
                on_file(p)
            report, items = open_runs(p, fmt, opts, progress)
            reports.append(report)
            for run in items:
                report.runs += 1
                owners.append(report)
                yield run

    with _rare_collections():
        added = store.runs.add_many(runs())
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


@contextlib.contextmanager
def _rare_collections() -> Iterator[None]:
    """Run the cyclic garbage collector rarely while importing, as bulk loaders do.

    An import allocates millions of short-lived containers (each parsed record) beside the
    ~100,000 long-lived objects of the modules already loaded; at the default thresholds the
    collector took about 30% of an import's time, rescanning them. Records hold no cycles (they
    are freed by reference counting, so memory stays bounded): freezing what exists and
    collecting every 100,000 allocations brings that under 2%.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 100, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def write_export(
    runs: Iterable[RunDetail], out: TextIO, fmt: str, hud_options: hud.ExportOptions | None = None
) -> int:
    """Write stored runs in ``fmt`` (jsonl, csv, hud) to a text stream; returns runs written."""
    if fmt == "jsonl":
        return run1.write(runs, out)
    if fmt == "csv":
        return csv_format.write(runs, out)
    if fmt == "hud":
        meta = hud.ci_metadata(hud_options or hud.ExportOptions())
        n = 0
        for d in runs:
            n += 1
            for rec in hud.records(run1.run_document(d), meta):
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
    hud_options: hud.ExportOptions | None = None,
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
        hud.ci_metadata(hud_options or hud.ExportOptions())  # refuse before writing anything
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
