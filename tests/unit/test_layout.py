"""Repository layout rules that keep the test suite collectable."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_test_modules_have_unique_basenames() -> None:
    """Tests import sibling helpers (rootdir-prepend mode), so two test_x.py files would clash."""
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert [n for n, c in names.items() if c > 1] == []
