"""The dashboard's overview reads, as ``store.overview``: each machine's newest runs, the heat
map of newest against previous run, and pages of results.

The queries stay index range scans at 10 M results (see docs/dashboard.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, any_, cast, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from ..errors import UsageError
from . import schema as s
from .database import Database
from .limits import checked_offset
from .rows import RunSummary, utc
from .runs import Runs, run_query, summaries
from .series import SERIES_FIELDS


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


@dataclass
class _Memo:
    """Facts that never change once written: series fields, and the heat-map cells of a pair
    of runs (runs and their results are immutable)."""

    meta: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    heat: dict[tuple[int, int], list[HeatCell]] = field(default_factory=dict)


class Overview:
    """``store.overview``: what the dashboard's front page and results table read."""

    def __init__(self, db: Database, runs: Runs) -> None:
        self.db = db
        self.runs = runs
        self._memo = _Memo()

    def latest_runs(self, per_machine: int = 2) -> dict[int, list[RunSummary]]:
        """The newest ``per_machine`` runs of every machine, newest first (one index probe each)."""
        out: dict[int, list[RunSummary]] = {}
        with self.db.connect() as conn:
            mids = conn.execute(select(s.machines.c.id).order_by(s.machines.c.name)).scalars().all()
            for mid in mids:
                q = (
                    run_query()
                    .where(s.runs.c.machine_id == mid)
                    .order_by(s.runs.c.started_at.desc(), s.runs.c.id.desc())
                    .limit(per_machine)
                )
                got = summaries(conn, q)
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

    def heatmap(self) -> list[HeatCell]:
        """Newest vs previous run per machine, as geomean change per operator x dtype x machine.

        Only the two newest runs of each machine are read (a fresh pair costs two range scans
        on results(run_id)); a pair already seen is answered from memory.
        """
        memo = self._memo
        if len(memo.heat) > 512:
            memo.heat.clear()
        if len(memo.meta) > 1_000_000:
            memo.meta.clear()
        cells: list[HeatCell] = []
        with self.db.connect() as conn:
            for mid, pair in self.latest_runs(2).items():
                if len(pair) < 2:
                    continue
                key = (pair[0].id, pair[1].id)
                if key not in memo.heat:
                    memo.heat[key] = self._heat_pair(conn, mid, pair, memo.meta)
                cells.extend(memo.heat[key])
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
        # The one geometric mean (analysis.stats, part of the base), imported here because
        # scipy, which that module loads, costs every command that opens a store ~0.5 s.
        from ..analysis.stats import geomean

        cells = []
        for (op, dt), ratios in sorted(groups.items()):
            cells.append(
                HeatCell(
                    operator=op,
                    dtype=dt,
                    machine=pair[0].machine,
                    machine_id=mid,
                    change=geomean(ratios),
                    worst=max(ratios),
                    n=len(ratios),
                )
            )
        return cells

    def results(
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
            q = q.where(r.c.run_id == self.runs.resolve(run))
        if machine:
            q = q.where(s.machines.c.name == machine)
        if status:
            q = q.where(r.c.status == status)
        for f, v in filters.items():
            if v:
                q = q.where(s.series.c[f] == v)
        q = q.order_by(r.c.id.desc()).limit(limit).offset(checked_offset(offset))
        with self.db.connect() as conn:
            rows = [dict(x) for x in conn.execute(q).mappings()]
        for row in rows:
            row["t"] = utc(row["t"])
            row["shape"] = json.loads(row["shape"])
        return rows
