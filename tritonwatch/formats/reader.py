"""Reading a file for ``tritonwatch import``: which format it is, and its runs as they are read.

Formats read: tritonwatch.run/1 (JSONL or one pretty-printed run), tritonbench (``--output-json``
files, a folder of them, the nightly ``result.json``, the ``;``-separated ``--output`` CSV) and
PyTorch HUD v3 records (a JSON list, one record, JSON each row, ClickHouse's JSON output). A file
that is none of them is named for what it looked like. Runs come out of :func:`open_runs` lazily,
so a history of any length is read in bounded memory.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from ..runformat import Run
from . import background, hud, jsontext, run1, tritonbench
from .jsontext import JsonStream, Progress, loads, top_level
from .options import ImportOptions, Tally

IMPORT_FORMATS = ("auto", "jsonl", "tritonbench", "hud")

READS = (
    "tritonwatch.run/1 JSONL; tritonbench --output-json files (or a folder of them), nightly "
    "result.json and --output CSV; PyTorch HUD v3 records (JSON list, one record, JSON each "
    "row)"
)

_SNIFF = 1 << 16


@dataclass
class FileReport:
    """What one file (or tritonbench folder) gave: its format, runs, and the tally of items."""

    path: str
    format: str
    runs: int = 0
    stored: int = 0  # results written by this import
    tally: Tally = field(default_factory=Tally)


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
    first_line, only_line = jsontext.first_line(p)
    first: Any = _NO_LINE
    if first_line is None and stripped[0] == "{":  # one object too long to sniff: read whole
        return _whole_doc(p, _load_whole(p), fmt, opts, progress)
    if first_line is not None:
        with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
            first = loads(first_line)
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

_CLICKHOUSE = re.compile(
    r'\s*\{\s*"meta"\s*:'
)  # clickhouse FORMAT JSON: {"meta": [...], "data": [...]}


def _json_records(
    p: Path, progress: Progress | None, key: str | None = None
) -> Iterator[tuple[int | None, Any]]:
    """HUD records of a file of JSON lists and objects in any layout (a pretty-printed list, a
    list on one line, lists and records one after another), or of the list under ``key`` of
    a ClickHouse FORMAT JSON object: one value at a time, never the whole file."""
    with p.open("r", encoding="utf-8") as f:
        stream, first = JsonStream(f, str(p), progress), True
        if key is not None:
            stream.enter(key)
            values: Iterator[Any] = stream.items()
        else:
            values = top_level(stream)
        for item in values:
            if first and not hud.is_record(item):
                raise InputError(
                    "a JSON list, but not of PyTorch HUD v3 records (its first "
                    "item has no 'metric')",
                    path=str(p),
                )
            first = False
            yield None, item


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


def json_rows(
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
                obj = loads(raw)
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
    if kind == "hud":
        if background.wanted(p.stat().st_size):
            yield from background.hud_runs(p, opts, report.tally, progress, _mtime(p))
            return
        rows = json_rows(p, kind, report.tally, progress)
        yield from hud.read_runs(rows, str(p), opts, report.tally, _mtime(p))
        return
    rows = json_rows(p, kind, report.tally, progress)
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
