"""Shipped fakes and fixtures for testing code built on tritonwatch, with no GPU.

``make_run`` builds a valid ``tritonwatch.run/1`` run with synthetic samples (``make_run_document``\nthe same as plain JSON, unvalidated);
``make_histories`` makes nightly histories with planted steps and their ground truth, ``score``
checks detections against it; ``make_corpus``/``score_corpus`` (from :mod:`.corpus`) do the same
per behaviour (regression windows, bands, clocks, drift, ...); and ``history_runs``/``write_jsonl`` turn histories into run/1 JSONL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import (
    BEHAVIOURS,
    HELD_OUT,
    TUNING,
    BehaviourScore,
    Corpus,
    CorpusParams,
    CorpusScore,
    Event,
    make_corpus,
    score_corpus,
)
from .runformat import FORMAT, Run, parse_run

__all__ = [
    "BEHAVIOURS",
    "HELD_OUT",
    "TUNING",
    "BehaviourScore",
    "Corpus",
    "CorpusParams",
    "CorpusScore",
    "Event",
    "Histories",
    "PlantedStep",
    "Score",
    "history_runs",
    "make_corpus",
    "make_histories",
    "make_run",
    "make_run_document",
    "score",
    "score_corpus",
    "truth_night",
    "write_jsonl",
]


def make_run(
    *,
    results: Sequence[dict[str, Any]] | None = None,
    n_results: int = 3,
    n_samples: int = 20,
    machine: str = "test-gpu",
    gpu_model: str | None = "NVIDIA H100 80GB HBM3",
    triton: str = "3.9.0",
    commit: str | None = None,
    started_at: datetime | str | None = None,
    org: str | None = None,
    label: str | None = None,
    seed: int = 0,
    run_id: uuid.UUID | str | None = None,
) -> Run:
    """A valid run with ``n_results`` matmul timings of ``n_samples`` samples each (or ``results``)."""
    return parse_run(
        make_run_document(
            results=results,
            n_results=n_results,
            n_samples=n_samples,
            machine=machine,
            gpu_model=gpu_model,
            triton=triton,
            commit=commit,
            started_at=started_at,
            org=org,
            label=label,
            seed=seed,
            run_id=run_id,
        )
    )


def make_run_document(
    *,
    results: Sequence[dict[str, Any]] | None = None,
    n_results: int = 3,
    n_samples: int = 20,
    machine: str = "test-gpu",
    gpu_model: str | None = "NVIDIA H100 80GB HBM3",
    triton: str = "3.9.0",
    commit: str | None = None,
    started_at: datetime | str | None = None,
    org: str | None = None,
    label: str | None = None,
    seed: int = 0,
    run_id: uuid.UUID | str | None = None,
) -> dict[str, Any]:
    """The ``tritonwatch.run/1`` document :func:`make_run` validates, as JSON-ready dicts and not
    validated, so a test can send it over HTTP or break one field of it on purpose."""
    rng = np.random.default_rng(seed)
    if results is None:
        results = [
            {
                "operator": "matmul",
                "provider": "triton",
                "variant": "pointers",
                "shape": {"M": 256 * (i + 1), "N": 256, "K": 256},
                "dtype": "fp16",
                "metric": "time",
                "unit": "ms",
                "samples": (1.0 + 0.01 * rng.standard_normal(n_samples)).tolist(),
            }
            for i in range(n_results)
        ]
    build: dict[str, Any] = {"triton": {"version": triton}, "torch": {"version": "2.13.0"}}
    if commit:
        build["triton"]["commit"] = commit
    if not isinstance(started_at, str):
        started_at = (started_at or datetime.now(UTC)).isoformat()
    return {
        "format": FORMAT,
        "run": {
            "id": str(run_id or uuid.UUID(int=int(rng.integers(0, 2**63)) ^ uuid.uuid4().int)),
            "started_at": started_at,
            **({"org": org} if org else {}),
            **({"label": label} if label else {}),
        },
        "machine": {"name": machine, **({"gpu_model": gpu_model} if gpu_model else {})},
        "build": build,
        "results": list(results),
    }


# -- synthetic nightly histories with planted steps -------------------------------------------
@dataclass(frozen=True)
class PlantedStep:
    """Ground truth: series ``row`` changes by ``size`` (relative, signed) from night ``night``."""

    row: int
    night: int
    size: float
    noise: float


@dataclass(frozen=True)
class Histories:
    """Nightly medians (rows = series, columns = nights, NaN = no result) and their ground truth.

    ``samples`` (when asked for) holds each night's raw samples: shape (series, nights, k).
    """

    values: np.ndarray
    noise: np.ndarray
    step: np.ndarray  # planted relative step per series (0 = none)
    truth: list[PlantedStep]
    samples: np.ndarray | None = None


def make_histories(
    n_series: int = 1000,
    n_nights: int = 60,
    *,
    noise_levels: Sequence[float] = (0.003, 0.005, 0.01, 0.02, 0.05),
    step_sizes: Sequence[float] = (0.01, 0.02, 0.03, 0.05, 0.10, 0.25),
    step_fraction: float = 0.1,
    regression_share: float = 0.7,
    min_before: int = 8,
    min_after: int = 2,
    bimodal_fraction: float = 0.2,
    drift_fraction: float = 0.2,
    max_drift: float = 0.01,
    outlier_rate: float = 0.01,
    missing_rate: float = 0.02,
    new_case_fraction: float = 0.05,
    samples_per_night: int = 0,
    seed: int = 0,
) -> Histories:
    """Realistic GPU benchmark histories with planted steps of known size and night.

    Each series has a base time (log-uniform 10 us to 100 ms) and a night-to-night noise level
    drawn from ``noise_levels`` (relative sd). On top: a two-state clock (some nights run in a
    slower state, 2 noise sds away), slow linear drift of up to ``max_drift`` over the history,
    single-night outliers (+5% to +30%, the next night is normal again), missing nights, and
    cases that appear part-way through. ``step_fraction`` of the series get one step, of a size
    from ``step_sizes``, on a night with at least ``min_before`` nights before and ``min_after``
    after; ``regression_share`` of them make the metric (a time) larger.
    """
    rng = np.random.default_rng(seed)
    s, n = n_series, n_nights
    noise = rng.choice(np.asarray(noise_levels, dtype=np.float64), size=s)
    base = np.exp(rng.uniform(np.log(0.01), np.log(100.0), size=s))
    log_night = noise[:, None] * rng.standard_normal((s, n))
    bimodal = rng.random(s) < bimodal_fraction
    slow = (rng.random((s, n)) < 0.25) & bimodal[:, None]
    log_night += np.where(slow, 2.0 * noise[:, None], 0.0)
    drifting = rng.random(s) < drift_fraction
    drift = np.where(drifting, rng.uniform(-max_drift, max_drift, size=s), 0.0)
    log_night += np.log1p(drift)[:, None] * np.linspace(0.0, 1.0, n)[None, :]
    step = np.zeros(s)
    truth: list[PlantedStep] = []
    stepped = np.flatnonzero(rng.random(s) < step_fraction)
    for r in stepped:
        size = float(rng.choice(np.asarray(step_sizes)))
        size = size if rng.random() < regression_share else -size / (1 + size)
        night = int(rng.integers(min_before, n - min_after + 1))
        log_night[r, night:] += np.log1p(size)
        step[r] = size
        truth.append(PlantedStep(row=int(r), night=night, size=size, noise=float(noise[r])))
    spikes = rng.random((s, n)) < outlier_rate
    spikes[:, -1] = False  # the newest night's spike would not have reverted yet
    log_night += np.where(spikes, np.log1p(rng.uniform(0.05, 0.30, size=(s, n))), 0.0)
    values = base[:, None] * np.exp(log_night)
    samples = None
    if samples_per_night:
        within = np.maximum(noise / 2, 0.002)[:, None, None]
        samples = values[:, :, None] * np.exp(
            within * rng.standard_normal((s, n, samples_per_night))
        )
        values = np.median(samples, axis=2)
    full = values.copy()
    values[rng.random((s, n)) < missing_rate] = np.nan
    new = rng.random(s) < new_case_fraction
    for r in np.flatnonzero(new):
        first = int(rng.integers(1, n // 3))
        if step[r] and first >= truth_night(truth, int(r)) - min_before:
            continue  # keep the planted step detectable
        values[r, :first] = np.nan
    for t in truth:  # keep the nights that define a planted step
        span = slice(t.night - 1, t.night + min_after)
        values[t.row, span] = full[t.row, span]
    if samples is not None:
        samples[~np.isfinite(values)] = np.nan
    return Histories(values=values, noise=noise, step=step, truth=truth, samples=samples)


def truth_night(truth: Sequence[PlantedStep], row: int) -> int:
    """The night of the step planted in ``row`` (a large number when none was)."""
    for t in truth:
        if t.row == row:
            return t.night
    return 1 << 30


@dataclass(frozen=True)
class Score:
    """Detections scored against planted steps."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float


