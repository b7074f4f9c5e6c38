"""Plain objects the Store returns (one dataclass per kind of row), and the sample encoding."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np


def key_hash(obj: Any) -> str:
    """sha256 of an object's canonical JSON: the one-column keys of machines, builds, series."""
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def encode_samples(samples: Sequence[float]) -> bytes:
    """Raw samples as little-endian float64: compact, exact, and readable from any language."""
    return np.asarray(samples, dtype="<f8").tobytes()


def decode_samples(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f8")


def series_fields(r: Mapping[Any, Any]) -> dict[str, Any]:
    """The identifying fields of a series from a row of the ``series`` table (shape decoded)."""
    return {
        "operator": r["operator"],
        "provider": r["provider"],
        "variant": r["variant"],
        "shape": json.loads(r["shape"]),
        "dtype": r["dtype"],
        "mode": r["mode"],
        "metric": r["metric"],
        "unit": r["unit"],
    }


def utc(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time tritonwatch stores is UTC."""
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class AddedRun:
    uuid: str
    id: int
    created: bool
    n_results: int


@dataclass(frozen=True)
class StoreInfo:
    url: str
    backend: str
    schema_version: int
    counts: dict[str, int]


@dataclass(frozen=True)
class RunSummary:
    id: int
    uuid: str
    started_at: datetime
    finished_at: datetime | None
    label: str | None
    suite: str | None
    device: str | None
    machine: str
    gpu_model: str | None
    triton_version: str
    triton_commit: str | None
    org: str | None
    n_results: int
    n_failed: int
    build_id: int
    machine_id: int
    # Results per outcome (``runformat.OUTCOMES``: ok, checked, not available, incorrect,
    # error); ``n_failed`` counts only incorrect and error.
    outcomes: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False  # the run was stopped (Ctrl-C) and holds the cases that finished

    @classmethod
    def from_row(cls, r: Mapping[Any, Any], outcomes: dict[str, int] | None = None) -> RunSummary:
        info = r.get("info") if hasattr(r, "get") else None
        failed = r["n_failed"]
        if outcomes is not None:
            failed = outcomes.get("incorrect", 0) + outcomes.get("error", 0)
        return cls(
            id=r["id"],
            uuid=r["uuid"],
            started_at=utc(r["started_at"]),  # type: ignore[arg-type]
            finished_at=utc(r["finished_at"]),
            label=r["label"],
            suite=r["suite"],
            device=r["device"],
            machine=r["machine"],
            gpu_model=r["gpu_model"],
            triton_version=r["triton_version"],
            triton_commit=r["triton_commit"],
            org=r["org"],
            n_results=r["n_results"],
            n_failed=failed,
            build_id=r["build_id"],
            machine_id=r["machine_id"],
            outcomes=dict(outcomes or {}),
            interrupted=bool(isinstance(info, dict) and info.get("interrupted")),
        )


@dataclass(frozen=True)
class ResultRow:
    operator: str
    provider: str
    variant: str
    shape: dict[str, Any]
    dtype: str
    mode: str
    metric: str
    unit: str
    better: str
    status: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    samples: np.ndarray | None
    correct: bool | None
    error: str | None
    extra: dict[str, Any]
    series_id: int

    @classmethod
    def from_row(cls, r: Mapping[Any, Any]) -> ResultRow:
        return cls(
            **series_fields(r),
            better=r["better"],
            status=r["status"],
            value=r["value"],
            ci_low=r["ci_low"],
            ci_high=r["ci_high"],
            n=r["n"],
            samples=decode_samples(r["samples"]),
            correct=r["correct"],
            error=r["error"],
            extra=r["extra"] or {},
            series_id=r["series_id"],
        )


@dataclass(frozen=True)
class RunDetail:
    summary: RunSummary
    info: dict[str, Any]
    machine_info: dict[str, Any]
    build_info: dict[str, Any]
    results: list[ResultRow] = field(default_factory=list)


@dataclass(frozen=True)
class MachineRow:
    id: int
    name: str
    device: str
    gpu_model: str | None
    gpu_count: int | None
    info: dict[str, Any]
    peaks: dict[str, Any] | None

    @classmethod
    def from_row(cls, r: Mapping[Any, Any]) -> MachineRow:
        return cls(
            id=r["id"],
            name=r["name"],
            device=r["device"],
            gpu_model=r["gpu_model"],
            gpu_count=r["gpu_count"],
            info=r["info"],
            peaks=r["peaks"],
        )


@dataclass(frozen=True)
class SeriesInfo:
    id: int
    operator: str
    provider: str
    variant: str
    shape: dict[str, Any]
    dtype: str
    mode: str
    metric: str
    unit: str
    better: str
    machine_id: int
    machine: str
    points: int
    last_t: datetime | None

    @classmethod
    def from_row(cls, r: Mapping[Any, Any]) -> SeriesInfo:
        return cls(
            id=r["id"],
            **series_fields(r),
            better=r["better"],
            machine_id=r["machine_id"],
            machine=r["machine"],
            points=r["points"],
            last_t=utc(r["last_t"]),
        )


@dataclass(frozen=True)
class Point:
    """One night of a series: the run's time, its median and CI, and the build it measured."""

    t: datetime | None
    value: float | None
    ci_low: float | None
    ci_high: float | None
    status: str
    n: int
    run_uuid: str
    label: str | None
    build_id: int
    triton_version: str
    triton_commit: str | None
    samples: np.ndarray | None = None
