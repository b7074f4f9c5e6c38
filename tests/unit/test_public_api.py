"""The public API is small, curated and pinned: changing it is a decision, not an accident."""

from __future__ import annotations

import tritonwatch

PINNED = [
    "FORMAT",
    "Result",
    "Run",
    "Store",
    "TritonwatchError",
    "__version__",
    "parse_run",
]


def test_all_is_pinned_and_sorted() -> None:
    assert tritonwatch.__all__ == PINNED
    assert sorted(tritonwatch.__all__) == tritonwatch.__all__


def test_every_exported_name_exists() -> None:
    for name in tritonwatch.__all__:
        assert hasattr(tritonwatch, name), name
