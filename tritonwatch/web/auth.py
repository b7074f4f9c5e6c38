"""Bearer tokens for the write paths: triage and saving views. Reading is public.

A request proves itself with ``Authorization: Bearer <token>``; the Store keeps only the
token's sha256 (``tritonwatch token create`` prints the plaintext once).
"""

from __future__ import annotations

from fastapi import Request

from ..store import Store
from ..store.access import TokenRow


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


def require_token(request: Request, scope: str | None = None) -> TokenRow:
    """The token row of the request, or AuthError saying how to get a token."""
    plaintext = bearer(request)
    if plaintext is None:
        raise AuthError(
            "this action needs a token: send 'Authorization: Bearer <token>' "
            "(create one with `tritonwatch token create`)"
        )
    row = request.app.state.store.access.check_token(plaintext)
    if row is None:
        raise AuthError("the token is unknown or revoked; ask for a new one")
    if scope is not None and scope not in row.scopes:
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
