"""CSV export: one row per result, with the run's machine and build beside it (export only).

Every CSV tritonwatch writes (this export and the dashboard's ``format=csv`` tables) goes through
:class:`SafeDictWriter`, which neutralises spreadsheet formulas in text cells.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..store import RunDetail

COLUMNS = [
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


# OWASP's CSV-injection list: a spreadsheet treats a cell starting with one of these as a formula
# (tab and CR because some strip them and read the next character); LF for good measure.
FORMULA_START = frozenset("=+-@\t\r\n")
# A text cell that is only a decimal number stays as it is: no spreadsheet can read a function
# or a reference out of a sign, digits, a point and an exponent, and "-2.5" must stay a number.
_PLAIN_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell no spreadsheet runs as a formula: text that starts with ``=``,
    ``+``, ``-``, ``@``, tab, CR or LF gets a leading ``'`` (OWASP's advice), unless it is a
    plain number. Numbers (int, float) are written by Python and are never formulas."""
    if isinstance(value, str) and value[:1] in FORMULA_START and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


if TYPE_CHECKING:  # generic only in the type stubs
    _DictWriter = csv.DictWriter[str]
else:
    _DictWriter = csv.DictWriter


class SafeDictWriter(_DictWriter):
    """``csv.DictWriter`` whose header and cells go through :func:`safe_cell`."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: safe_cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)

    def writeheader(self) -> Any:
        return self.writer.writerow([safe_cell(f) for f in self.fieldnames])


def result_rows(d: RunDetail) -> Iterator[dict[str, Any]]:
    """Flat rows (COLUMNS) for one stored run: one row per result; samples as a list."""
    s = d.summary
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


def write(runs: Iterable[RunDetail], out: TextIO) -> int:
    """Write every result of ``runs`` as CSV; ``samples`` is a JSON list. Returns runs written."""
    writer = SafeDictWriter(out, COLUMNS)
    writer.writeheader()
    n = 0
    for d in runs:
        n += 1
        for row in result_rows(d):
            row["samples"] = json.dumps(row["samples"]) if row["samples"] is not None else ""
            writer.writerow(row)
    return n
