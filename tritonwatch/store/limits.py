"""What the database can hold, read from the column definitions in ``schema.py``.

The run format validates what a run may say; this module checks the rest, which only the
database knows (column lengths, 32-bit integers, no NUL in text, no NaN in JSON). Every way a run
enters the store (``run``, ``import``, the upload API) goes through :func:`storable_problem`, so
a run that cannot be stored is refused with one line naming the field, never a driver traceback.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from sqlalchemy import Column, String

from ..errors import LimitError, UsageError
from ..naming import canonical_shape
from ..runformat import Result, Run
from . import schema as s

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1  # ids, offsets and counts are BIGINT on PostgreSQL, INTEGER on SQLite


def checked_offset(offset: int) -> int:
    """``offset`` if a database can skip that many rows; UsageError (400) otherwise."""
    if not 0 <= offset <= INT64_MAX:
        raise UsageError(f"offset {offset} is out of range; use 0 to {INT64_MAX}")
    return offset


def check_run_size(run: Run, *, max_results: int, max_samples: int) -> None:
    """Refuse (:class:`LimitError`) a run with more results, or a result with more samples,
    than a server allows (settings ``max_run_results`` and ``max_result_samples``)."""
    if len(run.results) > max_results:
        raise LimitError(
            f"the run has {len(run.results)} results, more than this server's limit of "
            f"{max_results} per run (setting max_run_results); split it into several runs"
        )
    for i, r in enumerate(run.results):
        if r.samples is not None and len(r.samples) > max_samples:
            raise LimitError(
                f"results.{i} has {len(r.samples)} samples, more than this server's limit of "
                f"{max_samples} per result (setting max_result_samples)"
            )


def max_length(column: Column[Any]) -> int:
    """The length of a ``String(n)`` column."""
    if not isinstance(column.type, String) or column.type.length is None:
        raise TypeError(f"{column} has no length")
    return int(column.type.length)


MAX_DEVICE = max_length(s.machines.c.device)
MAX_GPU_MODEL = max_length(s.machines.c.gpu_model)
MAX_MACHINE = max_length(s.machines.c.name)
MAX_SHAPE = max_length(s.series.c.shape)
MAX_ORG = max_length(s.orgs.c.name)
MAX_LABEL = max_length(s.runs.c.label)
MAX_SUITE = max_length(s.runs.c.suite)
MAX_TRITON_VERSION = max_length(s.builds.c.triton_version)
MAX_TRITON_COMMIT = max_length(s.builds.c.triton_commit)
MAX_TORCH_VERSION = max_length(s.builds.c.torch_version)
# Series fields the run format bounds itself; checked again in case the two ever drift apart.
SERIES_TEXT = {
    f: max_length(s.series.c[f])
    for f in ("operator", "provider", "variant", "dtype", "mode", "metric", "unit")
}


def _walk(node: Any, path: str) -> str | None:
    """The path of the first string holding a NUL, or of the first non-finite float."""
    if isinstance(node, str):
        return path if "\x00" in node else None
    if isinstance(node, float):
        return path if not math.isfinite(node) else None
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str) and "\x00" in k:
                return f"{path}.{k!r}"
            found = _walk(v, f"{path}.{k}")
            if found:
                return found
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found = _walk(v, f"{path}.{i}")
            if found:
                return found
    return None


def _too_long(value: str | None, limit: int) -> bool:
    return value is not None and len(value) > limit


def storable_problem(run: Run, *, suspicious: bool = True) -> str | None:
    """What in a valid run the database cannot hold, as ``field: message``, or None.

    ``suspicious=False`` skips the walk over every string and number (NUL, NaN, Infinity), for
    a body known not to contain them.
    """
    problem = _fields_problem(run)
    for i, r in enumerate(run.results):
        if problem:
            break
        problem = result_problem(r)
        if problem:
            problem = f"results.{i}.{problem}"
    return problem or (_values_problem(run) if suspicious else None)


def run_problem(run: Run, *, suspicious: bool = True) -> str | None:
    """:func:`storable_problem` less the per-result column limits (:func:`result_problem`).

    The store asks :func:`result_problem` only of results whose series is not stored yet: a
    stored series already fits its columns, and a bulk import repeats a few series many times.
    """
    return _fields_problem(run) or (_values_problem(run) if suspicious else None)


def _fields_problem(run: Run) -> str | None:
    m, info, triton = run.machine, run.run, run.build.triton
    torch = getattr(run.build, "torch", None)
    checks = (
        ("run.device", info.device, MAX_DEVICE),
        ("run.org", info.org, MAX_ORG),
        ("run.label", info.label, MAX_LABEL),
        ("run.suite", info.suite, MAX_SUITE),
        ("machine.name", m.name, MAX_MACHINE),
        ("machine.gpu_model", m.gpu_model, MAX_GPU_MODEL),
        ("build.triton.version", triton.version, MAX_TRITON_VERSION),
        ("build.triton.commit", triton.commit, MAX_TRITON_COMMIT),
        ("build.torch.version", getattr(torch, "version", None), MAX_TORCH_VERSION),
    )
    for name, value, limit in checks:
        if _too_long(value, limit):
            return f"{name}: at most {limit} characters"
    if m.gpu_count is not None and not 0 <= m.gpu_count <= INT32_MAX:
        return "machine.gpu_count: must be between 0 and 2**31-1"
    return None


def _values_problem(run: Run) -> str | None:
    if _clean_values(run):
        return None
    bad = _walk(run.model_dump(mode="python", exclude={"results"}), "")
    if bad is None:
        for i, r in enumerate(run.results):
            bad = _walk(_result_values(r), f".results.{i}")
            if bad:
                break
    if bad:
        return (
            f"{bad.lstrip('.')}: NUL characters and NaN/Infinity (or a number beyond a double's "
            "range, such as 1e309) cannot be stored"
        )
    return None


# A result's text fields, and its fields that hold JSON: all the walk looks at in a result.
_RESULT_TEXT = ("error", "unit", "operator", "provider", "variant", "dtype", "mode", "metric")
_result_text = operator.attrgetter(*_RESULT_TEXT)


def _result_values(r: Result) -> dict[str, Any]:
    return {
        "shape": r.shape,
        "extra": r.extra,
        **dict(zip(_RESULT_TEXT, _result_text(r), strict=True)),
    }


def _clean_result(r: Result) -> bool:
    """:func:`_clean` of :func:`_result_values` without building it (a bulk import checks
    every result): text fields are exact ``str`` or None once validated."""
    for v in _result_text(r):
        if v is not None and "\x00" in v:
            return False
    return _clean(r.shape) and _clean(r.extra)


def _clean_values(run: Run) -> bool:
    """True when :func:`_walk` would find nothing in the run: the usual answer, found without
    naming a path for every value (the walk's cost) and without copying the run section's extra
    keys (a HUD import keeps every record there) into a dump. False leaves it to the walk."""
    extra = run.run.__pydantic_extra__ or {}
    head = run.model_dump(mode="python", exclude={"results": True, "run": set(extra)})
    if not (_clean(head) and _clean(extra)):
        return False
    return all(map(_clean_result, run.results))


def _clean(node: dict[Any, Any] | list[Any]) -> bool:
    """No string with a NUL and no non-finite float in ``node``, looked for where :func:`_walk`
    looks (dict values and keys, list items); anything unusual (a float or str subclass, a
    node of another type) is left to the walk."""
    if type(node) is dict:
        for k in node:
            if type(k) is str:
                if "\x00" in k:
                    return False
            elif isinstance(k, str):
                return False
        items: Any = node.values()
    elif type(node) is list:
        items = node
    else:
        return False
    for v in items:
        t = type(v)
        if t is str:
            if "\x00" in v:
                return False
        elif t is float:
            if not _isfinite(v):
                return False
        elif t is dict or t is list:
            if not _clean(v):
                return False
        elif t is int or v is None or t is bool:
            continue
        elif isinstance(v, (str, float, dict, list)):
            return False
    return True


_isfinite = math.isfinite


def result_problem(r: Result) -> str | None:
    """What of one result's series the database cannot hold, as ``field: message``, or None."""
    if len(canonical_shape(r.shape)) > MAX_SHAPE:
        return f"shape: its JSON form is longer than {MAX_SHAPE} characters"
    for f, limit in SERIES_TEXT.items():
        if len(getattr(r, f)) > limit:
            return f"{f}: at most {limit} characters"
    return None
