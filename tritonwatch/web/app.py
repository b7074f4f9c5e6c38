"""The FastAPI app factory: dashboard pages, the JSON API under /api/v1, static files.

``create_app(store_or_url)`` builds one app on one Store. Everything is served locally: Plotly's
JavaScript comes from the installed ``plotly`` package and ``/docs`` is a page of our own that
reads ``/openapi.json`` (FastAPI's default Swagger UI loads from a CDN, which an offline GPU host
cannot reach). Errors are JSON ``{"error": message}`` under /api and an error page elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import plotly
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, settings
from ..errors import NotFoundError, TritonwatchError
from ..store import Store
from .auth import AuthError
from .templating import templates

HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _status_of(exc: Exception) -> int:
    if isinstance(exc, AuthError):
        return exc.status
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code
    return 400


def _message(exc: Exception) -> str:
    if isinstance(exc, DataError):
        # A value the database cannot hold (a NUL byte, a number out of range) is bad input.
        return "invalid value: the database cannot store it (" + str(exc.orig).splitlines()[0] + ")"
    if isinstance(exc, StarletteHTTPException):
        return str(exc.detail)
    if isinstance(exc, RequestValidationError):
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return "invalid request: " + "; ".join(parts)
    return str(exc)


def _error_response(request: Request, exc: Exception) -> Response:
    status = 422 if isinstance(exc, RequestValidationError) else _status_of(exc)
    message = _message(exc)
    # Headers the exception carries stay on the answer: a 405's Allow, a 429's Retry-After.
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if (
        request.url.path.startswith("/api/")
        or "application/json" in request.headers.get("accept", "")
        and "text/html" not in request.headers.get("accept", "")
    ):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": message, "page": "error"},
        status_code=status,
        headers=headers,
    )


# Defence in depth behind the escaping: only our own scripts run (the JSON data tags are not
# executed), nothing loads from elsewhere. Plotly needs inline styles and data:/blob: images
# (its PNG download).
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class ServerTiming:
    """ASGI middleware adding ``Server-Timing: app;dur=MS`` and the security headers.

    The time from request to response headers, so browsers' dev tools and the web benchmark can
    tell server time from network time.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def send_timed(message: Any) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - start) * 1000
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"server-timing", f"app;dur={ms:.2f}".encode()),
                    *SECURITY_HEADERS,
                ]
            await send(message)

        await self.app(scope, receive, send_timed)


class BodyDeadline:
    """ASGI middleware: a request's body must arrive within ``seconds`` of its first read.

    A client that trickles its body (or stops sending) is answered 408 instead of holding a
    connection and a worker for as long as it likes; ``push`` retries a 408. Reads after the
    body is complete (waiting for a disconnect) have no deadline.
    """

    def __init__(self, app: Any, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline: float | None = None
        done = False

        async def receive_in_time() -> Any:
            nonlocal deadline, done
            if done:
                return await receive()
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.seconds
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"the request body did not arrive within {self.seconds:g} s "
                    "(setting body_timeout_s); send it again",
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        await self.app(scope, receive_in_time, send)


class RefuseNul:
    """ASGI middleware: 400 for a path or query string that holds a NUL character (``%00``).

    PostgreSQL text cannot hold NUL (it answered 400 from the driver) while SQLite compared it
    (and answered 200 with nothing found): refused here, both backends answer the same.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (
            b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", "")
        ):
            exc = StarletteHTTPException(400, "NUL characters (%00) are not allowed in a URL")
            response = _error_response(Request(scope), exc)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(store: str | Store) -> FastAPI:
    """The dashboard and API app for a Store or a database URL (opened now, closed on shutdown)."""
    owned = isinstance(store, str)
    st = Store.open(store) if isinstance(store, str) else store

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            st.close()

    app = FastAPI(
        title="tritonwatch",
        version=__version__,
        lifespan=lifespan,
        description="Continuous performance engineering for Triton kernels: runs, results, "
        "series, alerts, blast-radius reports, comparisons and saved views. "
        "Reading is public; every write needs `Authorization: Bearer` with a token of its "
        "scope (upload, triage or views).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.store = st
    app.add_middleware(BodyDeadline, seconds=float(settings.get("body_timeout_s")))
    app.add_middleware(RefuseNul)
    app.add_middleware(ServerTiming)

    for exc_type in (
        TritonwatchError,
        AuthError,
        StarletteHTTPException,
        RequestValidationError,
        DataError,
    ):
        app.add_exception_handler(exc_type, _error_response)

    from .api import router as api_router
    from .upload import router as upload_router
    from .views import router as views_router

    app.include_router(api_router)
    app.include_router(upload_router)
    app.include_router(views_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(
            PLOTLY_JS,
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs(request: Request) -> Any:
        return templates.TemplateResponse(request, "docs.html", {"page": "docs"})

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
