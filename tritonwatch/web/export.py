"""Table exports: the same rows as CSV, JSON or Parquet (when pyarrow is installed).

Every table and series view of the dashboard links to its API endpoint with ``format=csv``,
``format=json`` or ``format=parquet``; this module turns a list of flat dicts into the response.
CSV cells go through :class:`tritonwatch.formats.csv.SafeDictWriter` (no spreadsheet formulas).
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

import numpy as np
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..errors import UsageError
from ..formats.csv import SafeDictWriter

FORMATS = ("json", "csv", "parquet")


def parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def record(obj: Any) -> dict[str, Any]:
    """A dataclass as a shallow dict (``dataclasses.asdict`` deep-copies, which is slow)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def jsonable(value: Any) -> Any:
    """A value JSON can carry: datetimes as ISO 8601, arrays as lists, NaN as null."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(record(value))
    if isinstance(value, bytes):
        return None
    return value


def flatten(row: Mapping[str, Any]) -> dict[str, Any]:
    """One table row with nested values (shape, extra) written as compact JSON text."""
    out: dict[str, Any] = {}
    for k, v in jsonable(row).items():
        out[k] = (
            json.dumps(v, sort_keys=True, separators=(",", ":"))
            if isinstance(v, (dict, list))
            else v
        )
    return out


def check_format(fmt: str | None) -> str:
    fmt = (fmt or "json").lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "parquet" and not parquet_available():
        raise UsageError("Parquet export needs pyarrow: pip install 'tritonwatch[parquet]'")
    return fmt


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    flat = [flatten(r) for r in rows]
    columns: list[str] = []
    for r in flat:
        columns.extend(k for k in r if k not in columns)
    buf = io.StringIO()
    w = SafeDictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(flat)
    return buf.getvalue()


def csv_stream(pages: Iterable[Sequence[Mapping[str, Any]]], name: str) -> StreamingResponse:
    """CSV of rows that arrive a page at a time, sent as they arrive: memory holds one page.

    The columns are the first page's (every page of one listing has the same fields).
    """

    def chunks() -> Iterator[str]:
        columns: list[str] | None = None
        for page in pages:
            flat = [flatten(r) for r in page]
            if columns is None:
                columns = []
                for r in flat:
                    columns.extend(k for k in r if k not in columns)
                head = True
            else:
                head = False
            buf = io.StringIO()
            w = SafeDictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
            if head:
                w.writeheader()
            w.writerows(flat)
            yield buf.getvalue()

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_safe_name(name)}.csv"'},
    )


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:80] or "export"


def to_parquet(rows: Sequence[Mapping[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = [flatten(r) for r in rows]
    columns: list[str] = []
    for r in flat:
        columns.extend(k for k in r if k not in columns)
    data: dict[str, list[Any]] = {c: [] for c in columns}
    for r in flat:
        for c in columns:
            data[c].append(r.get(c))
    arrays = {}
    for c, vals in data.items():
        try:
            arrays[c] = pa.array(vals)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them as text
            arrays[c] = pa.array([None if v is None else str(v) for v in vals])
    buf = io.BytesIO()
    pq.write_table(pa.table(arrays) if arrays else pa.table({}), buf)
    return buf.getvalue()


def table_response(
    rows: Iterable[Mapping[str, Any]],
    fmt: str | None,
    name: str,
    meta: Mapping[str, Any] | None = None,
) -> Response:
    """``rows`` as the requested format; JSON wraps them as ``{"items": [...], **meta}``."""
    fmt = check_format(fmt)
    rows = list(rows)
    safe = _safe_name(name)
    if fmt == "csv":
        return Response(
            to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{safe}.csv"'},
        )
    if fmt == "parquet":
        return Response(
            to_parquet(rows),
            media_type="application/vnd.apache.parquet",
            headers={"Content-Disposition": f'attachment; filename="{safe}.parquet"'},
        )
    return JSONResponse({"items": jsonable(rows), **jsonable(dict(meta or {}))})
