"""The Store: the one API the rest of tritonwatch uses to read and write the results database.

Runs go in whole (one transaction, idempotent by run UUID); series come out as points ordered by
time. Other areas add their queries as mixins in this package (series, history, alerts, codegen,
access, dashboard), so this file keeps to runs and results.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, repeat
from typing import Any

import numpy as np
from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ..errors import NotFoundError, UsageError
from ..runformat import Run, metric_better
from . import engine as _engine
from . import schema as s
from .access import AccessMixin
from .alerts import AlertsMixin
from .codegen import CodegenMixin
from .dashboard import DashboardMixin
from .history import HistoryMixin
from .rows import (
    AddedRun,
    ResultRow,
    RunDetail,
    RunSummary,
    StoreInfo,
    key_hash,
    utc,
)
from .series import SeriesMixin


def canonical_shape(shape: dict[str, Any]) -> str:
    return json.dumps(shape, sort_keys=True, separators=(",", ":"))


def series_key(
    operator: str,
    provider: str,
    variant: str,
    shape: str,
    dtype: str,
    mode: str,
    metric: str,
    unit: str,
) -> str:
    return key_hash([operator, provider, variant, shape, dtype, mode, metric, unit])


def median_ci(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and distribution-free 95% CI of the median for each row of a 2-D array.

    The CI bounds are the order statistics at ranks n/2 -/+ 1.96 sqrt(n)/2 (the normal
    approximation to the binomial), which needs no assumption about the timing distribution.
    """
    n = samples.shape[1]
    srt = np.sort(samples, axis=1)
    med = (srt[:, (n - 1) // 2] + srt[:, n // 2]) / 2  # np.median's value, without re-partitioning
    half = 1.96 * np.sqrt(n) / 2
    lo = int(max(0, np.floor(n / 2 - half)))
    hi = int(min(n - 1, np.ceil(n / 2 + half) - 1))
    return med, srt[:, lo], srt[:, hi]


_RUN_BY_UUID = select(s.runs.c.id).where(s.runs.c.uuid == bindparam("uuid"))


@dataclass
class _Caches:
    series_by_tuple: dict[tuple[Any, ...], int] = field(default_factory=dict)
    machines: dict[str, int] = field(default_factory=dict)
    builds: dict[str, int] = field(default_factory=dict)
    orgs: dict[str, int] = field(default_factory=dict)

    def merge(self, other: _Caches) -> None:
        for name in ("series_by_tuple", "machines", "builds", "orgs"):
            getattr(self, name).update(getattr(other, name))


class Store(SeriesMixin, HistoryMixin, AlertsMixin, CodegenMixin, AccessMixin, DashboardMixin):
    """A tritonwatch results database (SQLite file or PostgreSQL)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._c = _Caches()
        self._run_insert: Any = None

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        """Connect, create the schema in an empty database, and refuse a foreign or newer one."""
        engine = _engine.connect(url, create=create)
        try:
            _engine.check_schema(engine, create=create)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, _engine.display_url(engine.url))

    @staticmethod
    def upgrade(
        url: str, on_migrate: Callable[[int, int], None] | None = None
    ) -> tuple[int | None, int]:
        """Create or migrate the database at ``url`` to this version's schema.

        Returns (schema version before, after); before is None for a new database.
        ``on_migrate(before, after)`` is called just before an existing schema changes.
        """
        engine = _engine.connect(url, create=True)
        notify = None if on_migrate is None else (lambda a, b: on_migrate(int(a), int(b)))
        try:
            before, after = _engine.upgrade(engine, notify)
        finally:
            engine.dispose()
        return (int(before) if before else None), int(after)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _insert_ignore(self, table: Any) -> Any:
        ins = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return ins(table)

    def info(self) -> StoreInfo:
        counts = {}
        with self.engine.connect() as conn:
            for t in (
                s.machines,
                s.builds,
                s.runs,
                s.series,
                s.results,
                s.alerts,
                s.codegen,
                s.comparisons,
                s.views,
                s.orgs,
                s.tokens,
            ):
                counts[t.name] = conn.execute(select(func.count()).select_from(t)).scalar_one()
        rev = _engine.current_revision(self.engine)
        return StoreInfo(
            url=self.url, backend=self.dialect, schema_version=int(rev or 0), counts=counts
        )

    # -- writing -------------------------------------------------------------------------
    def _get_or_create(
        self,
        conn: Connection,
        table: Any,
        cache: dict[str, int],
        key_col: str,
        key: str,
        values: dict[str, Any],
    ) -> int:
        if key in cache:
            return cache[key]
        col = table.c[key_col]
        found = conn.execute(select(table.c.id).where(col == key)).scalar()
        if found is None:
            conn.execute(
                self._insert_ignore(table)
                .values(**{key_col: key}, **values)
                .on_conflict_do_nothing()
            )
            found = conn.execute(select(table.c.id).where(col == key)).scalar_one()
        cache[key] = found
        return int(found)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[tuple[Connection, _Caches]]:
        """A write transaction with staged caches, merged into the Store's only on commit."""
        staged = _Caches()
        with self.engine.begin() as conn:
            yield conn, staged
        self._c.merge(staged)

    def org_id(self, conn: Connection, name: str | None, staged: _Caches) -> int | None:
        if not name:
            return None
        return self._get_or_create(
            conn, s.orgs, staged.orgs, "name", name, {"created_at": datetime.now(UTC)}
        )

    def add_run(
        self, run: Run, *, org: str | None = None, uploaded_by: int | None = None
    ) -> AddedRun:
        """Write a run and all its results in one transaction.

        A run whose UUID is already stored is left as it is (``created=False``): imports,
        uploads and retries never duplicate. ``org`` (the uploader's organisation) overrides
        the run's own ``run.org``.
        """
        with self._writing() as (conn, staged):
            added = self._add_run(conn, run, staged, org=org, uploaded_by=uploaded_by)
        return added

    def add_runs(self, runs: Iterable[Run]) -> list[AddedRun]:
        """Write several runs in one transaction: all of them or, on any error, none."""
        with self._writing() as (conn, staged):
            added = [self._add_run(conn, r, staged, org=None, uploaded_by=None) for r in runs]
        return added

    def _add_run(
        self,
        conn: Connection,
        run: Run,
        staged: _Caches,
        *,
        org: str | None,
        uploaded_by: int | None,
    ) -> AddedRun:
        uid = str(run.run.id)
        existing = conn.execute(_RUN_BY_UUID, {"uuid": uid}).scalar()
        if existing is not None:
            return AddedRun(uuid=uid, id=int(existing), created=False, n_results=len(run.results))
        run_info = run.run.model_dump(mode="json", exclude_none=True)
        if org:
            run_info["org"] = org
        org_id = self.org_id(conn, run_info.get("org"), staged)
        m = run.machine
        device = run.run.device or ("cuda" if m.gpu_model else "cpu")
        machine_key = key_hash([m.name, device, m.gpu_model, m.gpu_count])
        machine_info = m.model_dump(mode="json", exclude_none=True)
        machine_id = self._get_or_create(
            conn,
            s.machines,
            staged.machines,
            "key",
            machine_key,
            {
                "name": m.name,
                "device": device,
                "gpu_model": m.gpu_model,
                "gpu_count": m.gpu_count,
                "org_id": org_id,
                "info": machine_info,
                "created_at": datetime.now(UTC),
            },
        )
        build_info = run.build.model_dump(mode="json", exclude_none=True)
        torch_info = build_info.get("torch") or {}
        build_id = self._get_or_create(
            conn,
            s.builds,
            staged.builds,
            "key",
            key_hash(build_info),
            {
                "triton_version": run.build.triton.version,
                "triton_commit": run.build.triton.commit,
                "torch_version": torch_info.get("version"),
                "info": build_info,
                "created_at": datetime.now(UTC),
            },
        )
        started = run.run.started_at
        n_failed = sum(1 for r in run.results if r.status != "ok")
        row = {
            "uuid": uid,
            "org_id": org_id,
            "machine_id": machine_id,
            "build_id": build_id,
            "started_at": started,
            "finished_at": run.run.finished_at,
            "label": run.run.label,
            "suite": run.run.suite,
            "device": device,
            "n_results": len(run.results),
            "n_failed": n_failed,
            "info": run_info,
            "machine_info": machine_info,
            "ingested_at": datetime.now(UTC),
            "uploaded_by": uploaded_by,
        }
        if (
            self._run_insert is None
        ):  # built once: statement construction was a third of a run's cost
            self._run_insert = (
                self._insert_ignore(s.runs).on_conflict_do_nothing().returning(s.runs.c.id)
            )
        run_id = conn.execute(self._run_insert, row).scalar()
        if run_id is None:  # a concurrent writer stored the same UUID first
            got = conn.execute(_RUN_BY_UUID, {"uuid": uid}).scalar_one()
            return AddedRun(uuid=uid, id=int(got), created=False, n_results=len(run.results))
        series_ids = self._series_ids(conn, run, staged)
        # The dialect's own processor: SQLite must store the text form SQLAlchemy compares with.
        t = s.results.c.t.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        t_value = t(started) if t else started
        self._write_results(conn, self._result_rows(run, run_id, machine_id, series_ids, t_value))
        return AddedRun(uuid=uid, id=int(run_id), created=True, n_results=len(run.results))

    def _series_ids(self, conn: Connection, run: Run, staged: _Caches) -> list[int]:
        committed, fast = self._c.series_by_tuple, staged.series_by_tuple
        ids: list[int | None] = []
        pending: dict[str, tuple[Any, dict[str, Any]]] = {}
        slots: list[tuple[int, str]] = []
        for i, r in enumerate(run.results):
            tkey = (
                r.operator,
                r.provider,
                r.variant,
                tuple(r.shape.items()),
                r.dtype,
                r.mode,
                r.metric,
                r.unit,
            )
            sid = committed.get(tkey) or fast.get(tkey)
            if sid is None:
                shape = canonical_shape(r.shape)
                k = series_key(
                    r.operator, r.provider, r.variant, shape, r.dtype, r.mode, r.metric, r.unit
                )
                if k not in pending:
                    pending[k] = (
                        tkey,
                        {
                            "key": k,
                            "operator": r.operator,
                            "provider": r.provider,
                            "variant": r.variant,
                            "shape": shape,
                            "dtype": r.dtype,
                            "mode": r.mode,
                            "metric": r.metric,
                            "unit": r.unit,
                            "better": metric_better(r.metric, r.better),
                        },
                    )
                slots.append((i, k))
            ids.append(sid)
        if pending:
            found: dict[str, int] = {}
            keys = list(pending)
            for i in range(0, len(keys), 500):
                q = select(s.series.c.key, s.series.c.id).where(
                    s.series.c.key.in_(keys[i : i + 500])
                )
                found.update({k: v for k, v in conn.execute(q)})
            new = [row for k, (_, row) in pending.items() if k not in found]
            if new:
                conn.execute(self._insert_ignore(s.series).on_conflict_do_nothing(), new)
                for i in range(0, len(new), 500):
                    chunk = [r["key"] for r in new[i : i + 500]]
                    q = select(s.series.c.key, s.series.c.id).where(s.series.c.key.in_(chunk))
                    found.update({k: v for k, v in conn.execute(q)})
            for k, (tkey, _) in pending.items():
                fast[tkey] = found[k]
            for i, k in slots:
                ids[i] = found[k]
        return ids  # type: ignore[return-value]

    _RESULT_COLUMNS = (
        "run_id",
        "series_id",
        "machine_id",
        "t",
        "status",
        "value",
        "n",
        "ci_low",
        "ci_high",
        "samples",
        "correct",
        "error",
        "extra",
    )

    @staticmethod
    def _result_rows(
        run: Run, run_id: int, machine_id: int, series_ids: Sequence[int], t: Any
    ) -> list[tuple[Any, ...]]:
        """One tuple per result in _RESULT_COLUMNS order; ``t`` is already in the driver's form.

        Column-wise: statistics for all results with the same sample count come from one numpy
        call, and ``zip`` builds the tuples, so the Python cost per result stays a few list
        slots (this runs for every result ingested).
        """
        res = run.results
        n = len(res)
        value: list[float | None] = [r.value for r in res]
        lo: list[float | None] = [None] * n
        hi: list[float | None] = [None] * n
        counts = [0] * n
        blobs: list[bytes | None] = [None] * n
        by_n: dict[int, list[int]] = {}
        for i, r in enumerate(res):
            if r.samples:
                by_n.setdefault(len(r.samples), []).append(i)
        for k, idxs in by_n.items():
            flat = chain.from_iterable(res[i].samples or () for i in idxs)
            arr = np.fromiter(flat, dtype="<f8", count=k * len(idxs)).reshape(len(idxs), k)
            med, l_, h_ = median_ci(arr)
            raw, width = arr.tobytes(), 8 * k
            chunks: list[bytes | None] = [raw[j : j + width] for j in range(0, len(raw), width)]
            if len(idxs) == n:  # the usual run: every result has k samples, whole columns at once
                value = [
                    v if v is not None else m for v, m in zip(value, med.tolist(), strict=True)
                ]
                lo, hi, counts, blobs = l_.tolist(), h_.tolist(), [k] * n, chunks
                continue
            for i, m, a, b, c in zip(
                idxs, med.tolist(), l_.tolist(), h_.tolist(), chunks, strict=True
            ):
                if value[i] is None:
                    value[i] = m
                lo[i], hi[i], counts[i], blobs[i] = a, b, k, c
        return list(
            zip(
                repeat(run_id, n),
                series_ids,
                repeat(machine_id, n),
                repeat(t, n),
                [r.status for r in res],
                value,
                counts,
                lo,
                hi,
                blobs,
                [r.correct for r in res],
                [r.error for r in res],
                [json.dumps(r.extra) if r.extra else None for r in res],
                strict=True,
            )
        )

    def _write_results(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Bulk-insert result rows: COPY on PostgreSQL, one executemany on SQLite.

        The ORM-free path matters: results arrive by the hundred thousand and SQLAlchemy's
        per-row bind processing was 10x the cost of the insert itself.
        """
        cols = ", ".join(self._RESULT_COLUMNS)
        if self.dialect == "postgresql":
            raw: Any = conn.connection.driver_connection  # a psycopg.Connection
            with raw.cursor() as cur, cur.copy(f"COPY results ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(self._RESULT_COLUMNS))
            conn.exec_driver_sql(f"INSERT INTO results ({cols}) VALUES ({marks})", rows)

    # -- reading runs ----------------------------------------------------------------------
    def _run_query(self) -> Any:
        return (
            select(
                s.runs,
                s.machines.c.name.label("machine"),
                s.machines.c.gpu_model,
                s.builds.c.triton_version,
                s.builds.c.triton_commit,
                s.orgs.c.name.label("org"),
            )
            .join(s.machines, s.machines.c.id == s.runs.c.machine_id)
            .join(s.builds, s.builds.c.id == s.runs.c.build_id)
            .outerjoin(s.orgs, s.orgs.c.id == s.runs.c.org_id)
        )

    def runs(
        self,
        *,
        machine: str | None = None,
        org: str | None = None,
        label: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 50,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[RunSummary]:
        """Stored runs, newest first, filtered by machine name, organisation, label and time."""
        q = self._run_query()
        if machine:
            q = q.where(s.machines.c.name == machine)
        if org:
            q = q.where(s.orgs.c.name == org)
        if label:
            q = q.where(s.runs.c.label == label)
        if since:
            q = q.where(s.runs.c.started_at >= since)
        if until:
            q = q.where(s.runs.c.started_at < until)
        order = s.runs.c.started_at.desc() if newest_first else s.runs.c.started_at.asc()
        q = q.order_by(order, s.runs.c.id.desc() if newest_first else s.runs.c.id).offset(offset)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [RunSummary.from_row(r) for r in conn.execute(q).mappings()]

    def resolve_run(self, ref: str, conn: Connection | None = None) -> int:
        """The database id of a run named by its UUID or a unique UUID prefix (>= 4 chars)."""
        ref = ref.strip().lower()
        if len(ref) < 4:
            raise UsageError(f"run id {ref!r} is too short; give at least 4 characters of the UUID")

        def go(c: Connection) -> int:
            rows = c.execute(
                select(s.runs.c.id, s.runs.c.uuid)
                .where(s.runs.c.uuid.like(ref.replace("%", "") + "%"))
                .limit(2)
            ).all()
            if not rows:
                raise NotFoundError(f"no run {ref!r}; `tritonwatch runs` lists them")
            if len(rows) > 1:
                raise UsageError(f"run id {ref!r} is ambiguous; give more characters")
            return int(rows[0][0])

        if conn is not None:
            return go(conn)
        with self.engine.connect() as c:
            return go(c)

    def get_run(self, ref: str) -> RunDetail:
        """A run with its machine, build and every result (samples decoded)."""
        with self.engine.connect() as conn:
            rid = self.resolve_run(ref, conn)
            row = conn.execute(self._run_query().where(s.runs.c.id == rid)).mappings().one()
            build = conn.execute(
                select(s.builds.c.info).where(s.builds.c.id == row["build_id"])
            ).scalar_one()
            q = (
                select(s.results, s.series)
                .join(s.series, s.series.c.id == s.results.c.series_id)
                .where(s.results.c.run_id == rid)
                .order_by(s.results.c.id)
            )
            results = [ResultRow.from_row(r) for r in conn.execute(q).mappings()]
        return RunDetail(
            summary=RunSummary.from_row(row),
            info=row["info"],
            machine_info=row["machine_info"],
            build_info=build,
            results=results,
        )

    def iter_runs(self, **filters: Any) -> Iterator[RunDetail]:
        """Every run matching ``runs(**filters)``, oldest first, with its results."""
        for summary in self.runs(limit=None, newest_first=False, **filters):
            yield self.get_run(summary.uuid)


__all__ = ["Store", "canonical_shape", "median_ci", "series_key"]
_ = (utc,)  # re-exported for mixins
