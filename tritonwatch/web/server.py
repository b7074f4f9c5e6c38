"""Running the dashboard app under uvicorn (what `tritonwatch serve` calls)."""

from __future__ import annotations

import errno
import socket

from ..errors import UsageError
from ..store import Store


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
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")
    finally:
        store.close()
