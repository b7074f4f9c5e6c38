"""Store queries behind the dashboard: newest runs, the heat map, the series catalog, results.

Mixed into :class:`tritonwatch.store.Store`. The queries stay index range scans at 10 M
results (see docs/dashboard.md); codegen reports and comparisons are read generically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from typing import cast as cast_

import numpy as np
from sqlalchemy import BigInteger, any_, cast, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from ..errors import NotFoundError, UsageError
from . import schema as s
from .rows import RunSummary, utc

if TYPE_CHECKING:
    from sqlalchemy import Engine

OPEN_ALERT_STATUSES = ("new", "confirmed", "acknowledged")
SERIES_FIELDS = ("operator", "provider", "variant", "shape", "dtype", "mode", "metric")


def _utc(t: datetime) -> datetime:
    """A NOT NULL time column, as UTC."""
    return cast_(datetime, utc(t))


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


@dataclass(frozen=True)
class HeatCell:
    """Newest run against the previous run of one machine, for one operator and dtype."""

    operator: str
    dtype: str
    machine: str
    machine_id: int
    change: float  # geomean of new/old, oriented so > 1 is worse
    worst: float
    n: int


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


@dataclass(frozen=True)
class ReportRow:
    """A codegen report or a comparison: list fields plus the JSON payload (detail only)."""

    id: int
    uuid: str
    label_a: str
    label_b: str
    extra: str
    summary: dict[str, Any]
    rows: list[Any]
    created_at: datetime | None


class DashboardMixin:
    """Store methods for the dashboard's read paths (issue #6)."""

    engine: Engine

    if TYPE_CHECKING:

        def _run_query(self) -> Any: ...

    # -- dashboard: runs and the heat map ----------------------------------------------------
    def latest_runs(self, per_machine: int = 2) -> dict[int, list[RunSummary]]:
        """The newest ``per_machine`` runs of every machine, newest first (one index probe each)."""
        out: dict[int, list[RunSummary]] = {}
        with self.engine.connect() as conn:
            mids = conn.execute(select(s.machines.c.id).order_by(s.machines.c.name)).scalars().all()
            for mid in mids:
                q = (
                    self._run_query()
                    .where(s.runs.c.machine_id == mid)
                    .order_by(s.runs.c.started_at.desc(), s.runs.c.id.desc())
                    .limit(per_machine)
                )
                got = [RunSummary.from_row(r) for r in conn.execute(q).mappings()]
                if got:
                    out[mid] = got
        return out

    @staticmethod
    def _run_values(conn: Connection, run_id: int) -> dict[int, float]:
        q = select(s.results.c.series_id, s.results.c.value).where(
            s.results.c.run_id == run_id, s.results.c.status == "ok"
        )
        return dict(conn.execute(q).all())

    @staticmethod
    def _series_meta(
        conn: Connection, ids: set[int], known: dict[int, tuple[str, str, str]]
    ) -> dict[int, tuple[str, str, str]]:
        """operator, dtype, better of series ``ids`` (primary-key lookups, cached in ``known``)."""
        missing = sorted(ids - set(known))
        cols = (s.series.c.id, s.series.c.operator, s.series.c.dtype, s.series.c.better)
        if conn.dialect.name == "postgresql":  # one array parameter, not thousands of binds
            chunks = [select(*cols).where(s.series.c.id == any_(cast(missing, ARRAY(BigInteger))))]
        else:
            chunks = [
                select(*cols).where(s.series.c.id.in_(missing[i : i + 900]))
                for i in range(0, len(missing), 900)
            ]
        for q in chunks if missing else []:
            known.update({r[0]: (r[1], r[2], r[3]) for r in conn.execute(q)})
        return known

    def _cache(self) -> dict[str, dict[Any, Any]]:
        """Per-Store caches of facts that never change once written (series fields, and the
        heat-map cells of a pair of runs: runs and their results are immutable)."""
        c: dict[str, dict[Any, Any]] | None = self.__dict__.get("_access_cache")
        if c is None:
            c = self.__dict__["_access_cache"] = {"meta": {}, "heat": {}}
        return c

    def heatmap(self) -> list[HeatCell]:
        """Newest vs previous run per machine, as geomean change per operator x dtype x machine.

        Only the two newest runs of each machine are read (a fresh pair costs two range scans
        on results(run_id)); a pair already seen is answered from memory.
        """
        cache = self._cache()
        if len(cache["heat"]) > 512:
            cache["heat"].clear()
        if len(cache["meta"]) > 1_000_000:
            cache["meta"].clear()
        cells: list[HeatCell] = []
        with self.engine.connect() as conn:
            for mid, pair in self.latest_runs(2).items():
                if len(pair) < 2:
                    continue
                key = (pair[0].id, pair[1].id)
                if key not in cache["heat"]:
                    cache["heat"][key] = self._heat_pair(conn, mid, pair, cache["meta"])
                cells.extend(cache["heat"][key])
        return cells

    def _heat_pair(
        self,
        conn: Connection,
        mid: int,
        pair: list[RunSummary],
        meta: dict[int, tuple[str, str, str]],
    ) -> list[HeatCell]:
        # Two range scans on results(run_id) and primary-key lookups of their series, joined
        # here: the plan cannot go wrong even with stale statistics.
        new, old = (self._run_values(conn, r.id) for r in pair)
        both = set(new) & set(old)
        self._series_meta(conn, both, meta)
        groups: dict[tuple[str, str], list[float]] = {}
        for sid in both:
            op, dtype, better = meta[sid]
            v_new, v_old = new[sid], old[sid]
            if not v_new or not v_old or v_new <= 0 or v_old <= 0:
                continue
            ratio = v_new / v_old
            groups.setdefault((op, dtype), []).append(ratio if better == "lower" else 1 / ratio)
        cells = []
        for (op, dt), ratios in sorted(groups.items()):
            arr = np.asarray(ratios)
            cells.append(
                HeatCell(
                    operator=op,
                    dtype=dt,
                    machine=pair[0].machine,
                    machine_id=mid,
                    change=float(np.exp(np.log(arr).mean())),
                    worst=float(arr.max()),
                    n=len(ratios),
                )
            )
        return cells

    # -- dashboard: series ---------------------------------------------------------------------
    def series_facets(self, limit: int = 500) -> dict[str, list[str]]:
        """Distinct values of each series field (for filter menus), at most ``limit`` each."""
        out: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for f in SERIES_FIELDS:
                col = s.series.c[f]
                out[f] = [
                    v
                    for v in conn.execute(
                        select(col).distinct().order_by(col).limit(limit)
                    ).scalars()
                ]
            out["machine"] = [
                v
                for v in conn.execute(
                    select(s.machines.c.name).distinct().order_by(s.machines.c.name)
                ).scalars()
            ]
        return out

    def series_catalog(
        self, *, limit: int = 200, machine: str | None = None, **filters: str | None
    ) -> list[SeriesRef]:
        """Series x machines that have at least one result and match the exact-value filters.

        Uses one LIMIT 1 probe on the results(series_id, machine_id, t) index per pair instead
        of grouping the results table, so it stays fast with millions of results.
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
        q = q.order_by(
            s.series.c.operator,
            s.series.c.provider,
            s.series.c.variant,
            s.series.c.shape,
            s.series.c.dtype,
            s.series.c.metric,
            s.machines.c.name,
        ).limit(limit)
        with self.engine.connect() as conn:
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

    def series_alerts(self, pairs: list[tuple[int, int]]) -> list[SeriesAlert]:
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
        with self.engine.connect() as conn:
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

    # -- dashboard: results ---------------------------------------------------------------------
    def results_page(
        self,
        *,
        run: str | None = None,
        machine: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
        **filters: str | None,
    ) -> list[dict[str, Any]]:
        """One page of results, newest first, with their series fields and run (no samples)."""
        unknown = set(filters) - set(SERIES_FIELDS)
        if unknown:
            raise UsageError(f"unknown result filter(s): {', '.join(sorted(unknown))}")
        r = s.results
        q = (
            select(
                r.c.id,
                s.runs.c.uuid.label("run"),
                r.c.t,
                s.machines.c.name.label("machine"),
                s.series.c.operator,
                s.series.c.provider,
                s.series.c.variant,
                s.series.c.shape,
                s.series.c.dtype,
                s.series.c.mode,
                s.series.c.metric,
                s.series.c.unit,
                r.c.status,
                r.c.value,
                r.c.ci_low,
                r.c.ci_high,
                r.c.n,
                r.c.correct,
                r.c.error,
                r.c.extra,
                r.c.series_id,
                r.c.machine_id,
            )
            .join(s.series, s.series.c.id == r.c.series_id)
            .join(s.runs, s.runs.c.id == r.c.run_id)
            .join(s.machines, s.machines.c.id == r.c.machine_id)
        )
        if run:
            q = q.where(r.c.run_id == self.resolve_run(run))  # type: ignore[attr-defined]
        if machine:
            q = q.where(s.machines.c.name == machine)
        if status:
            q = q.where(r.c.status == status)
        for f, v in filters.items():
            if v:
                q = q.where(s.series.c[f] == v)
        q = q.order_by(r.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = [dict(x) for x in conn.execute(q).mappings()]
        for row in rows:
            row["t"] = utc(row["t"])
            row["shape"] = json.loads(row["shape"])
        return rows

    def build_info(self, build_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            info = conn.execute(select(s.builds.c.info).where(s.builds.c.id == build_id)).scalar()
        return dict(info or {})

    # -- codegen reports and comparisons --------------------------------------------------------
    def codegen_report_page(self, *, limit: int = 50, offset: int = 0) -> list[ReportRow]:
        return self._reports(s.codegen_reports, limit=limit, offset=offset)

    def codegen_report_detail(self, ref: str) -> ReportRow:
        return self._report(s.codegen_reports, ref, "blast-radius report")

    def comparison_page(self, *, limit: int = 50, offset: int = 0) -> list[ReportRow]:
        return self._reports(s.comparisons, limit=limit, offset=offset)

    def comparison_detail(self, ref: str) -> ReportRow:
        return self._report(s.comparisons, ref, "comparison")

    @staticmethod
    def _report_row(t: Any, r: Any, detail: bool) -> ReportRow:
        is_cg = t is s.codegen_reports
        payload = r.get("report" if is_cg else "cases") if detail else None
        if isinstance(payload, dict):
            payload = next(
                (
                    payload[k]
                    for k in ("results", "rows", "kernels", "cases")
                    if isinstance(payload.get(k), list)
                ),
                [payload],
            )
        return ReportRow(
            id=r["id"],
            uuid=r["uuid"],
            label_a=r["env_a"] if is_cg else r["label_a"],
            label_b=r["env_b"] if is_cg else r["label_b"],
            extra=r["targets"] if is_cg else r["kind"],
            summary=r["summary"] if isinstance(r["summary"], dict) else {"summary": r["summary"]},
            rows=list(payload or []),
            created_at=utc(r["created_at"]),
        )

    def _reports(self, t: Any, *, limit: int, offset: int) -> list[ReportRow]:
        cols = [c for c in t.c if c.name not in ("report", "cases")]
        q = select(*cols).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [self._report_row(t, r, False) for r in conn.execute(q).mappings()]

    def _report(self, t: Any, ref: str, what: str) -> ReportRow:
        ref = ref.strip()
        with self.engine.connect() as conn:
            # A UUID prefix first: one made only of digits is still a prefix, not an id.
            like = t.c.uuid.like(ref.replace("%", "") + "%")
            rows = conn.execute(select(t).where(like).limit(2)).mappings().all()
            if not rows and ref.isdigit() and int(ref) < 2**63:
                rows = conn.execute(select(t).where(t.c.id == int(ref)).limit(2)).mappings().all()
        if len(rows) != 1:
            raise NotFoundError(
                f"no {what} {ref!r}" if not rows else f"{what} id {ref!r} is ambiguous"
            )
        return self._report_row(t, rows[0], True)
