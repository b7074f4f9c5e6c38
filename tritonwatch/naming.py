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


#: The order kernel authors write sizes in (batch and heads, tokens and experts, then the
#: GEMM dimensions M, N, K, then vocabulary and head size). The database stores shapes with
#: sorted keys, so text is written in this order, and keys not listed follow in stored order.
DIM_ORDER = ("B", "Z", "H", "T", "E", "topk", "M", "N", "K", "V", "D")


def shape_items(shape: str | Mapping[str, Any]) -> list[tuple[str, Any]]:
    """A shape's (name, size) pairs in :data:`DIM_ORDER`, then the other keys as given."""
    d = json.loads(shape) if isinstance(shape, str) else shape
    rank = {k: i for i, k in enumerate(DIM_ORDER)}
    items = list(d.items())
    return sorted(items, key=lambda kv: rank.get(kv[0], len(DIM_ORDER)))


def shape_text(shape: str | Mapping[str, Any]) -> str:
    """A shape as people write it: ``M=4096 N=4096 K=512`` (:data:`DIM_ORDER`, not alphabetical).

    Takes the dict or its canonical JSON (as the series table stores it).
    """
    return " ".join(f"{k}={v}" for k, v in shape_items(shape)) or "-"


def shape_sort_key(shape: str | Mapping[str, Any]) -> tuple[Any, ...]:
    """Sorts shapes by their sizes as numbers (M=128 before M=1152), in :data:`DIM_ORDER`."""
    return tuple(
        (k, 0, float(v), "") if isinstance(v, (int, float)) else (k, 1, 0.0, str(v))
        for k, v in shape_items(shape)
    )


def version_text(version: str | None, commit: str | None) -> str:
    """A Triton version as people read it: the version, or the first 10 of the commit where the
    build is known only by its commit (PyTorch HUD's records name no version, so its imports
    store the commit as the version)."""
    v = str(version or "?")
    return v[:10] if commit and v == str(commit) else v


def build_text(build: Mapping[str, Any]) -> str:
    """A build as ``3.9.0 (a1b2c3d4e5)``: the Triton version and the first 10 of its commit;
    ``a1b2c3d4e5`` alone for a build known only by its commit.

    Takes a stored build row (``triton_version``/``triton_commit``) or a build section's
    dependency (``version``/``commit``).
    """
    version = build.get("triton_version") or build.get("version") or "?"
    commit = build.get("triton_commit") or build.get("commit")
    if not commit or str(version) == str(commit):
        return version_text(version, commit)
    return f"{version} ({str(commit)[:10]})"


def build_change_text(last_good: Mapping[str, Any], first_bad: Mapping[str, Any]) -> str:
    """The build change behind an alert: ``3.8.0 (abc) -> 3.9.0 (def)``."""
    return f"{build_text(last_good)} -> {build_text(first_bad)}"
