"""Alerts and their triage history, as ``store.alerts``, and the rules every layer shares about
them: the statuses, the directions and the severity of a change.

An alert is keyed by (series, machine, first bad run), so filing the same change twice updates
one row instead of creating a second. The bulk reads detect needs are in ``history.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, case, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import aliased

from ..errors import NotFoundError, UsageError
from . import schema as s
from .database import Database
from .limits import checked_offset
from .rows import series_fields, utc

ALERT_STATUSES = ("new", "confirmed", "acknowledged", "false_positive", "fixed")
AlertStatus = Literal["new", "confirmed", "acknowledged", "false_positive", "fixed"]
# Statuses of an alert someone still has to act on (the overview lists these).
OPEN_ALERT_STATUSES = ("new", "confirmed", "acknowledged")
DIRECTIONS = ("regression", "improvement")
# Severity classes by the size of the change: at least 25% is critical, at least 10% major.
SEVERITY_CLASSES = (("critical", 1.25), ("major", 1.10), ("minor", 0.0))


def change_factor(ratio: float | None) -> float:
    """The size of a change as a factor >= 1 whichever way it went (1.10 for +10% or -9.1%)."""
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return 1.0
    return max(ratio, 1.0 / ratio)


def severity_class(ratio: float | None) -> str:
    """critical (>= 25% change), major (>= 10%), minor otherwise."""
    factor = change_factor(ratio)
    return next(name for name, at in SEVERITY_CLASSES if factor >= at)


@dataclass(frozen=True)
class AlertRow:
    """One alert: the series and machine, the change (last good -> first bad), its size and state."""

    id: int
    status: str
    direction: str
    operator: str
    provider: str
    variant: str
    shape: dict[str, Any]
    dtype: str
    mode: str
    metric: str
    unit: str
    machine: str
    machine_id: int
    series_id: int
    last_good_run: str
    first_bad_run: str
    last_good_build: dict[str, Any]
    first_bad_build: dict[str, Any]
    ratio: float
    ci: tuple[float, float] | None
    p: float | None
    q: float | None
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    better: str = "lower"
    last_good_at: datetime | None = None
    first_bad_at: datetime | None = None
    gpu_model: str | None = None

    @property
    def severity(self) -> float:
        """Size of the change as a factor >= 1 (1.10 for a 10% change either way)."""
        return change_factor(self.ratio)

    @property
    def severity_class(self) -> str:
        """critical, major or minor (see :func:`severity_class`)."""
        return severity_class(self.ratio)

    def to_json(self) -> dict[str, Any]:
        """The fields `tritonwatch alerts --format json` prints, in the documented order."""
        return {
            "id": self.id,
            "status": self.status,
            "direction": self.direction,
            "operator": self.operator,
            "provider": self.provider,
            "variant": self.variant,
            "shape": self.shape,
            "dtype": self.dtype,
            "mode": self.mode,
            "metric": self.metric,
            "machine": self.machine,
            "last_good_run": self.last_good_run,
            "first_bad_run": self.first_bad_run,
            "last_good_build": self.last_good_build,
            "first_bad_build": self.first_bad_build,
            "ratio": self.ratio,
            "ci": list(self.ci) if self.ci else None,
            "p": self.p,
            "q": self.q,
        }


@dataclass(frozen=True)
class AlertEvent:
    """One triage step: who changed the status, when, from what to what, and why."""

    at: datetime
    actor: str
    old_status: str | None
    new_status: str
    note: str | None


@dataclass(frozen=True)
class AlertDraft:
    """What `detect` found for one series: an alert to create, or to update when ``alert_id``."""

    series_id: int
    machine_id: int
    last_good_run_id: int
    first_bad_run_id: int
    direction: str
    ratio: float
    ci_low: float | None
    ci_high: float | None
    p: float | None
    q: float | None
    details: dict[str, Any] = field(default_factory=dict)
    org_id: int | None = None
    alert_id: int | None = None


@dataclass(frozen=True)
class UpsertResult:
    """Alert ids that ``store.alerts.upsert`` created, changed, or found already as they were.

    ``ids`` and ``actions`` follow the order of the drafts.
    """

    created: list[int]
    updated: list[int]
    unchanged: list[int]
    ids: list[int] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExistingAlert:
    """The keys detect needs to match a new finding against an alert already filed."""

    id: int
    series_id: int
    machine_id: int
    direction: str
    status: str
    first_bad_run_id: int
    first_bad_at: datetime | None


def _num_equal(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


class Alerts:
    """``store.alerts``: find, read, triage, and file (``upsert``) alerts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading alerts ------------------------------------------------------------------
    @staticmethod
    def _query() -> Select[Any]:
        lg_run, fb_run = aliased(s.runs), aliased(s.runs)
        lg_b, fb_b = aliased(s.builds), aliased(s.builds)
        a = s.alerts
        return (
            select(
                a,
                s.series.c.operator,
                s.series.c.provider,
                s.series.c.variant,
                s.series.c.shape,
                s.series.c.dtype,
                s.series.c.mode,
                s.series.c.metric,
                s.series.c.unit,
                s.series.c.better,
                s.machines.c.name.label("machine"),
                s.machines.c.gpu_model,
                lg_run.c.uuid.label("lg_uuid"),
                lg_run.c.started_at.label("lg_at"),
                fb_run.c.uuid.label("fb_uuid"),
                fb_run.c.started_at.label("fb_at"),
                lg_b.c.triton_version.label("lg_tv"),
                lg_b.c.triton_commit.label("lg_tc"),
                lg_b.c.torch_version.label("lg_torch"),
                fb_b.c.triton_version.label("fb_tv"),
                fb_b.c.triton_commit.label("fb_tc"),
                fb_b.c.torch_version.label("fb_torch"),
            )
            .join(s.series, s.series.c.id == a.c.series_id)
            .join(s.machines, s.machines.c.id == a.c.machine_id)
            .join(lg_run, lg_run.c.id == a.c.last_good_run_id)
            .join(fb_run, fb_run.c.id == a.c.first_bad_run_id)
            .join(lg_b, lg_b.c.id == lg_run.c.build_id)
            .join(fb_b, fb_b.c.id == fb_run.c.build_id)
        )

    @staticmethod
    def _row(r: RowMapping) -> AlertRow:
        ci = None
        if r["ci_low"] is not None and r["ci_high"] is not None:
            ci = (float(r["ci_low"]), float(r["ci_high"]))
        return AlertRow(
            id=int(r["id"]),
            status=r["status"],
            direction=r["direction"],
            **series_fields(r),
            machine=r["machine"],
            machine_id=int(r["machine_id"]),
            series_id=int(r["series_id"]),
            last_good_run=r["lg_uuid"],
            first_bad_run=r["fb_uuid"],
            last_good_build={
                "triton_version": r["lg_tv"],
                "triton_commit": r["lg_tc"],
                "torch_version": r["lg_torch"],
            },
            first_bad_build={
                "triton_version": r["fb_tv"],
                "triton_commit": r["fb_tc"],
                "torch_version": r["fb_torch"],
            },
            ratio=float(r["ratio"]),
            ci=ci,
            p=r["p"],
            q=r["q"],
            details=r["details"] or {},
            created_at=_utc(r["created_at"]),
            updated_at=_utc(r["updated_at"]),
            better=r["better"],
            last_good_at=utc(r["lg_at"]),
            first_bad_at=utc(r["fb_at"]),
            gpu_model=r["gpu_model"],
        )

    def find(
        self,
        *,
        status: str | Sequence[str] | None = None,
        machine: str | None = None,
        operator: str | None = None,
        direction: str | None = None,
        provider: str | None = None,
        series_id: int | None = None,
        machine_id: int | None = None,
        created_since: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[AlertRow]:
        """Alerts matching the filters, most severe first (regressions before improvements).

        ``status`` is one status or several; severity is the size of the change as a factor.
        """
        q = self._query()
        if status:
            wanted = [status] if isinstance(status, str) else list(status)
            for st in wanted:
                _check_status(st)
            q = q.where(s.alerts.c.status.in_(wanted))
        if direction:
            if direction not in DIRECTIONS:
                raise UsageError(
                    f"unknown direction {direction!r}; use one of: {', '.join(DIRECTIONS)}"
                )
            q = q.where(s.alerts.c.direction == direction)
        if machine:
            q = q.where(s.machines.c.name == machine)
        if operator:
            q = q.where(s.series.c.operator == operator)
        if provider:
            q = q.where(s.series.c.provider == provider)
        if series_id is not None:
            q = q.where(s.alerts.c.series_id == series_id)
        if machine_id is not None:
            q = q.where(s.alerts.c.machine_id == machine_id)
        if created_since is not None:
            q = q.where(s.alerts.c.created_at >= created_since)
        ratio = s.alerts.c.ratio
        severity = case((ratio >= 1.0, ratio), else_=1.0 / ratio)
        q = q.order_by(
            case((s.alerts.c.direction == "regression", 0), else_=1),
            severity.desc(),
            s.alerts.c.id.desc(),
        ).offset(checked_offset(offset))
        if limit is not None:
            q = q.limit(limit)
        with self.db.connect() as conn:
            return [self._row(r) for r in conn.execute(q).mappings()]

    def get(self, alert_id: int) -> AlertRow:
        """One alert by id; NotFoundError when there is none."""
        with self.db.connect() as conn:
            r = conn.execute(self._query().where(s.alerts.c.id == int(alert_id))).mappings().first()
        if r is None:
            raise NotFoundError(f"no alert {alert_id}; `tritonwatch alerts` lists them")
        return self._row(r)

    def history(self, alert_id: int) -> list[AlertEvent]:
        """The triage history of an alert, oldest first."""
        self.get(alert_id)
        q = (
            select(s.alert_events)
            .where(s.alert_events.c.alert_id == int(alert_id))
            .order_by(s.alert_events.c.at, s.alert_events.c.id)
        )
        with self.db.connect() as conn:
            return [
                AlertEvent(
                    at=_utc(r["at"]),
                    actor=r["actor"],
                    old_status=r["old_status"],
                    new_status=r["new_status"],
                    note=r["note"],
                )
                for r in conn.execute(q).mappings()
            ]

    def org_of(self, alert_id: int) -> str | None:
        """The organisation an alert belongs to (None: filed on a run without one, or no alert)."""
        if not 0 < alert_id < 2**63:  # no such id can exist; PostgreSQL would refuse the query
            raise NotFoundError(f"no alert {alert_id}; `tritonwatch alerts` lists them")
        q = (
            select(s.orgs.c.name)
            .select_from(s.alerts.outerjoin(s.orgs, s.orgs.c.id == s.alerts.c.org_id))
            .where(s.alerts.c.id == int(alert_id))
        )
        with self.db.connect() as conn:
            return conn.execute(q).scalar()

    # -- triage --------------------------------------------------------------------------
    def set_status(
        self, alert_id: int, status: str, *, actor: str, note: str | None = None
    ) -> AlertRow:
        """Change an alert's status and record who did it, when and why."""
        _check_status(status)
        if not actor or not actor.strip():
            raise UsageError("an actor is needed to change an alert's status; pass --actor NAME")
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            old = conn.execute(
                select(s.alerts.c.status).where(s.alerts.c.id == int(alert_id))
            ).scalar()
            if old is None:
                raise NotFoundError(f"no alert {alert_id}; `tritonwatch alerts` lists them")
            conn.execute(
                s.alerts.update()
                .where(s.alerts.c.id == int(alert_id))
                .values(status=status, updated_at=now)
            )
            conn.execute(
                s.alert_events.insert().values(
                    alert_id=int(alert_id),
                    at=now,
                    actor=actor.strip()[:200],
                    old_status=old,
                    new_status=status,
                    note=note,
                )
            )
        return self.get(alert_id)

    # -- writing (detect) ----------------------------------------------------------------
    def existing(self, pairs: Iterable[tuple[int, int]] | None = None) -> list[ExistingAlert]:
        """Alerts already filed, for detect to match new findings against (all when no pairs)."""
        q = select(
            s.alerts.c.id,
            s.alerts.c.series_id,
            s.alerts.c.machine_id,
            s.alerts.c.direction,
            s.alerts.c.status,
            s.alerts.c.first_bad_run_id,
            s.runs.c.started_at,
        ).join(s.runs, s.runs.c.id == s.alerts.c.first_bad_run_id)
        wanted = set(pairs) if pairs is not None else None
        with self.db.connect() as conn:
            rows = conn.execute(q).all()
        out = [
            ExistingAlert(
                id=int(r[0]),
                series_id=int(r[1]),
                machine_id=int(r[2]),
                direction=r[3],
                status=r[4],
                first_bad_run_id=int(r[5]),
                first_bad_at=utc(r[6]),
            )
            for r in rows
        ]
        if wanted is not None:
            out = [e for e in out if (e.series_id, e.machine_id) in wanted]
        return out

    def upsert(
        self, drafts: Sequence[AlertDraft], *, actor: str = "tritonwatch detect"
    ) -> UpsertResult:
        """Create or update alerts in one transaction; idempotent.

        A draft with ``alert_id`` updates that alert; otherwise the (series, machine, first bad
        run) key decides. Updating changes the numbers and details but never the triage status.
        A new alert gets a first history event from ``actor``.
        """
        created: list[int] = []
        updated: list[int] = []
        unchanged: list[int] = []
        ids: list[int] = []
        actions: list[str] = []
        now = datetime.now(UTC)
        a = s.alerts
        with self.db.begin() as conn:
            for d in drafts:
                if d.direction not in DIRECTIONS:
                    raise UsageError(f"alert direction must be one of {', '.join(DIRECTIONS)}")
                if d.alert_id is not None:
                    cond = a.c.id == d.alert_id
                else:
                    cond = and_(
                        a.c.series_id == d.series_id,
                        a.c.machine_id == d.machine_id,
                        a.c.first_bad_run_id == d.first_bad_run_id,
                    )
                old = conn.execute(select(a).where(cond)).mappings().first()
                values: dict[str, Any] = {
                    "last_good_run_id": d.last_good_run_id,
                    "first_bad_run_id": d.first_bad_run_id,
                    "direction": d.direction,
                    "ratio": float(d.ratio),
                    "ci_low": d.ci_low,
                    "ci_high": d.ci_high,
                    "p": d.p,
                    "q": d.q,
                    "details": d.details,
                }
                if old is None:
                    aid = conn.execute(
                        a.insert()
                        .values(
                            series_id=d.series_id,
                            machine_id=d.machine_id,
                            org_id=d.org_id,
                            status="new",
                            created_at=now,
                            updated_at=now,
                            **values,
                        )
                        .returning(a.c.id)
                    ).scalar_one()
                    conn.execute(
                        s.alert_events.insert().values(
                            alert_id=aid,
                            at=now,
                            actor=actor,
                            old_status=None,
                            new_status="new",
                            note="filed by detect",
                        )
                    )
                    created.append(int(aid))
                    ids.append(int(aid))
                    actions.append("created")
                    continue
                same = all(
                    _num_equal(old[k], values[k])
                    if k in ("ratio", "ci_low", "ci_high", "p", "q")
                    else old[k] == values[k]
                    for k in values
                )
                ids.append(int(old["id"]))
                if same:
                    unchanged.append(int(old["id"]))
                    actions.append("unchanged")
                    continue
                if d.alert_id is not None and (
                    old["first_bad_run_id"] != d.first_bad_run_id
                    and conn.execute(
                        select(a.c.id).where(
                            a.c.series_id == d.series_id,
                            a.c.machine_id == d.machine_id,
                            a.c.first_bad_run_id == d.first_bad_run_id,
                            a.c.id != d.alert_id,
                        )
                    ).first()
                    is not None
                ):
                    unchanged.append(int(old["id"]))  # another alert already holds that key
                    actions.append("unchanged")
                    continue
                conn.execute(a.update().where(a.c.id == old["id"]).values(updated_at=now, **values))
                updated.append(int(old["id"]))
                actions.append("updated")
        return UpsertResult(
            created=created, updated=updated, unchanged=unchanged, ids=ids, actions=actions
        )


def _utc(t: datetime) -> datetime:
    out = utc(t)
    if out is None:
        raise ValueError("a required time is missing")
    return out


def _check_status(status: str) -> None:
    if status not in ALERT_STATUSES:
        raise UsageError(
            f"unknown alert status {status!r}; use one of: {', '.join(ALERT_STATUSES)}"
        )
