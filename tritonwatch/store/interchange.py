"""Import and export: tritonwatch.run/1 JSONL, CSV, Parquet, and (through ``foreign``) tritonbench
JSON and PyTorch HUD v3.

Reading turns every supported file into validated :class:`~tritonwatch.runformat.Run` objects
before anything is written, so a bad line anywhere leaves the database untouched. Writing streams
runs out of the Store.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import InputError, UsageError
from ..runformat import FORMAT, Run, describe_errors
from .foreign import hud_records, hud_runs, tritonbench_run
from .rows import RunDetail

if TYPE_CHECKING:
    from .store import Store

EXPORT_FORMATS = ("jsonl", "csv", "parquet", "hud")
IMPORT_FORMATS = ("auto", "jsonl", "tritonbench", "hud")


@dataclass(frozen=True)
class ImportedFile:
    path: str
    format: str
    runs: list[Run]


# -- reading ------------------------------------------------------------------------------
def read_file(path: str | Path, fmt: str = "auto") -> ImportedFile:
    """Parse one file into runs, detecting its format unless ``fmt`` names it."""
    p = Path(path)
    if fmt not in IMPORT_FORMATS:
        raise UsageError(
            f"unknown import format {fmt!r}; choose one of {', '.join(IMPORT_FORMATS)}"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", path=str(p)) from None
    except IsADirectoryError:
        raise InputError("is a folder; give the files inside it", path=str(p)) from None
    except UnicodeDecodeError:
        raise InputError(
            "not a text file (tritonwatch imports JSON and JSONL)", path=str(p)
        ) from None
    except OSError as e:
        raise InputError(f"cannot read ({e.strerror})", path=str(p)) from None
    stripped = text.lstrip()
    if not stripped:
        raise InputError("the file is empty", path=str(p))
    whole: Any = None
    if fmt in ("auto", "tritonbench", "hud"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None
    if fmt == "tritonbench" or (fmt == "auto" and isinstance(whole, dict) and "metrics" in whole):
        if not isinstance(whole, dict):
            raise InputError(
                "not a tritonbench --output-json file (expected one JSON object)", path=str(p)
            )
        return ImportedFile(str(p), "tritonbench", [tritonbench_run(whole, text, str(p))])
    if isinstance(whole, dict) and "format" in whole:  # one run, pretty-printed
        return ImportedFile(str(p), "jsonl", [_validate(whole, str(p), 1)])
    if isinstance(whole, list):
        if fmt in ("auto", "hud") and all(isinstance(r, dict) and "metric" in r for r in whole):
            return ImportedFile(str(p), "hud", hud_runs(whole, str(p)))
        raise InputError("a JSON list, but not of PyTorch HUD v3 records", path=str(p))
    records = list(_json_lines(text, str(p)))
    first = records[0][1]
    if fmt == "hud" or (fmt == "auto" and "metric" in first and "benchmark" in first):
        return ImportedFile(str(p), "hud", hud_runs([r for _, r in records], str(p)))
    if fmt in ("auto", "jsonl") and "format" in first:
        return ImportedFile(str(p), "jsonl", [_validate(r, str(p), n) for n, r in records])
    raise InputError(
        "cannot tell the format; tritonwatch imports tritonwatch.run/1 JSONL, tritonbench "
        "--output-json files and PyTorch HUD v3 records (see docs/run-format.md)",
        path=str(p),
        line=1,
    )


def _json_lines(text: str, path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    any_line = False
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            hint = (
                "; the file looks truncated"
                if n == text.count("\n") + 1 or not text.endswith("\n")
                else ""
            )
            raise InputError(
                f"not valid JSON ({e.msg} at column {e.colno}){hint}", path=path, line=n
            ) from None
        if not isinstance(obj, dict):
            raise InputError("each line must be one JSON object", path=path, line=n)
        any_line = True
        yield n, obj
    if not any_line:
        raise InputError("the file has no records", path=path)


def _validate(obj: dict[str, Any], path: str, line: int) -> Run:
    if obj.get("format") != FORMAT:
        raise InputError(
            f"format is {obj.get('format')!r}; this tritonwatch reads {FORMAT!r}",
            path=path,
            line=line,
        )
    try:
        return Run.model_validate(obj)
    except ValidationError as e:
        raise InputError(f"not a valid run: {describe_errors(e)}", path=path, line=line) from None


def run_document(d: RunDetail) -> dict[str, Any]:
    """A stored run as a ``tritonwatch.run/1`` document: what export writes and import reads."""
    results = []
    for r in d.results:
        item: dict[str, Any] = {
            "operator": r.operator,
            "provider": r.provider,
            "variant": r.variant,
            "shape": r.shape,
            "dtype": r.dtype,
            "mode": r.mode,
            "metric": r.metric,
            "unit": r.unit,
            "better": r.better,
            "status": r.status,
        }
        if r.samples is not None:
            item["samples"] = r.samples.tolist()
        if r.value is not None:
            item["value"] = r.value
        for k in ("error", "correct"):
            if getattr(r, k) is not None:
                item[k] = getattr(r, k)
        if r.extra:
            item["extra"] = r.extra
        results.append(item)
    return {
        "format": FORMAT,
        "run": d.info,
        "machine": d.machine_info,
        "build": d.build_info,
        "results": results,
    }


# -- writing ------------------------------------------------------------------------------
CSV_COLUMNS = [
    "run_id",
    "started_at",
    "label",
    "org",
    "machine",
    "device",
    "gpu_model",
    "triton_version",
    "triton_commit",
    "torch_version",
    "operator",
    "provider",
    "variant",
    "shape",
    "dtype",
    "mode",
    "metric",
    "unit",
    "better",
    "status",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "samples",
    "correct",
    "error",
]


def result_rows(d: RunDetail) -> Iterator[dict[str, Any]]:
    """Flat rows (CSV_COLUMNS) for one stored run: one row per result."""
    s, info = d.summary, d.info
    common = {
        "run_id": s.uuid,
        "started_at": s.started_at.isoformat(),
        "label": s.label,
        "org": s.org,
        "machine": s.machine,
        "device": s.device,
        "gpu_model": s.gpu_model,
        "triton_version": s.triton_version,
        "triton_commit": s.triton_commit,
        "torch_version": (d.build_info.get("torch") or {}).get("version"),
    }
    _ = info
    for r in d.results:
        yield {
            **common,
            "operator": r.operator,
            "provider": r.provider,
            "variant": r.variant,
            "shape": json.dumps(r.shape, sort_keys=True),
            "dtype": r.dtype,
            "mode": r.mode,
            "metric": r.metric,
            "unit": r.unit,
            "better": r.better,
            "status": r.status,
            "value": r.value,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "n": r.n,
            "samples": None if r.samples is None else r.samples.tolist(),
            "correct": r.correct,
            "error": r.error,
        }


def write_export(runs: Iterable[RunDetail], out: io.TextIOBase | Path, fmt: str) -> int:
    """Write stored runs in ``fmt`` to a text stream (jsonl, csv, hud) or a path (parquet).

    Returns the number of runs written.
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    n = 0
    if fmt == "parquet":
        return _write_parquet(runs, out)  # type: ignore[arg-type]
    assert not isinstance(out, Path)
    writer = csv.DictWriter(out, CSV_COLUMNS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    for d in runs:
        n += 1
        doc = run_document(d)
        if fmt == "jsonl":
            out.write(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
        elif fmt == "hud":
            for rec in hud_records(doc):
                out.write(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
        else:
            for row in result_rows(d):
                row["samples"] = json.dumps(row["samples"]) if row["samples"] is not None else ""
                writer.writerow(row)  # type: ignore[union-attr]
    return n


def _write_parquet(runs: Iterable[RunDetail], path: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            "Parquet export needs pyarrow: pip install 'tritonwatch[parquet]'"
        ) from None
    schema = pa.schema(
        [
            (
                c,
                pa.list_(pa.float64())
                if c == "samples"
                else pa.float64()
                if c in ("value", "ci_low", "ci_high")
                else pa.int64()
                if c == "n"
                else pa.bool_()
                if c == "correct"
                else pa.string(),
            )
            for c in CSV_COLUMNS
        ]
    )
    n = 0
    with pq.ParquetWriter(str(path), schema) as w:
        for d in runs:
            n += 1
            rows = list(result_rows(d))
            if rows:
                w.write_table(pa.Table.from_pylist(rows, schema=schema))
    return n


# -- the commands' library functions -----------------------------------------------------
@dataclass(frozen=True)
class ImportReport:
    files: list[tuple[str, str, int]]  # (path, format, runs in it)
    added: int
    skipped: int  # runs already stored (same UUID)
    results: int


def import_files(
    store: Store, paths: list[str], fmt: str = "auto", progress: Callable[[str], None] | None = None
) -> ImportReport:
    """Read every file completely, then write all their runs in one transaction.

    A bad file anywhere raises before anything is written, so an import is all or nothing.
    """
    parsed = []
    for p in paths:
        if progress:
            progress(p)
        parsed.append(read_file(p, fmt))
    added = store.add_runs(r for f in parsed for r in f.runs)
    return ImportReport(
        files=[(f.path, f.format, len(f.runs)) for f in parsed],
        added=sum(a.created for a in added),
        skipped=sum(not a.created for a in added),
        results=sum(a.n_results for a in added if a.created),
    )


def export_runs(
    store: Store,
    output: str,
    fmt: str,
    *,
    runs: list[str] | None = None,
    progress: Callable[[], None] | None = None,
    **filters: Any,
) -> int:
    """Write the matching runs (or the named ``runs``) to ``output`` ('-' is stdout)."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    if runs:
        details: Iterable[RunDetail] = (store.get_run(r) for r in runs)
    else:
        details = store.iter_runs(**filters)
    if progress:
        details = _tap(details, progress)
    if fmt == "parquet":
        if output == "-":
            raise UsageError("Parquet is binary; give -o FILE.parquet")
        return _write_atomic_binary(details, Path(output))
    if output == "-":
        return write_export(details, sys.stdout, fmt)  # type: ignore[arg-type]
    target = Path(output)
    tmp = target.with_name(target.name + ".partial")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            n = write_export(details, f, fmt)
        tmp.replace(target)  # never leave a half-written export under the real name
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror})", path=output) from None
    finally:
        tmp.unlink(missing_ok=True)
    return n


def _tap(items: Iterable[RunDetail], tick: Callable[[], None]) -> Iterator[RunDetail]:
    for item in items:
        yield item
        tick()


def _write_atomic_binary(details: Iterable[RunDetail], target: Path) -> int:
    tmp = target.with_name(target.name + ".partial")
    try:
        n = _write_parquet(details, tmp)
        tmp.replace(target)
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror})", path=str(target)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return n
