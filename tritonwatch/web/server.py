"""Running the dashboard app under uvicorn (what `tritonwatch serve` calls).

uvicorn closes a connection that idles between requests (``keep_alive_s``) but has no deadline
for the first request's headers: a client that connects and sends nothing, or half a header,
holds its socket for good. The protocol from :func:`_protocol` gives every request head (a new
connection's first, and each one after) ``header_timeout_s`` to arrive; the body has its own
deadline (``body_timeout_s``, :class:`tritonwatch.web.app.BodyDeadline`).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

from .. import settings
from ..errors import UsageError
from ..store import Store

# Largest request line plus headers h11 buffers before answering 431 (uvicorn's default, kept
# explicit here: a header section larger than this is an attack, not a client).
MAX_HEADER_BYTES = 16 * 1024


def _protocol(header_timeout_s: float) -> type[Any]:
    """uvicorn's h11 protocol with a deadline for each request's head (line and headers)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class _DeadlineH11(H11Protocol):
        # uvicorn's own keep-alive timer is cancelled by any byte received, so half a header
        # would hold the connection; this timer is cancelled only by a complete request head.
        _head_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE:
                self.timeout_keep_alive_handler()  # closes the connection, as uvicorn does

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return _DeadlineH11


def serve(db: str, *, host: str, port: int, log_level: str = "info") -> None:
    """Open the Store (creating the schema if needed), then serve until interrupted."""
    import uvicorn

    from .app import create_app

    if not 0 < port < 65536:
        raise UsageError(f"port {port} is out of range; use 1 to 65535")
    try:  # a clear one-line error instead of uvicorn's traceback when the port is taken
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            hint = "something else listens there; pass another --port"
        elif e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            hint = f"this machine has no address {host}; pass --host 127.0.0.1 (or 0.0.0.0 for all)"
        elif e.errno == errno.EACCES:
            hint = "ports below 1024 need root; pass a --port above 1023"
        else:
            hint = "pass another --host or --port"
        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror}); {hint}") from None
    store = Store.open(db)
    app = create_app(store)
    print(
        f"tritonwatch serving {store.url} on http://{host}:{port}/ (API docs at /docs)", flush=True
    )
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=log_level == "debug",
            http=_protocol(float(settings.get("header_timeout_s"))),
            timeout_keep_alive=max(1, round(float(settings.get("keep_alive_s")))),
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        )
    finally:
        store.close()
