"""Stored reports, as ``store.reports``: blast-radius reports and A/B comparisons as the
dashboard lists them, and the comparison rows ``compare`` writes.

The comparison itself (ratio, CI, verdict) is computed in :mod:`tritonwatch.analysis`; this
module stores and reads its JSON form.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import RowMapping

from . import schema as s
from .database import Database
from .limits import checked_offset, max_length
from .rows import utc

_MAX_LABEL = max_length(s.comparisons.c.label_a)


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
    document: dict[str, Any] | None = None  # detail only: the stored report or cases as saved


@dataclass(frozen=True)
class SavedComparison:
    id: int
    uuid: str
    kind: str
    run_a: str
    run_b: str


@dataclass(frozen=True)
class StoredComparison:
    """A comparison row as stored: summary and per-case rows (``CaseComparison.to_json``)."""

    id: int
    uuid: str
    kind: str
    label_a: str
    label_b: str
    run_a: str | None
    run_b: str | None
    summary: dict[str, Any]
    cases: list[dict[str, Any]]
    created_at: datetime | None


class Reports:
    """``store.reports``: blast reports and comparisons, listed and read by id or UUID prefix."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_comparison(
        self,
        *,
        kind: str,
        label_a: str,
        label_b: str,
        summary: dict[str, Any],
        cases: list[dict[str, Any]],
        run_ids: tuple[int | None, int | None] = (None, None),
        run_uuids: tuple[str, str] = ("", ""),
    ) -> SavedComparison:
        """Store one comparison (its JSON summary and per-case rows) naming its two runs."""
        if kind not in ("ab", "runs"):
            raise ValueError("kind is ab or runs")
        uid = str(uuid.uuid4())
        row = {
            "uuid": uid,
            "kind": kind,
            "run_a_id": run_ids[0],
            "run_b_id": run_ids[1],
            "label_a": label_a[:_MAX_LABEL],
            "label_b": label_b[:_MAX_LABEL],
            "summary": summary,
            "cases": cases,
            "created_at": datetime.now(UTC),
        }
        with self.db.begin() as conn:
            cid = conn.execute(s.comparisons.insert().values(**row).returning(s.comparisons.c.id))
            new_id = int(cid.scalar_one())
        return SavedComparison(
            id=new_id, uuid=uid, kind=kind, run_a=run_uuids[0], run_b=run_uuids[1]
        )

    def comparison(self, ref: str) -> StoredComparison:
        """A stored comparison by id or UUID prefix, with the UUIDs of its two runs."""
        t = s.comparisons
        ra, rb = s.runs.alias("ra"), s.runs.alias("rb")
        base = (
            select(t, ra.c.uuid.label("uuid_a"), rb.c.uuid.label("uuid_b"))
            .outerjoin(ra, ra.c.id == t.c.run_a_id)
            .outerjoin(rb, rb.c.id == t.c.run_b_id)
        )
        with self.db.connect() as conn:
            cid = self.db.resolve(t, ref, "comparison", by_id=True, conn=conn)
            r = conn.execute(base.where(t.c.id == cid)).mappings().one()
        return StoredComparison(
            id=r["id"],
            uuid=r["uuid"],
            kind=r["kind"],
            label_a=r["label_a"],
            label_b=r["label_b"],
            run_a=r["uuid_a"],
            run_b=r["uuid_b"],
            summary=dict(r["summary"] or {}),
            cases=list(r["cases"] or []),
            created_at=utc(r["created_at"]),
        )

    def codegen_page(self, *, limit: int = 50, offset: int = 0) -> list[ReportRow]:
        return self._reports(s.codegen_reports, limit=limit, offset=offset)

    def codegen_detail(self, ref: str) -> ReportRow:
        return self._report(s.codegen_reports, ref, "blast-radius report")

    def comparison_page(self, *, limit: int = 50, offset: int = 0) -> list[ReportRow]:
        return self._reports(s.comparisons, limit=limit, offset=offset)

    def comparison_detail(self, ref: str) -> ReportRow:
        return self._report(s.comparisons, ref, "comparison")

    @staticmethod
    def _report_row(t: Table, r: RowMapping, detail: bool) -> ReportRow:
        is_cg = t is s.codegen_reports
        payload = r.get("report" if is_cg else "cases") if detail else None
        document = payload if isinstance(payload, dict) else None
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
            document=document,
        )

    def _reports(self, t: Table, *, limit: int, offset: int) -> list[ReportRow]:
        cols = [c for c in t.c if c.name not in ("report", "cases")]
        q = (
            select(*cols)
            .order_by(t.c.created_at.desc(), t.c.id.desc())
            .limit(limit)
            .offset(checked_offset(offset))
        )
        with self.db.connect() as conn:
            return [self._report_row(t, r, False) for r in conn.execute(q).mappings()]

    def _report(self, t: Table, ref: str, what: str) -> ReportRow:
        with self.db.connect() as conn:
            rid = self.db.resolve(t, ref, what, by_id=True, conn=conn)
            row = conn.execute(select(t).where(t.c.id == rid)).mappings().one()
        return self._report_row(t, row, True)
