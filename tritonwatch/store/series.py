"""Store queries for machines and series: the catalog, one series' points, measured peaks.

Mixed into :class:`tritonwatch.store.Store`. A series query is one range scan of the index
``results(series_id, machine_id, t)`` joined to the run and build for hover text.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from . import schema as s
from .rows import MachineRow, Point, SeriesInfo, decode_samples, key_hash, utc

if TYPE_CHECKING:
    from sqlalchemy import Engine


class SeriesMixin:
    """Store methods for machines and series."""

    engine: Engine

    if TYPE_CHECKING:

        def _writing(self) -> AbstractContextManager[tuple[Connection, Any]]: ...

        def _get_or_create(
            self,
            conn: Connection,
            table: Any,
            cache: dict[str, int],
            key_col: str,
            key: str,
            values: dict[str, Any],
        ) -> int: ...

    def machines(self) -> list[MachineRow]:
        with self.engine.connect() as conn:
            return [
                MachineRow.from_row(r)
                for r in conn.execute(select(s.machines).order_by(s.machines.c.name)).mappings()
            ]

    def machine_id(
        self, name: str, device: str, gpu_model: str | None, gpu_count: int | None
    ) -> int | None:
        """The id of a machine by the fields that identify it, or None if it was never stored."""
        key = key_hash([name, device, gpu_model, gpu_count])
        with self.engine.connect() as conn:
            return conn.execute(select(s.machines.c.id).where(s.machines.c.key == key)).scalar()

    def set_machine_peaks(
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
        with self._writing() as (conn, staged):
            mid = self._get_or_create(
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

    def machine_peaks(
        self, name: str, device: str, gpu_model: str | None, gpu_count: int | None
    ) -> dict[str, Any] | None:
        """Peaks stored by ``calibrate`` for this machine, or None."""
        key = key_hash([name, device, gpu_model, gpu_count])
        with self.engine.connect() as conn:
            return conn.execute(select(s.machines.c.peaks).where(s.machines.c.key == key)).scalar()

    def series_list(
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
        with self.engine.connect() as conn:
            return [SeriesInfo.from_row(r) for r in conn.execute(q).mappings()]

    def series(
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
        with self.engine.connect() as conn:
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
