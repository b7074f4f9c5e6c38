"""How tritonwatch writes a series' identity as text, the same on the command line, in the
dashboard and in the database: canonical shape JSON, shape text and build text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def canonical_shape(shape: Mapping[str, Any]) -> str:
    """A shape as stored in ``series.shape``: JSON with sorted keys and no spaces."""
    return json.dumps(shape, sort_keys=True, separators=(",", ":"))


def shape_text(shape: str | Mapping[str, Any]) -> str:
    """A shape as people write it, in the producer's key order: ``M=4096 N=4096 K=512``.

    Takes the dict or its canonical JSON (as the series table stores it).
    """
    d = json.loads(shape) if isinstance(shape, str) else shape
    return " ".join(f"{k}={v}" for k, v in d.items()) or "-"


def build_text(build: Mapping[str, Any]) -> str:
    """A build as ``3.9.0 (a1b2c3d4e5)``: the Triton version and the first 10 of its commit.

    Takes a stored build row (``triton_version``/``triton_commit``) or a build section's
    dependency (``version``/``commit``).
    """
    version = build.get("triton_version") or build.get("version") or "?"
    commit = build.get("triton_commit") or build.get("commit")
    return f"{version} ({str(commit)[:10]})" if commit else str(version)


def build_change_text(last_good: Mapping[str, Any], first_bad: Mapping[str, Any]) -> str:
    """The build change behind an alert: ``3.8.0 (abc) -> 3.9.0 (def)``."""
    return f"{build_text(last_good)} -> {build_text(first_bad)}"
