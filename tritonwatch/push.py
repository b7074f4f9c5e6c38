"""Pushing local runs to a tritonwatch server (the runner side of the fleet).

The spool is the local database itself: every run without a ``pushes`` row for the server is
sent, oldest first, as one ``tritonwatch.run/1`` document per request. A run is marked as
pushed only after the server answered 200 or 201 naming that run, so a push that is killed,
times out or loses the connection sends the run again next time, and the server's idempotency by
run UUID makes the resend harmless. Safe to re-run at any time.

Connection errors, timeouts, 5xx, 408 and 429 are retried with exponential backoff and jitter
(never sooner than ``Retry-After`` says, up to the backoff cap); when one run still cannot be
delivered the push stops and the rest stay spooled. A refused run (any other 4xx, e.g. 403 for another
organisation's run, 413 too large, 422 invalid) stays spooled and is reported; the others go on.
A refused token (401) stops the push.

Runners only connect out: nothing here listens, follows redirects (which could carry the token to
another host), or executes anything the server answers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from . import __version__
from .errors import RemoteError, UsageError
from .formats import run1
from .store import Store
from .store.pushes import PendingRun, server_key

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class PushOptions:
    """How hard to try: attempts per run, backoff in seconds (doubled each try, capped)."""

    attempts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise UsageError("--retries must be at least 0")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.timeout_s <= 0:
            raise UsageError("--backoff must be >= 0 and --timeout > 0")


@dataclass(frozen=True)
class RunPush:
    """What happened to one run: created, existing (already on the server), refused or failed."""

    uuid: str
    outcome: str
    status: int | None
    message: str
    attempts: int


@dataclass
class PushReport:
    server: str
    runs: list[RunPush] = field(default_factory=list)
    left: int = 0  # runs still spooled because the push stopped early
    stopped: str | None = None  # why the push stopped early

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.runs if r.outcome == outcome)

    @property
    def accepted(self) -> int:
        return self.count("created") + self.count("existing")

    @property
    def pending(self) -> int:
        """Runs still in the spool after this push (refused, failed or never tried)."""
        return self.count("refused") + self.count("failed") + self.left

    @property
    def complete(self) -> bool:
        return self.pending == 0


Progress = Callable[[PendingRun, int, int], None]
Sleep = Callable[[float], None]


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def _delay(opts: PushOptions, attempt: int, retry_after: str | None) -> float:
    """Exponential backoff with jitter; never sooner than the server's ``Retry-After`` (a
    jittered wait below it would only earn another 429), up to the backoff cap."""
    wait = min(opts.max_backoff_s, opts.backoff_s * (2**attempt)) * (0.5 + random.random() / 2)
    if retry_after and retry_after.strip().isascii() and retry_after.strip().isdigit():
        asked = float(retry_after) * (1 + random.random() / 10)
        wait = min(opts.max_backoff_s, max(wait, asked))
    return wait


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200].strip() or resp.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"][:500]
    return str(body)[:200]


def _send_one(
    client: httpx.Client,
    url: str,
    run: PendingRun,
    body: bytes,
    opts: PushOptions,
    sleep: Sleep,
) -> RunPush:
    last = "no attempt made"
    status: int | None = None
    retry_after: str | None = None
    for attempt in range(opts.attempts):
        if attempt:
            sleep(_delay(opts, attempt - 1, retry_after))
        retry_after = None
        try:
            resp = client.post(url, content=body)
        except httpx.TransportError as e:
            last, status = f"cannot reach the server ({type(e).__name__}: {e})", None
            continue
        status = resp.status_code
        if status in (200, 201):
            try:
                answer = resp.json()
            except ValueError:
                answer = None
            if not isinstance(answer, dict) or answer.get("run") != run.uuid:
                last = "the server's answer does not name the run; is this a tritonwatch server?"
                continue
            return RunPush(
                run.uuid, "created" if status == 201 else "existing", status, "", attempt + 1
            )
        last = f"HTTP {status}: {_message(resp)}"
        if status in RETRY_STATUS:
            retry_after = resp.headers.get("retry-after")
            continue
        if status == 401:
            raise RemoteError(
                f"the server refused the token ({last}); check --token or "
                "TRITONWATCH_TOKEN (`tritonwatch token create` on the server)"
            )
        return RunPush(run.uuid, "refused", status, last, attempt + 1)
    return RunPush(run.uuid, "failed", status, last, opts.attempts)


def push(
    store: Store,
    server: str,
    token: str,
    options: PushOptions | None = None,
    *,
    progress: Progress | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Sleep = time.sleep,
) -> PushReport:
    """Send every local run ``server`` has not accepted yet; see the module docstring."""
    opts = options or PushOptions()
    if not token or not token.strip():
        raise UsageError(
            "pushing needs a token: pass --token or set TRITONWATCH_TOKEN "
            "(create one on the server with `tritonwatch token create`)"
        )
    key = server_key(server)
    report = PushReport(server=key)
    todo = store.pushes.pending(key)
    headers = {
        "Authorization": f"Bearer {token.strip()}",
        "Content-Type": "application/json",
        "User-Agent": f"tritonwatch/{__version__}",
    }
    with httpx.Client(
        headers=headers,
        timeout=opts.timeout_s,
        follow_redirects=False,
        transport=transport,
    ) as client:
        for i, run in enumerate(todo):
            if progress is not None:
                progress(run, i, len(todo))
            doc = run1.document(store, run.uuid)
            body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
            result = _send_one(client, f"{key}/api/v1/runs", run, body, opts, sleep)
            report.runs.append(result)
            if result.outcome in ("created", "existing"):
                store.pushes.mark(run.id, key)
            elif result.outcome == "failed":
                report.left = len(todo) - i - 1
                report.stopped = result.message
                break
    return report
