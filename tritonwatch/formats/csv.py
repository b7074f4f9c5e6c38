"""CSV export: one row per result, with the run's machine and build beside it (export only)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
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
    writer = csv.DictWriter(out, COLUMNS)
    writer.writeheader()
    n = 0
    for d in runs:
        n += 1
        for row in result_rows(d):
            row["samples"] = json.dumps(row["samples"]) if row["samples"] is not None else ""
            writer.writerow(row)
    return n
