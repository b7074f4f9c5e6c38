"""Machines and series, as ``store.series``: the catalog, one series' points, measured peaks.

A series query is one range scan of the index ``results(series_id, machine_id, t)`` joined to
the run and build for hover text; the explorer's catalog is one LIMIT 1 probe per pair.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, not_, select, tuple_

from ..errors import UsageError
from . import schema as s
from .database import Database
from .limits import checked_offset
from .rows import MachineRow, Point, SeriesInfo, decode_samples, key_hash, utc

SERIES_FIELDS = ("operator", "provider", "variant", "shape", "dtype", "mode", "metric")


@dataclass(frozen=True)
class SeriesRef:
    """One series on one machine, as the explorer lists it."""

    series_id: int
    machine_id: int
    machine: str
    operator: str
    provider: str
    variant: str
    shape: str  # canonical JSON
    dtype: str
    mode: str
    metric: str
    unit: str
    better: str

    def listing_key(self) -> tuple[str, ...]:
        """Its place in the listing's order: what ``catalog(after=...)`` continues after."""
        return (
            self.operator,
            self.provider,
            self.variant,
            self.shape,
            self.dtype,
            self.metric,
            self.machine,
        )


# The listing's order; the first six are the series index of schema 3.
LISTING_ORDER = ("operator", "provider", "variant", "shape", "dtype", "metric")


@dataclass(frozen=True)
class SeriesAlert:
    id: int
    series_id: int
    machine_id: int
    t: datetime | None
    run_uuid: str
    ratio: float
    direction: str
    status: str


# Series ids re-read on each update of the filter menus: a transaction that commits after a
# later one (ids are handed out at insert) is still seen unless 20,000 series came between.
FACET_LOOKBACK = 20_000


