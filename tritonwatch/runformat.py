"""The run format ``tritonwatch.run/1``: one JSON object per run, one run per line in ``.jsonl``.

The pydantic models below are the definition; ``tritonwatch/schemas/run-1.schema.json`` is
generated from them (a test keeps it in sync) and ``docs/run-format.md`` explains each field.
The runner writes this format, ``import``/``export`` read and write it, and the upload API
validates against it, so a run looks the same wherever it travels.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .formats.metrics import better_of

FORMAT = "tritonwatch.run/1"
MAX_SAMPLES = 100_000  # samples one result may hold

Status = Literal["ok", "error", "incorrect", "skipped"]
Better = Literal["lower", "higher"]

#: What happened to a result, as every view says it: timed (``ok``), checked for correctness
#: but not timed (the Triton interpreter on a CPU), not available here (with the reason in
#: ``error``), wrong, or crashed. Only the last two are failures.
OUTCOMES = ("ok", "checked", "not available", "incorrect", "error")
FAILURES = ("incorrect", "error")
OUTCOME_TEXT = {
    "ok": "ok",
    "checked": "checked (correct, not timed)",
    "not available": "not available here",
    "incorrect": "incorrect",
    "error": "error",
}


def outcome(status: str, correct: bool | None) -> str:
    """One of :data:`OUTCOMES` for a stored ``status`` and ``correct``.

    A ``skipped`` result whose correctness was checked is ``checked``; any other skip is
    ``not available`` (its ``error`` says why).
    """
    if status == "skipped":
        return "checked" if correct else "not available"
    return status if status in OUTCOMES else "error"


def is_failure(status: str, correct: bool | None = None) -> bool:
    """Whether a result counts as a failure: incorrect or error, never a skip."""
    return outcome(status, correct) in FAILURES


def metric_better(metric: str, explicit: str | None = None) -> Better:
    """Whether a lower or a higher value of ``metric`` is better.

    An explicit ``better`` wins; otherwise the metric table (``tritonwatch/formats/metrics.py``,
    shared with every importer) decides, and an unknown metric is treated as a cost (lower is
    better), which is the safe reading for times and sizes.
    """
    return better_of(metric, explicit)


class _Open(BaseModel):
    """A section that keeps keys it does not know, so nothing a producer wrote is lost."""

    model_config = ConfigDict(extra="allow")


class RunInfo(_Open):
    id: uuid.UUID = Field(description="Run UUID; uploads and imports are idempotent by it.")
    started_at: datetime = Field(description="ISO 8601 start time; naive times are taken as UTC.")
    finished_at: datetime | None = None
    label: str | None = Field(None, max_length=200)
    org: str | None = Field(None, max_length=100)
    command: str | None = Field(None, max_length=4000)
    suite: str | None = Field(None, max_length=200)
    seed: int | None = None
    device: str | None = Field(
        None, max_length=20, description="cuda, rocm, xpu or cpu: where kernels ran."
    )

    @field_validator("started_at", "finished_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        try:
            return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
            raise ValueError("the time in UTC is outside years 1 to 9999") from None


class MachineInfo(_Open):
    name: str = Field(min_length=1, max_length=200)
    gpu_model: str | None = Field(None, max_length=200)
    gpu_count: int | None = Field(None, ge=0, le=1_000_000)
    driver: str | None = None
    toolkit: str | None = None


class Dependency(_Open):
    version: str = Field(min_length=1, max_length=200)
    commit: str | None = Field(None, max_length=100)


class BuildInfo(_Open):
    triton: Dependency

    @model_validator(mode="after")
    def _deps_are_dependencies(self) -> BuildInfo:
        for key, value in (self.model_extra or {}).items():
            if not isinstance(value, dict) or "version" not in value:
                raise ValueError(f"build.{key} must be an object with a 'version'")
        return self


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator: str = Field(min_length=1, max_length=200)
    provider: str = Field(min_length=1, max_length=200)
    variant: str = Field("", max_length=200)
    shape: dict[str, int | float | str | bool] = Field(
        description='Named sizes, e.g. {"M": 4096, "N": 4096, "K": 4096}.'
    )
    dtype: str = Field(min_length=1, max_length=50)
    mode: str = Field("fwd", max_length=50)
    metric: str = Field(min_length=1, max_length=100)
    unit: str = Field(max_length=50)
    samples: list[float] | None = Field(None, max_length=MAX_SAMPLES)
    value: float | None = None
    better: Better | None = None
    status: Status = "ok"
    error: str | None = Field(None, max_length=20_000)
    correct: bool | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_a_number(self) -> Result:
        if self.status == "ok" and not self.samples and self.value is None:
            raise ValueError("a result with status 'ok' needs 'samples' or 'value'")
        for x in self.samples or ():
            if not math.isfinite(x):
                raise ValueError("samples must be finite numbers")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("value must be a finite number")
        return self


class Run(BaseModel):
    """One run: who ran what where, with which build, and every result."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["tritonwatch.run/1"]
    run: RunInfo
    machine: MachineInfo
    build: BuildInfo
    results: list[Result] = Field(max_length=1_000_000)


def parse_run(data: dict[str, Any] | str | bytes) -> Run:
    """Validate one run (a dict or its JSON text); raises ``ValueError`` with every bad field."""
    try:
        if isinstance(data, (str, bytes)):
            return Run.model_validate_json(data)
        return Run.model_validate(data)
    except ValidationError as e:
        raise ValueError(describe_errors(e)) from None


def describe_errors(e: ValidationError, limit: int = 5) -> str:
    """The first few field errors of a validation failure, as ``field.path: message``."""
    parts = []
    for err in e.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {err['msg']}")
    more = len(e.errors()) - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def dump_run(run: Run) -> dict[str, Any]:
    """The JSON-ready dict of a run, with empty optional fields left out."""
    return run.model_dump(mode="json", exclude_none=True)


def new_run_id() -> uuid.UUID:
    return uuid.uuid4()


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the format, as generated from the models."""
    schema = Run.model_json_schema()
    schema["$id"] = "https://tritonwatch.dev/schemas/run-1.schema.json"
    schema["title"] = FORMAT
    return schema


def shipped_schema() -> dict[str, Any]:
    """The JSON Schema file shipped in the package."""
    text = resources.files("tritonwatch").joinpath("schemas/run-1.schema.json").read_text("utf-8")
    return json.loads(text)


def now() -> datetime:
    return datetime.now(UTC)
