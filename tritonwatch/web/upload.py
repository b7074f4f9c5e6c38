"""The upload API: ``POST /api/v1/runs`` takes one ``tritonwatch.run/1`` run from a runner.

Order of checks, cheapest first: the declared size (``Content-Length``), the bearer token (scope
``upload``; unknown and revoked tokens get 401), the organisation's upload rate
(:mod:`tritonwatch.web.quota`: 429 with ``Retry-After``), then the body is read with the size limit
enforced while reading (a chunked body cannot sneak past), parsed and validated with
:func:`tritonwatch.runformat.parse_run` (a message per field), checked against what the database
can hold (:func:`tritonwatch.store.limits.storable_problem`) and against the server's per-run
limits (settings ``max_run_results``, ``max_result_samples``, ``max_run_new_series``: 413 naming
the setting), and stored in one transaction. Every refusal is a 4xx ``{"error": message}``.

Organisations: the stored run belongs to the token's organisation. A run that names another
organisation is refused (403), and so is a run UUID already stored for another organisation
(409). The machine name is stored as ``ORG/NAME`` so two organisations' machines never share a
series (the machine key in the store is name-based). A retry of a stored run answers 200 with
the stored run, a new run 201: uploads are idempotent by run UUID and race-safe (the store's
insert is ``ON CONFLICT DO NOTHING``), so a runner may resend whenever it is unsure. A run id
resent with other content is 409 naming the fields that differ; the stored run is kept.

The server never sends anything a runner executes: answers are data, and runners only read the
status and the run id from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator
from typing import Any, NoReturn

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .. import settings
from ..errors import LimitError
from ..formats import run1
from ..runformat import Run, describe_errors, dump_run, json_schema
from ..store import Store
from ..store.access import TokenRow
from ..store.limits import MAX_MACHINE, check_run_size, storable_problem
from .auth import AuthError, needs, require_token
from .quota import OrgBudget

# The interpreter's GIL switch interval while the app runs. A request thread waiting for the GIL
# behind an upload being parsed waits up to one interval each time it reacquires it (every
# database round trip and socket write); at the default 5 ms a series read took 40 ms at the
# median under load, at 0.5 ms 17 ms, and ingest got faster too (benchmarks/upload_bench.py).
SWITCH_INTERVAL_S = 0.0005


@contextlib.asynccontextmanager
async def _lifespan(_app: Any) -> AsyncIterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


router = APIRouter(prefix="/api/v1", tags=["upload"], lifespan=_lifespan)

# Uploads parsed and stored at once, per lane. Parsing and validating a run is CPU work under the
# GIL; with every upload doing it at once, the dashboard's reads queue behind them (series p95
# went from 5 ms to 400 ms with 8 uploaders). One slot keeps ingest at full speed and reads
# responsive; other uploads wait their turn with their body already read. Small uploads (at most
# SMALL_UPLOAD_BYTES) have a lane of their own: a 20 MB run takes seconds to parse, and a
# 100-result run must not wait for it.
UPLOAD_SLOTS = 1
SMALL_UPLOAD_BYTES = 1024 * 1024


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """The run schema with its ``$defs`` inlined, so it can sit inside the OpenAPI document."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _run_body_schema() -> dict[str, Any]:
    schema = json_schema()
    body = _inline_refs(schema, schema.get("$defs", {}))
    body.pop("$id", None)
    return body


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def _limit_bytes() -> int:
    return int(float(settings.get("max_upload_mb")) * 1024 * 1024)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _error(
                413,
                f"the run is larger than the server's limit of {limit} bytes "
                "(setting max_upload_mb); split it or raise the limit",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _owned(run: Run, org: str) -> Run:
    """The run as the server stores it: the token's organisation, the machine as ``ORG/NAME``."""
    name = run.machine.name
    if not name.startswith(org + "/"):
        name = f"{org}/{name}"
    if len(name) > MAX_MACHINE:
        raise _error(
            422,
            f"machine.name: with the organisation prefix {org + '/'!r} it is "
            f"longer than {MAX_MACHINE} characters",
        )
    machine = run.machine.model_copy(update={"name": name})
    info = run.run.model_copy(update={"org": org})
    return run.model_copy(update={"machine": machine, "run": info})


def _parse(body: bytes) -> Run:
    if not body.strip():
        raise _error(400, "the request has no body; send one tritonwatch.run/1 run as JSON")
    try:  # the fast path: pydantic parses and validates the bytes in one pass
        run = Run.model_validate_json(body)
    except ValidationError as e:
        _explain(body, e)
    problem = storable_problem(run, suspicious=_SUSPICIOUS.search(body) is not None)
    if problem:
        raise _error(422, f"invalid run: {problem}")
    try:
        check_run_size(
            run,
            max_results=int(settings.get("max_run_results")),
            max_samples=int(settings.get("max_result_samples")),
        )
    except LimitError as e:
        raise _error(413, str(e)) from None
    return run


# A NUL can only arrive escaped, NaN and Infinity as bare words, and a number too large for a
# double (1e309, or 309 digits) with a 3-digit exponent or a long run of digits: without these
# bytes the per-string walk of storable_problem has nothing to find.
_SUSPICIOUS = re.compile(rb"\\u0000|NaN|Infinity|[eE]\+?[0-9]{3}|[0-9]{300}")


def _explain(body: bytes, e: ValidationError) -> NoReturn:
    """Turn a failed parse into 400 (not one JSON object) or 422 (a message per field)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise _error(
            400, f"the body is not valid JSON ({err}); send one tritonwatch.run/1 run"
        ) from None
    except ValueError:  # an integer of more than 4,300 digits: JSON, but no number we keep
        raise _error(422, f"invalid run: {describe_errors(e)}") from None
    if not isinstance(doc, dict):
        raise _error(
            400,
            "the body must be one JSON object (a tritonwatch.run/1 run), "
            f"not a {type(doc).__name__}",
        )
    raise _error(422, f"invalid run: {describe_errors(e)}") from None


def _store_run(store: Store, run: Run, token: TokenRow) -> tuple[int, dict[str, Any]]:
    claimed = run.run.org
    if claimed and claimed != token.org:
        raise AuthError(
            f"the run says organisation {claimed!r} but the token {token.actor} belongs to "
            f"{token.org!r}; a token writes only its own organisation's runs",
            status=403,
        )
    owned = _owned(run, token.org)
    try:
        added = store.runs.add(
            owned,
            org=token.org,
            uploaded_by=token.id,
            checked=True,
            max_new_series=int(settings.get("max_run_new_series")),
        )
    except LimitError as e:
        raise _error(413, str(e)) from None
    if not added.created:
        holder = store.runs.org_of(added.id)
        if holder != token.org:
            raise _error(
                409,
                f"run {added.uuid} is already stored for another organisation; "
                "a run id cannot be reused",
            )
        changed = run1.differences(run1.document(store, added.uuid), dump_run(owned))
        if changed:
            raise _error(
                409,
                f"run {added.uuid} is already stored with other content "
                f"({', '.join(changed)}); a run id names one run: give a changed run a new id",
            )
    answer = {
        "run": added.uuid,
        "id": added.id,
        "created": added.created,
        "n_results": added.n_results,
        "org": token.org,
        "machine": owned.machine.name,
        "url": f"/runs/{added.uuid}",
    }
    return (201 if added.created else 200), answer


_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    }
}


@router.post(
    "/runs",
    summary="Upload one run (needs a token with the upload scope)",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _run_body_schema()}},
        },
    },
    dependencies=[needs("upload")],
    responses={
        200: {"description": "The run was already stored (a retry); it is returned as stored."},
        201: {"description": "The run was stored."},
        400: {"description": "The body is not one JSON object.", **_ERROR},
        401: {"description": "No token, or an unknown or revoked one.", **_ERROR},
        403: {"description": "The token may not write this organisation's runs.", **_ERROR},
        409: {
            "description": "The run id is stored for another organisation, or with other "
            "content (the error names the fields that differ).",
            **_ERROR,
        },
        429: {
            "description": "The organisation is over its upload rate (org_upload_mb_per_s); "
            "retry after the Retry-After header's seconds.",
            **_ERROR,
        },
        413: {
            "description": "Larger than one of the server's limits: max_upload_mb, "
            "max_run_results, max_result_samples or max_run_new_series (the error names it).",
            **_ERROR,
        },
        422: {"description": "Not a valid tritonwatch.run/1 run (a message per field).", **_ERROR},
    },
)
async def upload_run(request: Request) -> JSONResponse:
    """Store one ``tritonwatch.run/1`` run; idempotent by run id (200 if already stored)."""
    limit = _limit_bytes()
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.strip().isascii() and declared.strip().isdigit()):
            raise _error(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise _error(
                413,
                f"the run is {int(declared)} bytes, larger than the server's "
                f"limit of {limit} bytes (setting max_upload_mb)",
            )
    token: TokenRow = await run_in_threadpool(require_token, request, "upload")
    budget = _budget(request)
    if declared is not None:
        wait = budget.wait_s(token.org, int(declared))
        if wait > 0:
            raise HTTPException(
                429,
                f"organisation {token.org!r} is over its upload rate "
                f"(setting org_upload_mb_per_s); retry in {wait:.1f} s",
                headers={"Retry-After": budget.retry_after(wait)},
            )
    body = await _read_body(request, limit)
    budget.take(token.org, len(body))
    async with _slots(request, small=len(body) <= SMALL_UPLOAD_BYTES):
        run = await run_in_threadpool(_parse, body)
        status, answer = await run_in_threadpool(_store_run, request.app.state.store, run, token)
    return JSONResponse(answer, status_code=status)


def _budget(request: Request) -> OrgBudget:
    state = request.app.state
    budget = getattr(state, "upload_budget", None)
    if budget is None:
        mib = 1024 * 1024
        budget = state.upload_budget = OrgBudget(
            capacity=_limit_bytes(), rate=float(settings.get("org_upload_mb_per_s")) * mib
        )
    return budget


def _slots(request: Request, *, small: bool) -> asyncio.Semaphore:
    """The app's upload slots, made on first use (inside the app's event loop): small uploads
    have a lane of their own, so they never wait behind a large one being parsed."""
    state = request.app.state
    lanes = getattr(state, "upload_slots", None)
    if lanes is None:
        lanes = state.upload_slots = {
            True: asyncio.Semaphore(UPLOAD_SLOTS),
            False: asyncio.Semaphore(UPLOAD_SLOTS),
        }
    return lanes[small]
