"""The dashboard's HTML pages: every filter lives in the URL, so every page is a permalink.

Templates render objects built by :mod:`tritonwatch.web.data`; all text is autoescaped and the
data charts draw is handed to the browser as JSON in ``<script type="application/json">`` tags.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from ..codegen.blast import blast_from_json
from ..errors import NotFoundError
from ..naming import shape_text
from ..report.blast import html_view
from ..report.compare import comparison_view
from ..report.runs import result_order
from ..store import Store
from ..store.alerts import ALERT_STATUSES
from ..store.series import SERIES_FIELDS
from . import data
from .params import Limit, Offset, Points, known_id
from .templating import templates

router = APIRouter(include_in_schema=False)

Opt = Annotated[str | None, Query()]
PAGES = ("overview", "series", "runs", "run", "alerts", "alert", "codegen", "compare", "views")


def _store(request: Request) -> Store:
    return request.app.state.store


def _render(request: Request, name: str, page: str, **ctx: Any) -> HTMLResponse:
    params = {k: v for k, v in request.query_params.items() if v}
    return templates.TemplateResponse(request, name, {"page": page, "params": params, **ctx})


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request) -> HTMLResponse:
    return _render(request, "overview.html", "overview", ov=data.overview(_store(request)))


@router.get("/series", response_class=HTMLResponse)
def series_page(
    request: Request,
    sf: Annotated[data.SeriesFields, Depends()],
    norm: Opt = None,
    base: Opt = None,
    limit: Points = 365,
    scale: str = "linear",
    offset: Offset = 0,
) -> HTMLResponse:
    f = data.SeriesFilters.of(
        sf, norm=norm or "auto", base=base, limit=limit, scale=scale, offset=offset
    )
    view = data.series_view(_store(request), f)
    return _render(
        request,
        "series.html",
        "series",
        view=view,
        fields=SERIES_FIELDS,
        shape_text=shape_text,
        page_size=data.CATALOG_PAGE,
    )


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request,
    machine: Opt = None,
    org: Opt = None,
    label: Opt = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> HTMLResponse:
    store = _store(request)
    runs = store.runs.find(machine=machine, org=org, label=label, limit=limit, offset=offset)
    machines = [m.name for m in store.series.machines()]
    return _render(
        request, "runs.html", "runs", runs=runs, machines=machines, limit=limit, offset=offset
    )


@router.get("/runs/{ref}", response_class=HTMLResponse)
def run_page(request: Request, ref: str, limit: Limit = 500, offset: Offset = 0) -> HTMLResponse:
    run = _store(request).runs.get(ref, limit=limit, offset=offset, samples=False)
    return _render(
        request,
        "run.html",
        "run",
        run=run,
        limit=limit,
        offset=offset,
        results=sorted(run.results, key=result_order),
    )


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request,
    status: Opt = None,
    machine: Opt = None,
    operator: Opt = None,
    direction: Opt = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> HTMLResponse:
    store = _store(request)
    rows = store.alerts.find(
        status=status,
        machine=machine,
        operator=operator,
        direction=direction,
        limit=limit,
        offset=offset,
    )
    return _render(
        request,
        "alerts.html",
        "alerts",
        alerts=rows,
        limit=limit,
        offset=offset,
        statuses=ALERT_STATUSES,
    )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: int) -> HTMLResponse:
    v = data.alert_view(_store(request), known_id(alert_id, "alert"))
    return _render(
        request,
        "alert.html",
        "alert",
        v=v,
        statuses=("confirmed", "acknowledged", "false_positive", "fixed", "new"),
    )


@router.get("/codegen", response_class=HTMLResponse)
def codegen_page(
    request: Request,
    limit: Limit = 50,
    offset: Offset = 0,
) -> HTMLResponse:
    rows = _store(request).reports.codegen_page(limit=limit, offset=offset)
    return _render(
        request,
        "reports.html",
        "codegen",
        reports=rows,
        kind="codegen",
        title="Blast radius",
        limit=limit,
        offset=offset,
        a_name="Environment A",
        b_name="Environment B",
        extra_name="Targets",
        headlines=[str(r.summary.get("headline") or "") for r in rows],
    )


@router.get("/codegen/{ref}", response_class=HTMLResponse)
def codegen_detail(request: Request, ref: str) -> HTMLResponse:
    r = _store(request).reports.codegen_detail(ref)
    doc = dict(r.document or {"results": r.rows})
    doc.setdefault("summary", r.summary)
    b = html_view(blast_from_json(doc))
    return _render(request, "codegen_report.html", "codegen", r=r, b=b)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    limit: Limit = 50,
    offset: Offset = 0,
) -> HTMLResponse:
    rows = _store(request).reports.comparison_page(limit=limit, offset=offset)
    return _render(
        request,
        "reports.html",
        "compare",
        reports=rows,
        kind="comparisons",
        title="A/B comparisons",
        limit=limit,
        offset=offset,
        a_name="A",
        b_name="B",
        extra_name="Kind",
        headlines=[comparison_view(r.summary, [])["headline"] for r in rows],
    )


@router.get("/compare/{ref}", response_class=HTMLResponse)
def compare_detail(request: Request, ref: str) -> HTMLResponse:
    r = _store(request).reports.comparison_detail(ref)
    v = comparison_view(r.summary, r.rows)
    return _render(request, "compare_report.html", "compare", r=r, v=v)


@router.get("/views", response_class=HTMLResponse)
def views_page(request: Request) -> HTMLResponse:
    return _render(
        request, "views.html", "views", views=_store(request).access.views(), pages=PAGES
    )


@router.get("/view", response_class=HTMLResponse)
def open_view(request: Request, name: str) -> Any:
    from fastapi.responses import RedirectResponse

    v = _store(request).access.get_view(name)
    if v.page not in PAGES or v.page in ("run", "alert"):
        raise NotFoundError(f"saved view {name!r} points at an unknown page {v.page!r}")
    path = "/" if v.page == "overview" else f"/{v.page}"
    return RedirectResponse(f"{path}?{v.query}" if v.query else path, status_code=303)
