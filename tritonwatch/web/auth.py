"""Bearer tokens for the write paths: uploads, triage and saving views. Reading is public.

A request proves itself with ``Authorization: Bearer <token>``; the Store keeps only the
token's sha256 (``tritonwatch token create`` prints the plaintext once). Every write route needs
one scope: it declares it with ``dependencies=[needs(scope)]`` (which puts it in the OpenAPI
document as ``security: [{"bearer": [scope]}]``) and checks it with ``require_token``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Security
from fastapi.security import HTTPBearer

from ..store import Store
from ..store.access import TokenRow

# Declared only: it parses the header and never refuses, so each route keeps its own order of
# checks (the upload route looks at Content-Length before it asks the database about a token).
BEARER = HTTPBearer(
    scheme_name="bearer",
    auto_error=False,
    description="A token from `tritonwatch token create ORG NAME --scope SCOPE`; each write "
    "names the scope it needs (upload, triage or views).",
)


def needs(scope: str) -> Any:
    """The OpenAPI declaration of a route that needs a token with ``scope``."""
    return Security(BEARER, scopes=[scope])


class AuthError(Exception):
    """A write without a valid token (401) or without the needed scope (403)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require_token(request: Request, scope: str) -> TokenRow:
    """The token row of the request if it has ``scope``, or AuthError saying what is missing."""
    plaintext = bearer(request)
    if plaintext is None:
        raise AuthError(
            "this action needs a token: send 'Authorization: Bearer <token>' "
            "(create one with `tritonwatch token create`)"
        )
    row = request.app.state.store.access.check_token(plaintext)
    if row is None:
        raise AuthError("the token is unknown or revoked; ask for a new one")
    if scope not in row.scopes:
        raise AuthError(f"the token {row.actor} lacks the {scope!r} scope", status=403)
    return row


def require_alert_org(store: Store, alert_id: int, token: TokenRow) -> None:
    """Refuse (403) triage of an alert that belongs to another organisation than the token's.

    Alerts on runs without an organisation (imported locally by the server's operator) belong
    to nobody and may be triaged by any token with the triage scope. A missing alert is left to
    the caller's 404.
    """
    owner = store.alerts.org_of(alert_id)
    if owner is not None and owner != token.org:
        raise AuthError(
            f"alert {alert_id} belongs to organisation {owner!r}; the token {token.actor} "
            f"may triage only the alerts of organisation {token.org}",
            status=403,
        )
