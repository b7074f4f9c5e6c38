"""The Store: the one API the rest of tritonwatch uses to read and write the results database.

A :class:`Store` is a :class:`~.database.Database` handle plus one small object per noun, each
in its own module: ``store.runs``, ``store.series``, ``store.history``, ``store.alerts``,
``store.codegen``, ``store.reports``, ``store.access``, ``store.pushes``, ``store.overview``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from ..naming import canonical_shape
from ..runformat import Run
from . import engine as _engine
from . import schema as s
from .access import SCOPES, Access, CreatedToken, SavedView, TokenRow
from .alerts import AlertDraft, AlertEvent, AlertRow, Alerts, ExistingAlert, UpsertResult
from .codegen import Codegen, CodegenChange, CodegenReportInfo, CodegenRow
from .database import Database
from .history import History, SeriesPoints
from .overview import HeatCell, Overview
from .pushes import Pushes
from .reports import ReportRow, Reports
from .rows import AddedRun, MachineRow, RunDetail, RunSummary, SeriesInfo, StoreInfo
from .runs import Runs, series_key
from .series import Series, SeriesAlert, SeriesRef

if TYPE_CHECKING:
    from ..codegen.blast import BlastReport
    from ..codegen.metrics import Compiled


class Store:
    """A tritonwatch results database (SQLite file or PostgreSQL)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.db = Database(engine, url)
        self.runs = Runs(self.db)
        self.series = Series(self.db)
        self.history = History(self.db)
        self.alerts = Alerts(self.db)
        self.codegen = Codegen(self.db)
        self.reports = Reports(self.db)
        self.access = Access(self.db)
        self.pushes = Pushes(self.db)
        self.overview = Overview(self.db, self.runs)

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
        self.db.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        return self.db.engine

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def info(self) -> StoreInfo:
        counts = {}
        with self.db.connect() as conn:
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

    # -- legacy delegates (house refactor) ------------------------------------------------
    # The old flat names, kept while other branches still call them; each forwards to the noun
    # that now owns it. The lead removes them after merging.
    def add_run(
        self, run: Run, *, org: str | None = None, uploaded_by: int | None = None
    ) -> AddedRun:  # legacy delegate (house refactor)
        return self.runs.add(run, org=org, uploaded_by=uploaded_by)

    def add_runs(self, runs: Iterable[Run]) -> list[AddedRun]:  # legacy delegate (house refactor)
        return self.runs.add_many(runs)

    def resolve_run(
        self, ref: str, conn: Connection | None = None
    ) -> int:  # legacy delegate (house refactor)
        return self.runs.resolve(ref, conn)

    def get_run(self, ref: str) -> RunDetail:  # legacy delegate (house refactor)
        return self.runs.get(ref)

    def iter_runs(self, **filters: Any) -> Iterator[RunDetail]:  # legacy delegate (house refactor)
        return self.runs.iter(**filters)

    def machines(self) -> list[MachineRow]:  # legacy delegate (house refactor)
        return self.series.machines()

    def machine_id(
        self, name: str, device: str, gpu_model: str | None, gpu_count: int | None
    ) -> int | None:  # legacy delegate (house refactor)
        return self.series.machine_id(name, device, gpu_model, gpu_count)

    def set_machine_peaks(
        self, *args: Any, **kwargs: Any
    ) -> int:  # legacy delegate (house refactor)
        return self.series.set_peaks(*args, **kwargs)

    def machine_peaks(
        self, name: str, device: str, gpu_model: str | None, gpu_count: int | None
    ) -> dict[str, Any] | None:  # legacy delegate (house refactor)
        return self.series.peaks(name, device, gpu_model, gpu_count)

    def series_list(self, **filters: Any) -> list[SeriesInfo]:  # legacy delegate (house refactor)
        return self.series.find(**filters)

    def series_catalog(self, **filters: Any) -> list[SeriesRef]:  # legacy delegate (house refactor)
        return self.series.catalog(**filters)

    def series_facets(
        self, limit: int = 500
    ) -> dict[str, list[str]]:  # legacy delegate (house refactor)
        return self.series.facets(limit)

    def series_alerts(
        self, pairs: list[tuple[int, int]]
    ) -> list[SeriesAlert]:  # legacy delegate (house refactor)
        return self.series.alerts(pairs)

    def series_points(self, **filters: Any) -> SeriesPoints:  # legacy delegate (house refactor)
        return self.history.points(**filters)

    def result_samples(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], np.ndarray]:  # legacy delegate (house refactor)
        return self.history.samples(keys)

    def build_infos(
        self, build_ids: Iterable[int]
    ) -> dict[int, dict[str, Any]]:  # legacy delegate (house refactor)
        return self.history.builds(build_ids)

    def run_refs(
        self, run_ids: Iterable[int]
    ) -> dict[int, dict[str, Any]]:  # legacy delegate (house refactor)
        return self.history.runs(run_ids)

    def codegen_hashes(
        self, build_ids: Iterable[int]
    ) -> dict[int, dict[tuple[str, str, str], str]]:  # legacy delegate (house refactor)
        return self.history.codegen_hashes(build_ids)

    def get_alert(self, alert_id: int) -> AlertRow:  # legacy delegate (house refactor)
        return self.alerts.get(alert_id)

    def alert_history(self, alert_id: int) -> list[AlertEvent]:  # legacy delegate (house refactor)
        return self.alerts.history(alert_id)

    def set_alert_status(
        self, alert_id: int, status: str, *, actor: str, note: str | None = None
    ) -> AlertRow:  # legacy delegate (house refactor)
        return self.alerts.set_status(alert_id, status, actor=actor, note=note)

    def existing_alerts(
        self, pairs: Iterable[tuple[int, int]] | None = None
    ) -> list[ExistingAlert]:  # legacy delegate (house refactor)
        return self.alerts.existing(pairs)

    def upsert_alerts(
        self, drafts: Sequence[AlertDraft], *, actor: str = "tritonwatch detect"
    ) -> UpsertResult:  # legacy delegate (house refactor)
        return self.alerts.upsert(drafts, actor=actor)

    def add_codegen(
        self, build: dict[str, Any], rows: Sequence[Compiled]
    ) -> int:  # legacy delegate (house refactor)
        return self.codegen.add(build, rows)

    def add_blast_report(self, report: BlastReport) -> str:  # legacy delegate (house refactor)
        return self.codegen.add_report(report)

    def codegen_reports(
        self, *, limit: int = 50
    ) -> list[CodegenReportInfo]:  # legacy delegate (house refactor)
        return self.codegen.reports(limit=limit)

    def codegen_report(self, ref: str) -> dict[str, Any]:  # legacy delegate (house refactor)
        return self.codegen.report(ref)

    def codegen_rows(self, **filters: Any) -> list[CodegenRow]:  # legacy delegate (house refactor)
        return self.codegen.rows(**filters)

    def codegen_changes(
        self, build_a_id: int, build_b_id: int
    ) -> list[CodegenChange]:  # legacy delegate (house refactor)
        return self.codegen.changes(build_a_id, build_b_id)

    def codegen_report_page(
        self, *, limit: int = 50, offset: int = 0
    ) -> list[ReportRow]:  # legacy delegate (house refactor)
        return self.reports.codegen_page(limit=limit, offset=offset)

    def codegen_report_detail(self, ref: str) -> ReportRow:  # legacy delegate (house refactor)
        return self.reports.codegen_detail(ref)

    def comparison_page(
        self, *, limit: int = 50, offset: int = 0
    ) -> list[ReportRow]:  # legacy delegate (house refactor)
        return self.reports.comparison_page(limit=limit, offset=offset)

    def comparison_detail(self, ref: str) -> ReportRow:  # legacy delegate (house refactor)
        return self.reports.comparison_detail(ref)

    def create_token(
        self, org: str, name: str, *, scopes: tuple[str, ...] = SCOPES
    ) -> CreatedToken:  # legacy delegate (house refactor)
        return self.access.create_token(org, name, scopes=scopes)

    def check_token(self, plaintext: str) -> TokenRow | None:  # legacy delegate (house refactor)
        return self.access.check_token(plaintext)

    def list_tokens(
        self, org: str | None = None
    ) -> list[TokenRow]:  # legacy delegate (house refactor)
        return self.access.tokens(org)

    def revoke_token(self, token_id: int) -> TokenRow:  # legacy delegate (house refactor)
        return self.access.revoke_token(token_id)

    def save_view(
        self, name: str, page: str, query: str, token_id: int | None
    ) -> SavedView:  # legacy delegate (house refactor)
        return self.access.save_view(name, page, query, token_id)

    def views(self) -> list[SavedView]:  # legacy delegate (house refactor)
        return self.access.views()

    def get_view(self, name: str) -> SavedView:  # legacy delegate (house refactor)
        return self.access.get_view(name)

    def latest_runs(
        self, per_machine: int = 2
    ) -> dict[int, list[RunSummary]]:  # legacy delegate (house refactor)
        return self.overview.latest_runs(per_machine)

    def heatmap(self) -> list[HeatCell]:  # legacy delegate (house refactor)
        return self.overview.heatmap()

    def results_page(
        self, **filters: Any
    ) -> list[dict[str, Any]]:  # legacy delegate (house refactor)
        return self.overview.results(**filters)


__all__ = ["Store", "canonical_shape", "series_key"]