class Series:
    """``store.series``: machines, the series measured on them, and their points."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._facet_lock = threading.Lock()
        # (newest series id folded in, field -> distinct values)
        self._facet_cache: tuple[int, dict[str, set[str]]] = (0, {})

    def machines(self) -> list[MachineRow]:
        with self.db.connect() as conn:
            return [
                MachineRow.from_row(r)
                for r in conn.execute(select(s.machines).order_by(s.machines.c.name)).mappings()
            ]

    def machine_id(
        self, name: str, device: str, gpu_model: str | None, gpu_count: int | None
    ) -> int | None:
        """The id of a machine by the fields that identify it, or None if it was never stored."""
        key = key_hash([name, device, gpu_model, gpu_count])
        with self.db.connect() as conn:
            return conn.execute(select(s.machines.c.id).where(s.machines.c.key == key)).scalar()

    def set_peaks(
        self,
        name: str,
        device: str,
        gpu_model: str | None,
        gpu_count: int | None,
        peaks: dict[str, Any],
        info: dict[str, Any] | None = None,
    ) -> int:
        """Store measured peaks (``calibrate``) for a machine, creating the machine if needed."""
        key = key_hash([name, device, gpu_model, gpu_count])
        with self.db.writing() as (conn, staged):
            mid = self.db.get_or_create(
                conn,
                s.machines,
                staged.machines,
                "key",
                key,
                {
                    "name": name,
                    "device": device,
                    "gpu_model": gpu_model,
                    "gpu_count": gpu_count,
                    "info": info or {"name": name},
                    "created_at": datetime.now(UTC),
                },
            )
            conn.execute(s.machines.update().where(s.machines.c.id == mid).values(peaks=peaks))
        return mid

    def peaks(
        self, name: str, device: str, gpu_model: str | None, gpu_count: int | None
    ) -> dict[str, Any] | None:
        """Peaks stored by ``calibrate`` for this machine, or None."""
        key = key_hash([name, device, gpu_model, gpu_count])
        with self.db.connect() as conn:
            return conn.execute(select(s.machines.c.peaks).where(s.machines.c.key == key)).scalar()

    def find(
        self,
        *,
        operator: str | None = None,
        provider: str | None = None,
        dtype: str | None = None,
        metric: str | None = None,
        machine: str | None = None,
        limit: int | None = None,
    ) -> list[SeriesInfo]:
        """Series (with the machines they were measured on) that match the filters."""
        q = (
            select(
                s.series,
                s.machines.c.id.label("machine_id"),
                s.machines.c.name.label("machine"),
                func.count().label("points"),
                func.max(s.results.c.t).label("last_t"),
            )
            .join(s.results, s.results.c.series_id == s.series.c.id)
            .join(s.machines, s.machines.c.id == s.results.c.machine_id)
            .group_by(s.series.c.id, s.machines.c.id, s.machines.c.name)
            .order_by(s.series.c.operator, s.series.c.provider, s.series.c.id, s.machines.c.name)
        )
        for col, val in (
            ("operator", operator),
            ("provider", provider),
            ("dtype", dtype),
            ("metric", metric),
        ):
            if val:
                q = q.where(s.series.c[col] == val)
        if machine:
            q = q.where(s.machines.c.name == machine)
        if limit:
            q = q.limit(limit)
        with self.db.connect() as conn:
            return [SeriesInfo.from_row(r) for r in conn.execute(q).mappings()]

    def points(
        self,
        series_id: int,
        machine_id: int,
        *,
        since: datetime | None = None,
        limit: int = 365,
        with_samples: bool = False,
        ok_only: bool = True,
    ) -> list[Point]:
        """The newest ``limit`` points of one series on one machine, oldest first."""
        cols = [
            s.results.c.t,
            s.results.c.value,
            s.results.c.ci_low,
            s.results.c.ci_high,
            s.results.c.status,
            s.results.c.n,
            s.runs.c.uuid,
            s.runs.c.label,
            s.builds.c.id.label("build_id"),
            s.builds.c.triton_version,
            s.builds.c.triton_commit,
        ]
        if with_samples:
            cols.append(s.results.c.samples)
        q = (
            select(*cols)
            .join(s.runs, s.runs.c.id == s.results.c.run_id)
            .join(s.builds, s.builds.c.id == s.runs.c.build_id)
            .where(s.results.c.series_id == series_id, s.results.c.machine_id == machine_id)
        )
        if ok_only:
            q = q.where(s.results.c.status == "ok")
        if since:
            q = q.where(s.results.c.t >= since)
        q = q.order_by(s.results.c.t.desc()).limit(limit)
        with self.db.connect() as conn:
            rows = list(conn.execute(q).mappings())
        rows.reverse()
        return [
            Point(
                t=utc(r["t"]),
                value=r["value"],
                ci_low=r["ci_low"],
                ci_high=r["ci_high"],
                status=r["status"],
                n=r["n"],
                run_uuid=r["uuid"],
                label=r["label"],
                build_id=r["build_id"],
                triton_version=r["triton_version"],
                triton_commit=r["triton_commit"],
                samples=decode_samples(r["samples"]) if with_samples else None,
            )
            for r in rows
        ]

    # -- the explorer --------------------------------------------------------------------------
    def facets(self, limit: int = 500) -> dict[str, list[str]]:
        """Distinct values of each series field (for filter menus), at most ``limit`` each.

        Series rows are only ever added (nothing deletes them), so the values are kept per Store
        and brought up to date from the newest series (a range of the primary key): a DISTINCT
        over every field of 1 M series took 2 s on PostgreSQL, the update takes milliseconds.
        """
        with self._facet_lock, self.db.connect() as conn:
            seen, known = self._facet_cache
            newest = conn.execute(select(func.max(s.series.c.id))).scalar() or 0
            if newest != seen:
                # Ids are handed out before their transaction commits, so a series with an id
                # below the newest seen may appear later: look back a margin of ids.
                lo = max(0, seen - FACET_LOOKBACK) if seen else 0
                cols = [s.series.c[f] for f in SERIES_FIELDS]
                rows = conn.execute(
                    select(*cols).distinct().where(s.series.c.id > lo, s.series.c.id <= newest)
                )
                for row in rows:
                    for f, v in zip(SERIES_FIELDS, row, strict=True):
                        known.setdefault(f, set()).add(v)
                self._facet_cache = (newest, known)
            out = {f: sorted(known.get(f, ()))[:limit] for f in SERIES_FIELDS}
            out["machine"] = [
                v
                for v in conn.execute(
                    select(s.machines.c.name).distinct().order_by(s.machines.c.name)
                ).scalars()
            ]
        return out

    def catalog(
        self,
        *,
        limit: int = 200,
        offset: int = 0,
        after: Sequence[str] | None = None,
        machine: str | None = None,
        **filters: str | None,
    ) -> list[SeriesRef]:
        """Series x machines that have at least one result and match the exact-value filters.

        Uses one LIMIT 1 probe on the results(series_id, machine_id, t) index per pair instead
        of grouping the results table, and walks the series index in the listing's order
        (schema 3), so a page stays fast with millions of series and results. ``after`` (the
        :meth:`SeriesRef.listing_key` of the previous page's last row) starts the page there
        without counting the rows before it, as ``offset`` must.
        """
        unknown = set(filters) - set(SERIES_FIELDS)
        if unknown:
            raise UsageError(f"unknown series filter(s): {', '.join(sorted(unknown))}")
        # A correlated LIMIT 1 subquery, not EXISTS: PostgreSQL turns EXISTS into a semi-join
        # that aggregates the whole results table; LIMIT keeps it one index probe per pair.
        probe = (
            select(s.results.c.id)
            .where(
                s.results.c.series_id == s.series.c.id, s.results.c.machine_id == s.machines.c.id
            )
            .limit(1)
            .scalar_subquery()
            .is_not(None)
        )
        q = (
            select(
                s.series, s.machines.c.id.label("machine_id"), s.machines.c.name.label("machine")
            )
            .select_from(s.series.join(s.machines, s.machines.c.id.is_not(None)))
            .where(probe)
        )
        for f, v in filters.items():
            if v:
                q = q.where(s.series.c[f] == v)
        if machine:
            q = q.where(s.machines.c.name == machine)
        if after is not None:
            if len(after) != len(LISTING_ORDER) + 1:
                raise UsageError("a series cursor has 7 parts; use the listing's next_after")
            # ">=" on the indexed six (an index condition), then past the machine within them
            key = tuple_(*(s.series.c[f] for f in LISTING_ORDER))
            last = tuple_(*after[:-1])
            q = q.where(key >= last, not_(and_(key == last, s.machines.c.name <= after[-1])))
        q = q.order_by(
            s.series.c.operator,
            s.series.c.provider,
            s.series.c.variant,
            s.series.c.shape,
            s.series.c.dtype,
            s.series.c.metric,
            s.machines.c.name,
        )
        q = q.limit(limit).offset(checked_offset(offset))
        with self.db.connect() as conn:
            return [
                SeriesRef(
                    series_id=r["id"],
                    machine_id=r["machine_id"],
                    machine=r["machine"],
                    operator=r["operator"],
                    provider=r["provider"],
                    variant=r["variant"],
                    shape=r["shape"],
                    dtype=r["dtype"],
                    mode=r["mode"],
                    metric=r["metric"],
                    unit=r["unit"],
                    better=r["better"],
                )
                for r in conn.execute(q).mappings()
            ]

    def alerts(self, pairs: list[tuple[int, int]]) -> list[SeriesAlert]:
        """Alerts (change points) on the given (series_id, machine_id) pairs, oldest first."""
        if not pairs:
            return []
        series_ids = sorted({p[0] for p in pairs})
        wanted = set(pairs)
        q = (
            select(
                s.alerts.c.id,
                s.alerts.c.series_id,
                s.alerts.c.machine_id,
                s.alerts.c.ratio,
                s.alerts.c.direction,
                s.alerts.c.status,
                s.runs.c.started_at,
                s.runs.c.uuid,
            )
            .join(s.runs, s.runs.c.id == s.alerts.c.first_bad_run_id)
            .where(s.alerts.c.series_id.in_(series_ids))
            .order_by(s.runs.c.started_at)
        )
        with self.db.connect() as conn:
            return [
                SeriesAlert(
                    id=r["id"],
                    series_id=r["series_id"],
                    machine_id=r["machine_id"],
                    t=utc(r["started_at"]),
                    run_uuid=r["uuid"],
                    ratio=r["ratio"],
                    direction=r["direction"],
                    status=r["status"],
                )
                for r in conn.execute(q).mappings()
                if (r["series_id"], r["machine_id"]) in wanted
            ]
