"""``tritonwatch.run/1`` files: one run per line (JSONL), or one pretty-printed run.

Reading validates each line into a :class:`~tritonwatch.runformat.Run`; writing turns a stored
run back into the document it was made from (what ``export``, ``show --format json``, ``push``
and the web API's document view all produce).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from ..errors import InputError
from ..runformat import FORMAT, Run, describe_errors

if TYPE_CHECKING:
    from ..store import RunDetail, Store


def validate(obj: dict[str, Any], path: str, line: int | None) -> Run:
    """One run/1 object as a Run, or an InputError naming the file, line and bad fields."""
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


def read_lines(lines: Iterable[tuple[int, dict[str, Any]]], path: str) -> Iterator[Run]:
    for n, obj in lines:
        yield validate(obj, path, n)


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


def document(store: Store, ref: str) -> dict[str, Any]:
    """The stored run ``ref`` (UUID or unique prefix) as a run/1 document."""
    return run_document(store.runs.get(ref))


def write(runs: Iterable[RunDetail], out: TextIO) -> int:
    n = 0
    for d in runs:
        out.write(json.dumps(run_document(d), sort_keys=True, separators=(",", ":")) + "\n")
        n += 1
    return n
