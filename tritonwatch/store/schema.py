"""The database tables (SQLAlchemy Core) and the schema version with its history.

SCHEMA_VERSION history (one line per version; migrations are forward only, see migrations/):
    1  2026-11  machines, builds, runs, series, results (+raw samples), alerts, alert_events,
               codegen, codegen_reports, comparisons, views, orgs, tokens, pushes
    2  2026-11  results.t on SQLite: integer microseconds since the Unix epoch (was ISO text)
    3  2026-11  series index on (operator, provider, variant, shape, dtype, metric), the series
               listing's order, replacing (operator, provider): it pages 1 M series in ms
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

SCHEMA_VERSION = 3

# Named constraints so Alembic can address them on both SQLite and PostgreSQL.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Integer keys are BIGINT on PostgreSQL (tens of millions of results) and INTEGER on SQLite,
# where only INTEGER PRIMARY KEY aliases the rowid.
Id = BigInteger().with_variant(Integer(), "sqlite")
UTCDateTime = DateTime(timezone=True)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Instant(TypeDecorator[datetime]):
    """A UTC instant: ``timestamptz`` on PostgreSQL, integer microseconds since 1970 on SQLite.

    SQLAlchemy's SQLite DateTime is 26 characters of text, in every results row and again in
    the series index. The integer is at most 8 bytes and compares as a number; with it, a run's
    scattered inserts into the series index cost about a fifth less (docs/store.md has the
    figures). Readers see aware UTC datetimes either way; naive ones are taken as UTC.
    """

    impl = UTCDateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(UTCDateTime)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - EPOCH) // _MICROSECOND

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return EPOCH + int(value) * _MICROSECOND
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


orgs = Table(
    "orgs",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Id, primary_key=True),
    Column("org_id", Id, ForeignKey("orgs.id"), nullable=False),
    Column("name", String(200), nullable=False),
    # sha256 of the token; the token itself is shown once and never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(200), nullable=False, default="upload,triage"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
    UniqueConstraint("org_id", "name"),
)

machines = Table(
    "machines",
    metadata,
    Column("id", Id, primary_key=True),
    # sha256 of (name, device, gpu_model, gpu_count): a CPU run never joins a GPU machine's series.
    Column("key", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("device", String(20), nullable=False),
    Column("gpu_model", String(200)),
    Column("gpu_count", Integer),
    Column("org_id", Id, ForeignKey("orgs.id")),
    Column("info", JSON, nullable=False),  # the newest run's machine section
    Column("peaks", JSON),  # measured by `tritonwatch calibrate`
    Column("created_at", UTCDateTime, nullable=False),
)

builds = Table(
    "builds",
    metadata,
    Column("id", Id, primary_key=True),
    Column("key", String(64), nullable=False, unique=True),  # sha256 of the build section
    Column("triton_version", String(200), nullable=False),
    Column("triton_commit", String(100)),
    Column("torch_version", String(200)),
    Column("info", JSON, nullable=False),  # the whole build section
    Column("created_at", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Id, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("org_id", Id, ForeignKey("orgs.id")),
    Column("machine_id", Id, ForeignKey("machines.id"), nullable=False),
    Column("build_id", Id, ForeignKey("builds.id"), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("label", String(200)),
    Column("suite", String(200)),
    Column("device", String(20)),
    Column("n_results", Integer, nullable=False),
    Column("n_failed", Integer, nullable=False),
    Column("info", JSON, nullable=False),  # the run section (command, seed, extra keys)
    Column("machine_info", JSON, nullable=False),  # the machine section as this run saw it
    Column("ingested_at", UTCDateTime, nullable=False),
    Column("uploaded_by", Id, ForeignKey("tokens.id")),
    Index(None, "machine_id", "started_at"),
    Index(None, "started_at"),
)

series = Table(
    "series",
    metadata,
    Column("id", Id, primary_key=True),
    # sha256 of the identifying fields below, so lookups need one indexed column.
    Column("key", String(64), nullable=False, unique=True),
    Column("operator", String(200), nullable=False),
    Column("provider", String(200), nullable=False),
    Column("variant", String(200), nullable=False),
    Column("shape", String(1000), nullable=False),  # canonical JSON, keys sorted
    Column("dtype", String(50), nullable=False),
    Column("mode", String(50), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("unit", String(50), nullable=False),
    Column("better", String(6), nullable=False),
    # The series listing's order: it walks this index and stops at the page's end.
    Index(None, "operator", "provider", "variant", "shape", "dtype", "metric"),
)

results = Table(
    "results",
    metadata,
    Column("id", Id, primary_key=True),
    Column("run_id", Id, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("series_id", Id, ForeignKey("series.id"), nullable=False),
    # Denormalised from the run so a series query is one index range scan.
    Column("machine_id", Id, nullable=False),
    Column("t", Instant, nullable=False),
    Column("status", String(10), nullable=False),
    Column("value", Float),  # median of samples, or the value given
    Column("n", Integer, nullable=False),
    Column("ci_low", Float),  # distribution-free 95% CI of the median
    Column("ci_high", Float),
    Column("samples", LargeBinary),  # float64 little-endian, every sample kept
    Column("correct", Boolean),
    Column("error", Text),
    Column("extra", JSON(none_as_null=True)),
    Index(None, "series_id", "machine_id", "t"),
    Index(None, "run_id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("series_id", Id, ForeignKey("series.id"), nullable=False),
    Column("machine_id", Id, ForeignKey("machines.id"), nullable=False),
    Column("org_id", Id, ForeignKey("orgs.id")),
    Column("direction", String(12), nullable=False),  # regression | improvement
    Column("status", String(20), nullable=False),  # new confirmed acknowledged false_positive fixed
    Column("last_good_run_id", Id, ForeignKey("runs.id"), nullable=False),
    Column("first_bad_run_id", Id, ForeignKey("runs.id"), nullable=False),
    Column("ratio", Float, nullable=False),
    Column("ci_low", Float),
    Column("ci_high", Float),
    Column("p", Float),
    Column("q", Float),
    Column("details", JSON, nullable=False),  # what changed between the builds, segment stats
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("series_id", "machine_id", "first_bad_run_id"),
    Index(None, "status"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("alert_id", Id, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("old_status", String(20)),
    Column("new_status", String(20), nullable=False),
    Column("note", Text),
    Index(None, "alert_id"),
)

codegen = Table(
    "codegen",
    metadata,
    Column("id", Id, primary_key=True),
    Column("build_id", Id, ForeignKey("builds.id"), nullable=False),
    Column("kernel", String(200), nullable=False),
    Column("spec", String(500), nullable=False),  # the specialisation's stable name
    Column("target", String(20), nullable=False),
    Column("stage_hashes", JSON, nullable=False),  # stage -> sha256 of the normalised text
    Column("metrics", JSON, nullable=False),  # registers, spills, shared, instructions, ...
    Column("opcodes", JSON),  # opcode -> count
    Column("compile_ms", Float),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("build_id", "kernel", "spec", "target"),
)

codegen_reports = Table(
    "codegen_reports",
    metadata,
    Column("id", Id, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("build_a_id", Id, ForeignKey("builds.id")),
    Column("build_b_id", Id, ForeignKey("builds.id")),
    Column("env_a", String(500), nullable=False),
    Column("env_b", String(500), nullable=False),
    Column("targets", String(200), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("report", JSON, nullable=False),  # per kernel x target rows, diffs included
    Column("created_at", UTCDateTime, nullable=False),
)

comparisons = Table(
    "comparisons",
    metadata,
    Column("id", Id, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("kind", String(10), nullable=False),  # ab (interleaved) | runs (two stored runs)
    Column("run_a_id", Id, ForeignKey("runs.id")),
    Column("run_b_id", Id, ForeignKey("runs.id")),
    Column("label_a", String(500), nullable=False),
    Column("label_b", String(500), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("cases", JSON, nullable=False),  # per-case verdicts
    Column("created_at", UTCDateTime, nullable=False),
)

views = Table(
    "views",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("page", String(50), nullable=False),
    Column("query", Text, nullable=False),  # the page's URL query string
    Column("token_id", Id, ForeignKey("tokens.id")),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("name"),
)

pushes = Table(
    "pushes",
    metadata,
    Column("run_id", Id, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("server", String(500), primary_key=True),
    Column("pushed_at", UTCDateTime, nullable=False),
)
