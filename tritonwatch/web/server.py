"""Running the dashboard app under uvicorn (what `tritonwatch serve` calls)."""

from __future__ import annotations

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
        raise UsageError(
            f"cannot listen on {host}:{port} ({e.strerror}); pass another --port"
        ) from None
    store = Store.open(db)
    app = create_app(store)
    print(
        f"tritonwatch serving {store.url} on http://{host}:{port}/ (API docs at /docs)", flush=True
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")
    finally:
        store.close()
