"""Announcing alerts: group new alerts by the build change that caused them, render them with
:mod:`tritonwatch.report.notify`, and post the payload to a webhook.

The only module that sends notifications; ``tritonwatch notify`` and ``nightly`` call it.
Detection itself (:mod:`tritonwatch.analysis.detect`) files alerts and sends nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from .errors import RemoteError, UsageError
from .naming import build_change_text
from .report import notify as render
from .store import Store
from .store.alerts import AlertRow

FORMATS = ("markdown", "slack", "discord", "github-issue")


@dataclass(frozen=True)
class AlertGroup:
    """Alerts caused by one build change (last good build -> first bad build), worst first."""

    title: str
    changes: dict[str, dict[str, Any]]
    alerts: list[AlertRow]


@dataclass(frozen=True)
class Notification:
    """Alerts to announce, grouped by build change, the group with the worst alert first."""

    groups: list[AlertGroup]
    fixed: list[AlertRow] = field(default_factory=list)  # alerts detect closed as fixed

    @property
    def alert_ids(self) -> list[int]:
        return [a.id for g in self.groups for a in g.alerts]

    def only(self, alert_ids: set[int]) -> Notification:
        """The same groups holding only the given alerts (empty groups dropped)."""
        groups = [
            AlertGroup(g.title, g.changes, [a for a in g.alerts if a.id in alert_ids])
            for g in self.groups
        ]
        return Notification([g for g in groups if g.alerts], fixed=self.fixed)


@dataclass(frozen=True)
class NotifyResult:
    """What `notify` rendered and, with a webhook, what the receiver answered."""

    notification: Notification
    text: str
    posted: bool
    status_code: int | None


@dataclass(frozen=True)
class Delivery:
    """What a webhook answered: ``error`` is None when it took the payload."""

    status_code: int | None  # None: no answer at all
    error: str | None  # "HTTP 500", or the transport error's name
    detail: str  # the receiver's answer (cut short) or the transport error's text


def _severity_key(a: AlertRow) -> tuple[bool, float]:
    return (a.direction != "regression", -a.severity)


def group_alerts(rows: list[AlertRow]) -> Notification:
    """Alerts grouped by build change, most severe first within and across groups."""
    groups: dict[str, list[AlertRow]] = {}
    for a in rows:
        groups.setdefault(build_change_text(a.last_good_build, a.first_bad_build), []).append(a)
    out = []
    for title, alerts in groups.items():
        alerts.sort(key=_severity_key)
        changes = {
            k: v
            for k, v in (alerts[0].details.get("changes") or {}).items()
            if k not in ("triton", "triton commit")
        }
        out.append(AlertGroup(title=title, changes=changes, alerts=alerts))
    out.sort(key=lambda g: _severity_key(g.alerts[0]))
    return Notification(groups=out)


def notification(
    store: Store, *, status: str = "new", machine: str | None = None, since: datetime | None = None
) -> Notification:
    """The alerts with ``status`` (filed at or after ``since``), grouped by build change, and the
    alerts that detect closed as fixed (since ``since``)."""
    n = group_alerts(store.alerts.find(status=status, machine=machine, created_since=since))
    fixed = [
        a
        for a in store.alerts.find(status="fixed", machine=machine)
        if (a.details or {}).get("fixed") and (since is None or a.updated_at >= since)
    ]
    return Notification(groups=n.groups, fixed=fixed)


def payload(n: Notification, fmt: str, base_url: str | None) -> tuple[str, dict[str, Any]]:
    """The text a person reads and the JSON a webhook receives, for ``fmt``.

    Slack and Discord webhooks take the JSON of their format; for markdown and github-issue a
    webhook receives ``{"text": markdown}`` (what Slack-compatible receivers such as Mattermost
    and Rocket.Chat accept).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use markdown, slack, discord or github-issue")
    if fmt == "markdown":
        text = render.markdown(n, base_url)
        return text, {"text": text}
    body = {
        "slack": render.slack,
        "discord": render.discord,
        "github-issue": render.github_issue,
    }[fmt](n, base_url)
    text = json.dumps(body, indent=2)
    return text, ({"text": body["body"]} if fmt == "github-issue" else body)


def send(webhook: str, body: dict[str, Any], *, timeout: float = 10.0) -> Delivery:
    """POST ``body`` to ``webhook`` once; never raises for what the receiver does."""
    try:
        resp = httpx.post(webhook, json=body, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as e:
        return Delivery(status_code=None, error=type(e).__name__, detail=str(e))
    error = f"HTTP {resp.status_code}" if resp.status_code >= 400 else None
    return Delivery(status_code=resp.status_code, error=error, detail=resp.text[:200])


def notify(
    store: Store,
    *,
    fmt: str,
    webhook: str | None = None,
    base_url: str | None = None,
    status: str = "new",
    machine: str | None = None,
    since: datetime | None = None,
    timeout: float = 10.0,
) -> NotifyResult:
    """Render the alerts with ``status`` as ``fmt``; with ``webhook``, POST the payload there."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use markdown, slack, discord or github-issue")
    n = notification(store, status=status, machine=machine, since=since)
    text, body = payload(n, fmt, base_url)
    if not webhook:
        return NotifyResult(notification=n, text=text, posted=False, status_code=None)
    if not webhook.startswith(("http://", "https://")):
        raise UsageError(f"webhook {webhook!r} is not an http(s) URL")
    if not n.groups and not n.fixed:
        return NotifyResult(notification=n, text=text, posted=False, status_code=None)
    got = send(webhook, body, timeout=timeout)
    if got.status_code is None:
        raise RemoteError(f"cannot post to the webhook: {got.detail}")
    if got.error:
        raise RemoteError(f"the webhook answered {got.status_code}: {got.detail}")
    return NotifyResult(notification=n, text=text, posted=True, status_code=got.status_code)
