"""Codegen metrics and blast-radius reports, as ``store.codegen``.

Codegen rows are keyed by (build, kernel, spec, target); a build is the same ``builds``
row a run with the same build section uses, so alerts can ask what generated code changed
between the last good and the first bad build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from . import schema as s
from .database import Database
from .rows import utc

if TYPE_CHECKING:
    from ..codegen.blast import BlastReport
    from ..codegen.metrics import Compiled

STORED_DIFF_LINES = 120


@dataclass(frozen=True)
class CodegenRow:
    """Static codegen facts of one kernel x spec x target for one build."""

    build_id: int
    triton_version: str
    triton_commit: str | None
    kernel: str
    spec: str
    target: str
    stage_hashes: dict[str, str]
    metrics: dict[str, float]
    key_instructions: dict[str, int]
    opcodes: dict[str, int]
    compile_ms: float | None
    error: str | None


@dataclass(frozen=True)
class CodegenReportInfo:
    """One stored blast report, without its rows."""

    uuid: str
    created_at: datetime
    env_a: str
    env_b: str
    targets: str
    headline: str
    total: int
    changed: int


@dataclass(frozen=True)
class CodegenChange:
    """A kernel x spec x target whose generated code differs between two stored builds."""

    kernel: str
    spec: str
    target: str
    first_changed_stage: str | None  # None: only metrics or errors differ
    metrics_a: dict[str, float]
    metrics_b: dict[str, float]
    error_a: str | None
    error_b: str | None


class Codegen:
    """``store.codegen``: record codegen rows and blast reports, and read them back."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _upsert(self, conn: Connection, build_id: int, rows: Sequence[Compiled]) -> None:
        now = datetime.now(UTC)
        for c in rows:
            if c.status in ("unavailable", "skipped"):
                continue
            values = {
                "stage_hashes": c.stage_hashes,
                "metrics": {**c.metrics, "key_instructions": c.key_instructions, "tools": c.tools},
                "opcodes": c.opcodes or None,
                "compile_ms": c.compile_ms,
                "error": (c.error or None) and c.error[:20000],
                "created_at": now,
            }
            ins = self.db.insert(s.codegen).values(
                build_id=build_id, kernel=c.kernel, spec=c.spec, target=c.target, **values
            )
            conn.execute(
                ins.on_conflict_do_update(  # type: ignore[attr-defined]
                    index_elements=["build_id", "kernel", "spec", "target"], set_=values
                )
            )

    def add(self, build: dict[str, Any], rows: Sequence[Compiled]) -> int:
        """Record one build's codegen rows (replacing earlier ones); returns the build id.

        ``build`` is a run's build section (``{"triton": {"version": ..., "commit": ...}, ...}``),
        so codegen rows join the runs measured with the same build.
        """
        with self.db.writing() as (conn, staged):
            bid = self.db.build_id(conn, build, staged)
            self._upsert(conn, bid, rows)
        return bid

    def add_report(self, report: BlastReport) -> str:
        """Store both builds' codegen rows and the report, in one transaction; returns its UUID."""
        doc = report.to_json(with_diffs=True)
        for row in doc["results"]:
            for stage, text in list(row.get("diffs", {}).items()):
                lines = text.splitlines()
                if len(lines) > STORED_DIFF_LINES:
                    row["diffs"][stage] = "\n".join(lines[:STORED_DIFF_LINES] + ["..."])
        with self.db.writing() as (conn, staged):
            a_id = self.db.build_id(conn, report.env_a.build_info(), staged)
            b_id = self.db.build_id(conn, report.env_b.build_info(), staged)
            self._upsert(conn, a_id, [r.a for r in report.rows])
            self._upsert(conn, b_id, [r.b for r in report.rows])
            conn.execute(
                s.codegen_reports.insert().values(
                    uuid=report.uuid,
                    build_a_id=a_id,
                    build_b_id=b_id,
                    env_a=report.env_a.label[:500],
                    env_b=report.env_b.label[:500],
                    targets=",".join(report.targets)[:200],
                    summary=report.summary.to_json(),
                    report=doc,
                    created_at=report.created_at,
                )
            )
        return report.uuid

    def reports(self, *, limit: int = 50) -> list[CodegenReportInfo]:
        """Stored blast reports, newest first."""
        q = (
            select(
                s.codegen_reports.c.uuid,
                s.codegen_reports.c.created_at,
                s.codegen_reports.c.env_a,
                s.codegen_reports.c.env_b,
                s.codegen_reports.c.targets,
                s.codegen_reports.c.summary,
            )
            .order_by(s.codegen_reports.c.created_at.desc(), s.codegen_reports.c.id.desc())
            .limit(limit)
        )
        with self.db.connect() as conn:
            return [
                CodegenReportInfo(
                    uuid=r.uuid,
                    created_at=utc(r.created_at) or r.created_at,
                    env_a=r.env_a,
                    env_b=r.env_b,
                    targets=r.targets,
                    headline=r.summary.get("headline", ""),
                    total=int(r.summary.get("total", 0)),
                    changed=int(r.summary.get("changed", 0)),
                )
                for r in conn.execute(q)
            ]

    def report(self, ref: str) -> dict[str, Any]:
        """A stored blast report (the JSON document ``blast --format json`` writes, with capped
        diffs), by UUID or a unique prefix of at least 4 characters."""
        with self.db.connect() as conn:
            rid = self.db.resolve(s.codegen_reports, ref, "blast report", conn=conn)
            return conn.execute(
                select(s.codegen_reports.c.report).where(s.codegen_reports.c.id == rid)
            ).scalar_one()

    def rows(
        self,
        *,
        build_id: int | None = None,
        triton_version: str | None = None,
        target: str | None = None,
        kernel: str | None = None,
    ) -> list[CodegenRow]:
        """Stored codegen rows, filtered; ordered by build, kernel, spec, target."""
        q = select(s.codegen, s.builds.c.triton_version, s.builds.c.triton_commit).join(
            s.builds, s.builds.c.id == s.codegen.c.build_id
        )
        for col, val in (
            (s.codegen.c.build_id, build_id),
            (s.builds.c.triton_version, triton_version),
            (s.codegen.c.target, target),
            (s.codegen.c.kernel, kernel),
        ):
            if val is not None:
                q = q.where(col == val)
        q = q.order_by(
            s.codegen.c.build_id, s.codegen.c.kernel, s.codegen.c.spec, s.codegen.c.target
        )
        with self.db.connect() as conn:
            out = []
            for r in conn.execute(q).mappings():
                metrics = dict(r["metrics"] or {})
                keys = metrics.pop("key_instructions", {}) or {}
                metrics.pop("tools", None)
                out.append(
                    CodegenRow(
                        build_id=r["build_id"],
                        triton_version=r["triton_version"],
                        triton_commit=r["triton_commit"],
                        kernel=r["kernel"],
                        spec=r["spec"],
                        target=r["target"],
                        stage_hashes=r["stage_hashes"] or {},
                        metrics=metrics,
                        key_instructions=keys,
                        opcodes=r["opcodes"] or {},
                        compile_ms=r["compile_ms"],
                        error=r["error"],
                    )
                )
            return out

    def changes(self, build_a_id: int, build_b_id: int) -> list[CodegenChange]:
        """What generated code changed between two stored builds (rows present in both)."""
        # Imported here: the codegen package is heavy and only this read needs its stage order.
        from ..codegen.normalize import changed_stages

        a = {(r.kernel, r.spec, r.target): r for r in self.rows(build_id=build_a_id)}
        b = {(r.kernel, r.spec, r.target): r for r in self.rows(build_id=build_b_id)}
        out = []
        for key in sorted(set(a) & set(b)):
            ra, rb = a[key], b[key]
            first = next(iter(changed_stages(ra.stage_hashes, rb.stage_hashes)), None)
            if first is None and ra.metrics == rb.metrics and ra.error == rb.error:
                continue
            out.append(
                CodegenChange(
                    kernel=key[0],
                    spec=key[1],
                    target=key[2],
                    first_changed_stage=first,
                    metrics_a=ra.metrics,
                    metrics_b=rb.metrics,
                    error_a=ra.error,
                    error_b=rb.error,
                )
            )
        return out
