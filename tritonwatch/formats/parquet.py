"""Parquet export: the CSV columns with typed values and samples as a list of doubles."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .csv import COLUMNS, result_rows

if TYPE_CHECKING:
    from ..store import RunDetail


def _schema(pa: Any) -> Any:
    def kind(c: str) -> Any:
        if c == "samples":
            return pa.list_(pa.float64())
        if c in ("value", "ci_low", "ci_high"):
            return pa.float64()
        if c == "n":
            return pa.int64()
        if c == "correct":
            return pa.bool_()
        return pa.string()

    return pa.schema([(c, kind(c)) for c in COLUMNS])


def write(runs: Iterable[RunDetail], path: Path) -> int:
    """Write every result of ``runs`` to a Parquet file at ``path``; returns runs written."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            "Parquet export needs pyarrow: pip install 'tritonwatch[parquet]'"
        ) from None
    schema = _schema(pa)
    n = 0
    with pq.ParquetWriter(str(path), schema) as w:
        for d in runs:
            n += 1
            rows = list(result_rows(d))
            if rows:
                w.write_table(pa.Table.from_pylist(rows, schema=schema))
    return n
