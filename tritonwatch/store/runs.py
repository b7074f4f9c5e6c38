"""Runs and their results: writing a run whole (one transaction, idempotent by run UUID) and
reading runs back, as ``store.runs``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain, repeat
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import ReturningInsert

from ..bench.timing import median_ci_rows
from ..errors import InputError, LimitError
from ..naming import canonical_shape
from ..runformat import Run, is_failure, metric_better, outcome
from . import schema as s
from .database import IN_CHUNK, Caches, Database
from .jsoncolumns import JsonText, orjson_text
from .limits import checked_offset, result_problem, run_problem, storable_problem
from .rows import AddedRun, ResultRow, RunDetail, RunSummary, key_hash

# Results written per batch of a bulk import: a few statements per batch instead of a few per
# run, and a batch (its runs and rows) stays a few megabytes whatever the file's size.
BATCH_RESULTS = 5_000

RESULT_COLUMNS = (
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
    """The ``series.key`` of a series: a hash of its identifying fields (shape canonical)."""
    return key_hash([operator, provider, variant, shape, dtype, mode, metric, unit])


def run_query() -> Select[Any]:
    """Runs joined to their machine, build and organisation: the columns of a RunSummary."""
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


def summaries(conn: Connection, q: Select[Any]) -> list[RunSummary]:
    """The runs ``q`` (a :func:`run_query`) selects, with their results counted per outcome.

    Counted when read, so runs stored before skips stopped counting as failures read right too.
    """
    rows = list(conn.execute(q).mappings())
    counts: dict[int, dict[str, int]] = {r["id"]: {} for r in rows}
    ids = list(counts)
    for i in range(0, len(ids), 500):
        got = conn.execute(
            select(s.results.c.run_id, s.results.c.status, s.results.c.correct, func.count())
            .where(s.results.c.run_id.in_(ids[i : i + 500]))
            .group_by(s.results.c.run_id, s.results.c.status, s.results.c.correct)
        )
        for run_id, status, correct, n in got:
            key = outcome(status, correct)
            counts[run_id][key] = counts[run_id].get(key, 0) + int(n)
    return [RunSummary.from_row(r, counts[r["id"]]) for r in rows]


class Runs:
    """``store.runs``: add runs, list them, name one by UUID prefix, read one back whole."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert: ReturningInsert[Any] | None = None

    # -- writing -------------------------------------------------------------------------
    def add(
        self,
        run: Run,
        *,
        org: str | None = None,
        uploaded_by: int | None = None,
        checked: bool = False,
        max_new_series: int | None = None,
    ) -> AddedRun:
        """Write a run and all its results in one transaction.

        A run whose UUID is already stored is left as it is (``created=False``): imports,
        uploads and retries never duplicate. ``org`` (the uploader's organisation) overrides
        the run's own ``run.org``. A run the database cannot hold raises :class:`InputError`
        naming the field; ``checked`` says the caller already asked :func:`storable_problem`.
        A run that would create more than ``max_new_series`` series raises
        :class:`LimitError` and writes nothing.
        """
        with self.db.writing() as (conn, staged):
            return self._add_batch(
                conn,
                [run],
                staged,
                org=org,
                uploaded_by=uploaded_by,
                checked=checked,
                max_new_series=max_new_series,
            )[0]

    def add_many(self, runs: Iterable[Run]) -> list[AddedRun]:
        """Write several runs in one transaction: all of them or, on any error, none.

        Runs are consumed as they come and written in batches of about
        :data:`BATCH_RESULTS` results (a few statements per batch, not per run), so an
        iterator over a long history is never held whole.
        """
        out: list[AddedRun] = []
        with self.db.writing() as (conn, staged):
            batch: list[Run] = []
            size = 0
            for r in runs:
                batch.append(r)
                size += len(r.results) + 1
                if size >= BATCH_RESULTS:
                    out += self._add_batch(conn, batch, staged)
                    batch, size = [], 0
            if batch:
                out += self._add_batch(conn, batch, staged)
        return out

    def check(self, run: Run) -> None:
        """Refuse a run the database cannot hold, with one line naming the field."""
        # Every value is walked on both backends: SQLite would hold NUL and keep NaN/Infinity as
        # null, so the same run would read back differently, and PostgreSQL refuses them.
        problem = storable_problem(run)
        if problem:
            raise InputError(f"run {run.run.id} cannot be stored: {problem}")

    def _add_batch(
        self,
        conn: Connection,
        runs: Sequence[Run],
        staged: Caches,
        *,
        org: str | None = None,
        uploaded_by: int | None = None,
        checked: bool = False,
        max_new_series: int | None = None,
    ) -> list[AddedRun]:
        uids = [str(r.run.id) for r in runs]
        stored = self._ids_of(conn, uids)
        new: dict[str, int] = {}  # uuid -> index in runs of the run this batch writes
        for i, (uid, run) in enumerate(zip(uids, runs, strict=True)):
            if uid in stored or uid in new:
                continue
            if not checked:
                # Every value is walked on both backends (see check); each new series is
                # checked against its columns in _series_ids.
                problem = run_problem(run)
                if problem:
                    raise InputError(f"run {uid} cannot be stored: {problem}")
            new[uid] = i
        todo = [runs[i] for i in new.values()]
        # The run section's extra keys (a HUD import keeps every record's own fields there) are
        # written by _info_text, not dumped by pydantic (a tenth of an import's time).
        infos = [
            r.run.model_dump(mode="json", exclude_none=True, exclude=set(r.run.model_extra or ()))
            for r in todo
        ]
        if org:
            for info in infos:
                info["org"] = org
        builds = [r.build.model_dump(mode="json", exclude_none=True) for r in todo]
        build_ids = self.db.build_ids(conn, builds, staged)
        now = datetime.now(UTC)
        rows, places = [], []
        for run, info, build_id in zip(todo, infos, build_ids, strict=True):
            org_id = self.db.org_id(conn, info.get("org"), staged)
            m = run.machine
            device = run.run.device or ("cuda" if m.gpu_model else "cpu")
            machine_info = m.model_dump(mode="json", exclude_none=True)
            machine_id = self.db.get_or_create(
                conn,
                s.machines,
                staged.machines,
                "key",
                key_hash([m.name, device, m.gpu_model, m.gpu_count]),
                {
                    "name": m.name,
                    "device": device,
                    "gpu_model": m.gpu_model,
                    "gpu_count": m.gpu_count,
                    "org_id": org_id,
                    "info": machine_info,
                    "created_at": now,
                },
            )
            rows.append(
                {
                    "uuid": str(run.run.id),
                    "org_id": org_id,
                    "machine_id": machine_id,
                    "build_id": build_id,
                    "started_at": run.run.started_at,
                    "finished_at": run.run.finished_at,
                    "label": run.run.label,
                    "suite": run.run.suite,
                    "device": device,
                    "n_results": len(run.results),
                    "n_failed": sum(1 for r in run.results if is_failure(r.status, r.correct)),
                    "info": _info_text(run, info),
                    "machine_info": machine_info,
                    "ingested_at": now,
                    "uploaded_by": uploaded_by,
                }
            )
            places.append(machine_id)
        written = self._insert_runs(conn, rows)
        # A run missing from ``written`` was stored by a concurrent writer first: it is theirs.
        mine = [
            (run, written[uid], machine_id)
            for run, uid, machine_id in zip(todo, new, places, strict=True)
            if uid in written
        ]
        if mine:
            self._add_results(conn, mine, staged, max_new_series)
        out = []
        for i, (uid, run) in enumerate(zip(uids, runs, strict=True)):
            created = uid in written and new[uid] == i
            if uid in stored:
                rid = stored[uid]
            elif uid in written:
                rid = written[uid]
            else:
                rid = self._ids_of(conn, [uid])[uid]
            out.append(AddedRun(uuid=uid, id=rid, created=created, n_results=len(run.results)))
        return out

    def _ids_of(self, conn: Connection, uuids: Sequence[str]) -> dict[str, int]:
        """The ids of the runs among ``uuids`` that are stored."""
        found: dict[str, int] = {}
        for i in range(0, len(uuids), IN_CHUNK):
            q = select(s.runs.c.uuid, s.runs.c.id).where(s.runs.c.uuid.in_(uuids[i : i + IN_CHUNK]))
            found.update({str(u): int(v) for u, v in conn.execute(q)})
        return found

    def _insert_runs(self, conn: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Insert run rows in one statement; the uuid -> id of those this call wrote."""
        if not rows:
            return {}
        if self._insert is None:  # built once: statement construction was a third of a run's cost
            self._insert = (
                self.db.insert(s.runs)
                .on_conflict_do_nothing()  # type: ignore[attr-defined]
                .returning(s.runs.c.uuid, s.runs.c.id)
            )
        return {str(u): int(v) for u, v in conn.execute(self._insert, rows)}

    def _add_results(
        self,
        conn: Connection,
        runs: list[tuple[Run, int, int]],
        staged: Caches,
        max_new_series: int | None = None,
    ) -> None:
        """Every result of (run, run id, machine id) in one bulk insert."""
        series_ids = self._series_ids(conn, [run for run, _, _ in runs], staged, max_new_series)
        # The dialect's own processor: SQLite must store the text form SQLAlchemy compares with.
        t = s.results.c.t.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        table: list[tuple[Any, ...]] = []
        at = 0
        for run, run_id, machine_id in runs:
            n, started = len(run.results), run.run.started_at
            ids = series_ids[at : at + n]
            table += result_rows(run, run_id, machine_id, ids, t(started) if t else started)
            at += n
        self.db.bulk_insert(conn, s.results, RESULT_COLUMNS, table)

    def _series_ids(
        self,
        conn: Connection,
        runs: Sequence[Run],
        staged: Caches,
        max_new: int | None = None,
    ) -> list[int]:
        """The series id of every result of ``runs``, in order, creating the new series.

        A series not stored yet is checked against its columns first (a stored one fits).
        More than ``max_new`` series to create raises :class:`LimitError` before any is.
        """
        committed, fast = self.db.caches.series_by_tuple, staged.series_by_tuple
        ids: list[int | None] = []
        pending: dict[str, tuple[Any, dict[str, Any]]] = {}
        slots: list[tuple[int, str]] = []
        seen: dict[tuple[Any, ...], str] = {}  # new series met earlier in this batch -> key
        for run in runs:
            for j, r in enumerate(run.results):
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
                if sid is None and tkey in seen:
                    slots.append((len(ids), seen[tkey]))
                elif sid is None:
                    problem = result_problem(r)
                    if problem:
                        raise InputError(
                            f"run {run.run.id} cannot be stored: results.{j}.{problem}"
                        )
                    shape = canonical_shape(r.shape)
                    k = series_key(
                        r.operator, r.provider, r.variant, shape, r.dtype, r.mode, r.metric, r.unit
                    )
                    seen[tkey] = k
                    if k not in pending:
                        pending[k] = (
                            tkey,
                            {
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
                    slots.append((len(ids), k))
                ids.append(sid)
        if pending and max_new is not None and len(pending) > max_new:
            keys = list(pending)
            stored = 0
            for i in range(0, len(keys), IN_CHUNK):
                q = select(s.series.c.key).where(s.series.c.key.in_(keys[i : i + IN_CHUNK]))
                stored += len(conn.execute(q).all())
            if len(keys) - stored > max_new:
                raise LimitError(
                    f"the run would create {len(keys) - stored} new series, more than this "
                    f"server's limit of {max_new} per run (setting max_run_new_series)"
                )
        if pending:
            found = self.db.get_or_create_many(
                conn, s.series, {}, "key", {k: row for k, (_, row) in pending.items()}
            )
            for k, (tkey, _) in pending.items():
                fast[tkey] = found[k]
            for i, k in slots:
                ids[i] = found[k]
        return ids  # type: ignore[return-value]

    # -- reading -------------------------------------------------------------------------
    def find(
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
        q = run_query()
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
        q = q.order_by(order, s.runs.c.id.desc() if newest_first else s.runs.c.id).offset(
            checked_offset(offset)
        )
        if limit is not None:
            q = q.limit(limit)
        with self.db.connect() as conn:
            return summaries(conn, q)

    def resolve(self, ref: str, conn: Connection | None = None) -> int:
        """The database id of a run named by its UUID or a unique UUID prefix (>= 4 chars)."""
        return self.db.resolve(s.runs, ref, "run", hint="`tritonwatch runs` lists them", conn=conn)

    def get(
        self, ref: str, *, limit: int | None = None, offset: int = 0, samples: bool = True
    ) -> RunDetail:
        """A run with its machine, build and its results in stored order: every one, or the
        page ``offset``/``limit``; ``samples=False`` leaves the raw samples in the database
        (most of a large run's bytes) and gives ``samples=None``."""
        with self.db.connect() as conn:
            rid = self.resolve(ref, conn)
            row = conn.execute(run_query().where(s.runs.c.id == rid)).mappings().one()
            summary = summaries(conn, run_query().where(s.runs.c.id == rid))[0]
            build = conn.execute(
                select(s.builds.c.info).where(s.builds.c.id == row["build_id"])
            ).scalar_one()
            q = _results_query(rid, samples).offset(checked_offset(offset))
            if limit is not None:
                q = q.limit(limit)
            results = [
                ResultRow.from_row(r if samples else {**r, "samples": None})
                for r in conn.execute(q).mappings()
            ]
        return RunDetail(
            summary=summary,
            info=row["info"],
            machine_info=row["machine_info"],
            build_info=build,
            results=results,
        )

    def result_pages(
        self, ref: str, *, samples: bool = True, size: int = 1000
    ) -> Iterator[list[ResultRow]]:
        """Every result of run ``ref`` in stored order, ``size`` at a time, read with one query
        whose rows the database hands over as they are consumed (a server-side cursor on
        PostgreSQL): memory holds one page however large the run."""
        with self.db.connect() as conn:
            rid = self.resolve(ref, conn)
            q = _results_query(rid, samples)
            rows = conn.execution_options(yield_per=size).execute(q).mappings()
            for part in rows.partitions():
                yield [ResultRow.from_row(r if samples else {**r, "samples": None}) for r in part]

    def iter(self, **filters: Any) -> Iterator[RunDetail]:
        """Every run matching ``find(**filters)``, oldest first, with its results."""
        for summary in self.find(limit=None, newest_first=False, **filters):
            yield self.get(summary.uuid)

    def org_of(self, run_id: int) -> str | None:
        """The organisation a stored run belongs to (None for a run without one)."""
        q = (
            select(s.orgs.c.name)
            .select_from(s.runs.outerjoin(s.orgs, s.orgs.c.id == s.runs.c.org_id))
            .where(s.runs.c.id == run_id)
        )
        with self.db.connect() as conn:
            return conn.execute(q).scalar()


def _results_query(run_id: int, samples: bool) -> Select[Any]:
    """A run's results with their series, in stored order; without the samples column unless
    ``samples``."""
    cols = [c for c in s.results.c if samples or c.name != "samples"]
    return (
        select(*cols, s.series)
        .join(s.series, s.series.c.id == s.results.c.series_id)
        .where(s.results.c.run_id == run_id)
        .order_by(s.results.c.id)
    )


def result_rows(
    run: Run, run_id: int, machine_id: int, series_ids: Sequence[int], t: Any
) -> list[tuple[Any, ...]]:
    """One tuple per result in RESULT_COLUMNS order; ``t`` is already in the driver's form.

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
        med, l_, h_ = median_ci_rows(arr)
        raw, width = arr.tobytes(), 8 * k
        chunks: list[bytes | None] = [raw[j : j + width] for j in range(0, len(raw), width)]
        if len(idxs) == n:  # the usual run: every result has k samples, whole columns at once
            value = [v if v is not None else m for v, m in zip(value, med.tolist(), strict=True)]
            lo, hi, counts, blobs = l_.tolist(), h_.tolist(), [k] * n, chunks
            continue
        for i, m, a, b, c in zip(idxs, med.tolist(), l_.tolist(), h_.tolist(), chunks, strict=True):
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
            [_extra_text(r.extra) if r.extra else None for r in res],
            strict=True,
        )
    )


def _extra_text(extra: dict[str, Any]) -> str:
    """A result's ``extra`` as the JSON text the results table stores."""
    text = orjson_text(extra)
    return text if text is not None else json.dumps(extra)


def _info_text(run: Run, info: dict[str, Any]) -> Any:
    """The ``runs.info`` value: ``info`` (the run section's fields, the uploader's org applied)
    and its extra keys, as ``run.run.model_dump(mode="json", exclude_none=True)`` gives them.

    orjson writes them as JSON text (the same values for JSON values, tuples, UUIDs, enums;
    NaN never gets here); for anything else (a time, a subclass, an integer past 64 bits)
    pydantic dumps the section as before.
    """
    extra = run.run.model_extra
    kept = {k: v for k, v in extra.items() if v is not None} if extra else {}
    text = orjson_text({**info, **kept})
    if text is not None:
        return JsonText(text)
    full = run.run.model_dump(mode="json", exclude_none=True)
    if "org" in info:
        full["org"] = info["org"]
    return full
