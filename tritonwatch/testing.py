"""Shipped fakes and fixtures for testing code built on tritonwatch, with no GPU.

``make_run`` builds a valid ``tritonwatch.run/1`` document with synthetic samples.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .runformat import FORMAT, Run, parse_run


def make_run(
    *,
    results: Sequence[dict[str, Any]] | None = None,
    n_results: int = 3,
    n_samples: int = 20,
    machine: str = "test-gpu",
    gpu_model: str | None = "NVIDIA H100 80GB HBM3",
    triton: str = "3.9.0",
    commit: str | None = None,
    started_at: datetime | None = None,
    org: str | None = None,
    label: str | None = None,
    seed: int = 0,
    run_id: uuid.UUID | None = None,
) -> Run:
    """A valid run with ``n_results`` matmul timings of ``n_samples`` samples each (or ``results``)."""
    rng = np.random.default_rng(seed)
    if results is None:
        results = [
            {"operator": "matmul", "provider": "triton", "variant": "pointers",
             "shape": {"M": 256 * (i + 1), "N": 256, "K": 256}, "dtype": "fp16",
             "metric": "time", "unit": "ms",
             "samples": (1.0 + 0.01 * rng.standard_normal(n_samples)).tolist()}
            for i in range(n_results)
        ]
    build: dict[str, Any] = {"triton": {"version": triton}, "torch": {"version": "2.13.0"}}
    if commit:
        build["triton"]["commit"] = commit
    doc = {
        "format": FORMAT,
        "run": {"id": str(run_id or uuid.UUID(int=int(rng.integers(0, 2**63)) ^ uuid.uuid4().int)),
                "started_at": (started_at or datetime.now(UTC)).isoformat(),
                **({"org": org} if org else {}), **({"label": label} if label else {})},
        "machine": {"name": machine, **({"gpu_model": gpu_model} if gpu_model else {})},
        "build": build,
        "results": list(results),
    }
    return parse_run(doc)
