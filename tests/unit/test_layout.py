"""Repository layout rules that keep the test suite collectable."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_test_modules_have_unique_basenames() -> None:
    """Tests import sibling helpers (rootdir-prepend mode), so two test_x.py files would clash."""
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert [n for n, c in names.items() if c > 1] == []


def test_store_mixins_do_not_shadow_each_other() -> None:
    """Store is assembled from per-area mixins; a name defined twice silently replaces one."""
    from tritonwatch.store import Store

    seen: dict[str, str] = {}
    clashes = []
    for cls in Store.__mro__:
        if cls is object:
            continue
        for name in vars(cls):
            if name.startswith("__") or name in ("engine",):
                continue
            if name in seen and seen[name] != cls.__name__:
                clashes.append(f"{name}: {seen[name]} and {cls.__name__}")
            seen.setdefault(name, cls.__name__)
    assert clashes == []
