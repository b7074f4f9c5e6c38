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


# What names a result within a run; the rest of a result is its content.
_CASE = ("operator", "provider", "variant", "shape", "dtype", "mode", "metric")
# Filled in by the store when a run leaves them out (the median of the samples, the metric's
# direction): a resent run that leaves them out again is the same run.
_DERIVED = ("value", "better")


def differences(stored: dict[str, Any], sent: dict[str, Any], limit: int = 10) -> list[str]:
    """The fields in which two run/1 documents of one run id differ (at most ``limit``).

    ``stored`` is :func:`run_document` of the stored run, ``sent`` the JSON dump of the run as
    it would be stored; an empty list means a resend of the same run.
    """
    out: list[str] = []
    for section in ("run", "machine", "build"):
        a, b = stored.get(section) or {}, sent.get(section) or {}
        out += [f"{section}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]

    def case(r: dict[str, Any]) -> str:
        return json.dumps([r.get(k) for k in _CASE], sort_keys=True)

    have = {case(r): r for r in stored.get("results") or []}
    for i, r in enumerate(sent.get("results") or []):
        old = have.pop(case(r), None)
        if old is None:
            out.append(f"results.{i} (a case the stored run does not have)")
            continue
        for k in sorted(set(old) | set(r)):
            if k in _DERIVED and k not in r:
                continue
            if (old.get(k) or None) != (r.get(k) or None):
                out.append(f"results.{i}.{k}")
    if have:
        out.append(f"results ({len(have)} stored case(s) missing)")
    return out[:limit]


def document(store: Store, ref: str) -> dict[str, Any]:
    """The stored run ``ref`` (UUID or unique prefix) as a run/1 document."""
    return run_document(store.runs.get(ref))


def write(runs: Iterable[RunDetail], out: TextIO) -> int:
    n = 0
    for d in runs:
        out.write(json.dumps(run_document(d), sort_keys=True, separators=(",", ":")) + "\n")
        n += 1
    return n
