"""Bulk reads for a detection pass, as ``store.history``: many series' points in one query, and
what they refer to. ``detect`` reads every ok point of the series it
tests at once (:class:`SeriesPoints`), then the raw samples, builds, runs and codegen digests
of the few changes it found, each in chunked ``IN`` queries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from . import schema as s
from .database import Database
from .rows import decode_samples, utc


@dataclass(frozen=True)
class SeriesPoints:
    """Every ok point of many series in flat, time-ordered arrays (one bulk query).

    Rows are sorted by (series_id, machine_id, time); ``starts`` indexes the first row of each
    (series, machine) pair, in ``pairs`` order.
    """

    series_id: np.ndarray
    machine_id: np.ndarray
    run_id: np.ndarray
    build_id: np.ndarray
    value: np.ndarray
    pairs: list[tuple[int, int]]
    starts: np.ndarray


class History:
    """``store.history``: every point of many series, and the samples, builds and runs behind them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def points(
        self,
        *,
        machine: str | None = None,
        since: datetime | None = None,
        series_ids: Sequence[int] | None = None,
    ) -> SeriesPoints:
        """Every ok point (value, run, build) of the chosen series in one query, time-ordered."""
        r = s.results
        q = (
            select(r.c.series_id, r.c.machine_id, r.c.run_id, s.runs.c.build_id, r.c.value)
            .join(s.runs, s.runs.c.id == r.c.run_id)
            .where(r.c.status == "ok", r.c.value.is_not(None))
            .order_by(r.c.series_id, r.c.machine_id, r.c.t, r.c.run_id)
        )
        if machine:
            q = q.join(s.machines, s.machines.c.id == r.c.machine_id).where(
                s.machines.c.name == machine
            )
        if since:
            q = q.where(r.c.t >= since)
        if series_ids is not None:
            q = q.where(r.c.series_id.in_(list(series_ids)))
        with self.db.connect() as conn:
            rows = conn.execute(q).all()
        n = len(rows)
        cols = list(zip(*rows, strict=True)) if n else [(), (), (), (), ()]
        sid = np.fromiter(cols[0], np.int64, n)
        mid = np.fromiter(cols[1], np.int64, n)
        rid = np.fromiter(cols[2], np.int64, n)
        bid = np.fromiter(cols[3], np.int64, n)
        v = np.fromiter(cols[4], np.float64, n)
        if n:
            change = np.flatnonzero((np.diff(sid) != 0) | (np.diff(mid) != 0)) + 1
            starts = np.concatenate([[0], change]).astype(np.int64)
        else:
            starts = np.zeros(0, np.int64)
        pairs = [(int(sid[i]), int(mid[i])) for i in starts]
        return SeriesPoints(
            series_id=sid,
            machine_id=mid,
            run_id=rid,
            build_id=bid,
            value=v,
            pairs=pairs,
            starts=starts,
        )

    def samples(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        """Raw samples for (run id, series id) pairs that have them, in chunked queries."""
        out: dict[tuple[int, int], np.ndarray] = {}
        by_run: dict[int, list[int]] = {}
        for rid, sid in keys:
            by_run.setdefault(int(rid), []).append(int(sid))
        r = s.results
        with self.db.connect() as conn:
            runs = sorted(by_run)
            for i in range(0, len(runs), 200):
                chunk = runs[i : i + 200]
                sids = sorted({x for rid in chunk for x in by_run[rid]})
                for j in range(0, len(sids), 500):
                    q = select(r.c.run_id, r.c.series_id, r.c.samples).where(
                        r.c.run_id.in_(chunk),
                        r.c.series_id.in_(sids[j : j + 500]),
                        r.c.samples.is_not(None),
                    )
                    for rid, sid, blob in conn.execute(q):
                        if sid in by_run.get(rid, ()):
                            arr = decode_samples(blob)
                            if arr is not None:
                                out[(int(rid), int(sid))] = arr
        return out

    def result_clocks(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], float]:
        """SM clock (MHz) each (run id, series id) result was measured at, where recorded.

        From the ``gpu_state`` the harness keeps in a result's ``extra``: the middle of the range
        read while the case was timed (``during``) where recorded, else the mean of the reads
        before and after it. A night at a lower clock is explained, not alerted.
        """
        out: dict[tuple[int, int], float] = {}
        by_run: dict[int, set[int]] = {}
        for rid, sid in keys:
            by_run.setdefault(int(rid), set()).add(int(sid))
        r = s.results
        with self.db.connect() as conn:
            runs = sorted(by_run)
            for i in range(0, len(runs), 200):
                chunk = runs[i : i + 200]
                q = select(r.c.run_id, r.c.series_id, r.c.extra).where(
                    r.c.run_id.in_(chunk), r.c.extra.is_not(None)
                )
                for rid, sid, extra in conn.execute(q):
                    if sid not in by_run.get(rid, ()) or not isinstance(extra, dict):
                        continue
                    state = extra.get("gpu_state") or {}
                    during = state.get("during") or {}
                    if isinstance(during, dict) and during.get("sm_clock_min_mhz"):
                        lo = float(during["sm_clock_min_mhz"])
                        hi = float(during.get("sm_clock_max_mhz") or lo)
                        out[(int(rid), int(sid))] = (lo + hi) / 2
                        continue
                    mhz = [
                        float(side["sm_clock_mhz"])
                        for side in (state.get("before"), state.get("after"))
                        if isinstance(side, dict) and side.get("sm_clock_mhz")
                    ]
                    if mhz:
                        out[(int(rid), int(sid))] = sum(mhz) / len(mhz)
        return out

    def builds(self, build_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The stored build sections (every dependency version and commit) by build id."""
        ids = sorted({int(b) for b in build_ids})
        out: dict[int, dict[str, Any]] = {}
        with self.db.connect() as conn:
            for i in range(0, len(ids), 500):
                for bid, info in conn.execute(
                    select(s.builds.c.id, s.builds.c.info).where(
                        s.builds.c.id.in_(ids[i : i + 500])
                    )
                ):
                    out[int(bid)] = info or {}
        return out

    def runs(self, run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """uuid, start time, build id, org id and machine section of runs by id."""
        ids = sorted({int(r) for r in run_ids})
        out: dict[int, dict[str, Any]] = {}
        q = select(
            s.runs.c.id,
            s.runs.c.uuid,
            s.runs.c.started_at,
            s.runs.c.build_id,
            s.runs.c.org_id,
            s.runs.c.machine_info,
        )
        with self.db.connect() as conn:
            for i in range(0, len(ids), 500):
                for r in conn.execute(q.where(s.runs.c.id.in_(ids[i : i + 500]))).mappings():
                    out[int(r["id"])] = {
                        "uuid": r["uuid"],
                        "started_at": utc(r["started_at"]),
                        "build_id": int(r["build_id"]),
                        "org_id": r["org_id"],
                        "machine_info": r["machine_info"] or {},
                    }
        return out

    def codegen_hashes(
        self, build_ids: Iterable[int]
    ) -> dict[int, dict[tuple[str, str, str], str]]:
        """Per build, (kernel, spec, target) -> a digest of its stage hashes (empty if none)."""
        ids = sorted({int(b) for b in build_ids})
        out: dict[int, dict[tuple[str, str, str], str]] = {b: {} for b in ids}
        c = s.codegen
        with self.db.connect() as conn:
            for i in range(0, len(ids), 500):
                q = select(c.c.build_id, c.c.kernel, c.c.spec, c.c.target, c.c.stage_hashes).where(
                    c.c.build_id.in_(ids[i : i + 500])
                )
                for bid, kernel, spec, target, hashes in conn.execute(q):
                    out[int(bid)][(kernel, spec, target)] = json.dumps(hashes or {}, sort_keys=True)
        return out