def score(
    found: Sequence[tuple[int, int, float]], truth: Sequence[PlantedStep], *, tolerance: int = 1
) -> Score:
    """Score detections ``(row, first bad night, signed relative change)`` against the truth.

    A detection is a true positive when its series has a planted step within ``tolerance``
    nights in the same direction (each step matches at most once); everything else is a false
    positive.
    """
    by_row = {t.row: t for t in truth}
    matched: set[int] = set()
    tp = fp = 0
    for row, night, change in found:
        t = by_row.get(row)
        if (
            t is not None
            and row not in matched
            and abs(night - t.night) <= tolerance
            and np.sign(change) == np.sign(t.size)
        ):
            matched.add(row)
            tp += 1
        else:
            fp += 1
    fn = len(truth) - len(matched)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(tp=tp, fp=fp, fn=fn, precision=precision, recall=recall, f1=f1)


def history_runs(
    hist: Histories,
    *,
    machine: str = "gpu-a",
    start: datetime | None = None,
    operators: Sequence[str] = ("matmul", "softmax", "layer_norm", "attention"),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One ``tritonwatch.run/1`` document per night of ``hist`` (every series a result).

    Night ``i`` is built from Triton commit ``c{i:07x}...``; results carry the raw samples when
    the histories have them, else the nightly value.
    """
    from datetime import timedelta

    start = start or datetime(2026, 9, 1, 2, 0, tzinfo=UTC)
    s, n = hist.values.shape
    rng = np.random.default_rng(seed)
    docs = []
    for night in range(n):
        results = []
        for r in range(s):
            v = hist.values[r, night]
            if not np.isfinite(v):
                continue
            item: dict[str, Any] = {
                "operator": operators[r % len(operators)],
                "provider": "triton",
                "variant": "",
                "shape": {"M": 128 * (r + 1), "N": 4096},
                "dtype": "fp16",
                "mode": "fwd",
                "metric": "time",
                "unit": "ms",
            }
            if hist.samples is not None:
                item["samples"] = [float(x) for x in hist.samples[r, night]]
            else:
                item["value"] = float(v)
            results.append(item)
        run_id = uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | night)
        docs.append(
            {
                "format": FORMAT,
                "run": {
                    "id": str(run_id),
                    "started_at": (start + timedelta(days=night)).isoformat(),
                },
                "machine": {
                    "name": machine,
                    "gpu_model": "NVIDIA H100 80GB HBM3",
                    "driver": "570.86" if night < n // 2 else "575.51",
                    "toolkit": "12.8",
                },
                "build": {
                    "triton": {"version": "3.9.0", "commit": f"c{night:07x}{'0' * 32}"},
                    "torch": {"version": "2.13.0"},
                },
                "results": results,
            }
        )
    return docs


def write_jsonl(docs: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write run documents as ``tritonwatch.run/1`` JSONL (one run per line)."""
    import json

    p = Path(path)
    with p.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, separators=(",", ":")) + "\n")
    return p


def __getattr__(name: str) -> Any:
    # FakeTimer lives with the timers it imitates; imported lazily to keep this module light.
    if name == "FakeTimer":
        from .bench.timing import FakeTimer

        return FakeTimer
    raise AttributeError(f"module 'tritonwatch.testing' has no attribute {name!r}")
