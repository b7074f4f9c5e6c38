"""The JSON API under /api/v1: runs, results, series, alerts, codegen, comparisons, views.

Lists take ``limit`` (at most 1000) and ``offset`` and answer ``{"items": [...], "limit",
"offset", "next_offset"}``; with ``format=csv`` or ``format=parquet`` they answer a file instead.
Errors are ``{"error": message}``. Reading is public; triage and saving views need a token with that scope.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..errors import UsageError
from ..formats import run1
from ..store import Store
from ..store.alerts import AlertStatus
from . import data
from .auth import needs, require_alert_org, require_token
from .export import csv_stream, jsonable, record, table_response
from .params import MAX_LIMIT, Limit, Offset, Points, known_id

router = APIRouter(prefix="/api/v1", tags=["api"])

# PostgreSQL text cannot hold NUL; refuse it here with a 422 instead of failing in the database.
NoNul = r"^[^\x00]*$"
Format = Annotated[Literal["json", "csv", "parquet"], Query(description="Response format.")]
Opt = Annotated[str | None, Query()]
SeriesQuery = Annotated[data.SeriesFields, Depends()]


def _store(request: Request) -> Store:
    return request.app.state.store


def _page(items: list[Any], fmt: str, name: str, limit: int, offset: int) -> Response:
    meta = {
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(items) == limit else None,
    }
    return table_response(items, fmt, name, meta)


# -- runs and results ---------------------------------------------------------------------------
@router.get("/runs", summary="Runs, newest first")
def list_runs(
    request: Request,
    machine: Opt = None,
    org: Opt = None,
    label: Opt = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
    format: Format = "json",
) -> Response:
    runs = _store(request).runs.find(
        machine=machine, org=org, label=label, since=since, until=until, limit=limit, offset=offset
    )
    return _page([record(r) for r in runs], format, "runs", limit, offset)


@router.get(
    "/runs/{ref}", summary="One run: summary, fingerprint and a page of its results (all as CSV)"
)
def get_run(
    request: Request,
    ref: str,
    samples: bool = False,
    limit: Limit = MAX_LIMIT,
    offset: Offset = 0,
    format: Format = "json",
) -> Response:
    store = _store(request)
    if format == "csv":  # every result, read and written a page at a time
        uuid = store.runs.get(ref, limit=0).summary.uuid
        pages = (
            _result_records(p, samples) for p in store.runs.result_pages(uuid, samples=samples)
        )
        return csv_stream(pages, f"run-{uuid[:8]}")
    d = store.runs.get(ref, limit=limit, offset=offset, samples=samples)
    results = _result_records(d.results, samples)
    if format != "json":
        return table_response(results, format, f"run-{d.summary.uuid[:8]}")
    return table_response(
        results,
        "json",
        "run",
        {
            "run": record(d.summary),
            "info": d.info,
            "machine": d.machine_info,
            "build": d.build_info,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if offset + limit < d.summary.n_results else None,
        },
    )


def _result_records(results: list[Any], samples: bool) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        row = record(r)
        if not samples:
            row.pop("samples")
        rows.append(row)
    return rows


@router.get("/runs/{ref}/document", summary="One run as a tritonwatch.run/1 document")
def run_document(request: Request, ref: str) -> dict[str, Any]:
    return jsonable(run1.document(_store(request), ref))


@router.get("/results", summary="Results, newest first, filtered by run, series fields, status")
def list_results(
    request: Request,
    sf: SeriesQuery,
    run: Opt = None,
    status: Opt = None,
    limit: Limit = 100,
    offset: Offset = 0,
    format: Format = "json",
) -> Response:
    rows = _store(request).overview.results(
        run=run, machine=sf.machine, status=status, limit=limit, offset=offset, **sf.fields()
    )
    return _page(rows, format, "results", limit, offset)


@router.get("/machines", summary="Machines that have stored runs")
def list_machines(request: Request, format: Format = "json") -> Response:
    return table_response(
        [record(m) for m in _store(request).series.machines()], format, "machines"
    )


# -- series -------------------------------------------------------------------------------------
@router.get("/series", summary="Series x machines matching exact-value filters")
def list_series(
    request: Request,
    sf: SeriesQuery,
    limit: Limit = 200,
    offset: Offset = 0,
    after: Annotated[
        str | None,
        Query(
            max_length=4000,
            description="Continue after this cursor (next_after of the previous page); "
            "unlike offset, as fast on the thousandth page as on the first.",
        ),
    ] = None,
    format: Format = "json",
) -> Response:
    refs = _store(request).series.catalog(
        limit=limit, offset=offset, after=_cursor(after), machine=sf.machine, **sf.fields()
    )
    items = [record(r) for r in refs]
    if format != "json":
        return table_response(items, format, "series")
    last = _make_cursor(refs[-1].listing_key()) if len(refs) == limit else None
    return table_response(
        items,
        "json",
        "series",
        {
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if last else None,
            "next_after": last,
        },
    )


def _make_cursor(key: tuple[str, ...]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _cursor(text: str | None) -> list[str] | None:
    """A cursor made by _make_cursor, or UsageError (400)."""
    if text is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        raise UsageError("after: not a cursor from this listing's next_after") from None
    if not (isinstance(key, list) and len(key) == 7 and all(isinstance(k, str) for k in key)):
        raise UsageError("after: not a cursor from this listing's next_after")
    if any("\x00" in k for k in key):
        raise UsageError("after: not a cursor from this listing's next_after")
    return key


@router.get("/series/{series_id}/{machine_id}", summary="Points of one series on one machine")
def series_points(
    request: Request,
    series_id: int,
    machine_id: int,
    since: datetime | None = None,
    limit: Points = 365,
    samples: bool = False,
    format: Format = "json",
) -> Response:
    known_id(series_id, "series")
    known_id(machine_id, "machine")
    pts = _store(request).series.points(
        series_id, machine_id, since=since, limit=limit, with_samples=samples
    )
    rows = [record(p) for p in pts]
    if not samples:
        for r in rows:
            r.pop("samples")
    return table_response(rows, format, f"series-{series_id}-{machine_id}")


@router.get("/explore", summary="The series explorer's traces (filters as on /series)")
def explore(
    request: Request,
    sf: SeriesQuery,
    norm: str = "none",
    base: Opt = None,
    limit: Points = 365,
    format: Format = "json",
) -> Response:
    f = data.SeriesFilters.of(sf, norm=norm, base=base, limit=limit)
    view = data.series_view(_store(request), f, with_facets=False)
    if view.too_many:
        raise UsageError(f"more than {data.MAX_TRACES} series match; narrow the filters")
    rows = [{**record(t.ref), "label": t.label, **p} for t in view.traces for p in t.points]
    return table_response(
        rows, format, "series-explorer", {"alerts": [record(a) for a in view.alerts]}
    )


@router.get("/overview", summary="Newest run per machine, open alerts, newest-vs-previous map")
def overview(request: Request) -> dict[str, Any]:
    ov = data.overview(_store(request))
    return jsonable(
        {
            "latest": [{"newest": m.newest, "previous": m.previous} for m in ov.latest],
            "open_alerts": {k: [record(a) for a in v] for k, v in ov.open_alerts.items()},
            "heatmap": ov.heatmap,
        }
    )


@router.get("/heatmap", summary="Newest vs previous run: geomean change per cell")
def heatmap(request: Request, format: Format = "json") -> Response:
    return table_response(
        [record(c) for c in _store(request).overview.heatmap()], format, "heatmap"
    )


# -- alerts -------------------------------------------------------------------------------------
class TriageBody(BaseModel):
    status: AlertStatus
    note: str | None = Field(None, max_length=2000, pattern=NoNul)


@router.get("/alerts", summary="Alerts, filtered by status, machine, operator, direction")
def list_alerts(
    request: Request,
    status: Opt = None,
    machine: Opt = None,
    operator: Opt = None,
    direction: Opt = None,
    limit: Limit = 100,
    offset: Offset = 0,
    format: Format = "json",
) -> Response:
    store = _store(request)
    rows = store.alerts.find(
        status=status,
        machine=machine,
        operator=operator,
        direction=direction,
        limit=limit,
        offset=offset,
    )
    items = [{**record(a), "severity": a.severity_class} for a in rows]
    return _page(items, format, "alerts", limit, offset)


@router.get("/alerts/{alert_id}", summary="One alert with its history and before/after samples")
def get_alert(request: Request, alert_id: int) -> dict[str, Any]:
    known_id(alert_id, "alert")
    store = _store(request)
    v = data.alert_view(store, alert_id)
    return jsonable(record(v))


@router.post(
    "/alerts/{alert_id}/status",
    summary="Triage an alert (needs a token with the triage scope)",
    dependencies=[needs("triage")],
)
def triage(request: Request, alert_id: int, body: TriageBody) -> dict[str, Any]:
    known_id(alert_id, "alert")
    token = require_token(request, "triage")
    store = _store(request)
    require_alert_org(store, alert_id, token)
    store.alerts.set_status(
        alert_id,
        body.status,
        actor=token.actor,
        note=body.note,
    )
    return jsonable(
        {
            "alert": record(store.alerts.get(alert_id)),
            "history": [record(e) for e in store.alerts.history(alert_id)],
        }
    )


# -- codegen and comparisons -------------------------------------------------------------------
@router.get("/codegen", summary="Blast-radius reports, newest first")
def list_codegen(
    request: Request, limit: Limit = 50, offset: Offset = 0, format: Format = "json"
) -> Response:
    rows = _store(request).reports.codegen_page(limit=limit, offset=offset)
    return _page([_report_item(r) for r in rows], format, "codegen", limit, offset)


@router.get("/codegen/{ref}", summary="One blast-radius report with its per-kernel rows")
def get_codegen(request: Request, ref: str, format: Format = "json") -> Response:
    r = _store(request).reports.codegen_detail(ref)
    return table_response(
        r.rows if isinstance(r.rows, list) else [],
        format,
        f"codegen-{r.uuid[:8]}",
        {"report": _report_item(r)},
    )


@router.get("/comparisons", summary="A/B comparisons, newest first")
def list_comparisons(
    request: Request, limit: Limit = 50, offset: Offset = 0, format: Format = "json"
) -> Response:
    rows = _store(request).reports.comparison_page(limit=limit, offset=offset)
    return _page([_report_item(r) for r in rows], format, "comparisons", limit, offset)


@router.get("/comparisons/{ref}", summary="One comparison with its per-case verdicts")
def get_comparison(request: Request, ref: str, format: Format = "json") -> Response:
    r = _store(request).reports.comparison_detail(ref)
    return table_response(r.rows, format, f"compare-{r.uuid[:8]}", {"comparison": _report_item(r)})


def _report_item(r: Any) -> dict[str, Any]:
    d = record(r)
    d.pop("rows")
    return d


# -- saved views --------------------------------------------------------------------------------
class ViewBody(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=NoNul)
    page: str = Field(min_length=1, max_length=50, pattern=NoNul)
    query: str = Field("", max_length=4000, pattern=NoNul)


@router.get("/views", summary="Saved views")
def list_views(request: Request, format: Format = "json") -> Response:
    return table_response([record(v) for v in _store(request).access.views()], format, "views")


@router.get("/views/{name}", summary="One saved view")
def get_view(request: Request, name: str) -> dict[str, Any]:
    return jsonable(record(_store(request).access.get_view(name)))


@router.post(
    "/views",
    summary="Save a named view (needs a token with the views scope)",
    status_code=201,
    dependencies=[needs("views")],
)
def save_view(request: Request, body: ViewBody) -> dict[str, Any]:
    token = require_token(request, "views")
    v = _store(request).access.save_view(body.name, body.page, body.query, token.id)
    return jsonable(record(v))
