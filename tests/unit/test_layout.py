"""Repository layout rules that keep the test suite collectable."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_test_modules_have_unique_basenames() -> None:
    """Tests import sibling helpers (rootdir-prepend mode), so two test_x.py files would clash."""
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert [n for n, c in names.items() if c > 1] == []


def test_shared_test_helpers_are_defined_once() -> None:
    """One run builder (tritonwatch.testing), one free-port helper, one server launcher and one
    PostgreSQL probe (tests/support): a second copy drifts from the first."""
    import ast

    shared = {"make_run", "make_run_document", "free_port", "pg_available", "ServeProcess"}
    defined: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in shared:
                defined.setdefault(node.name, []).append(str(path.relative_to(TESTS)))
    assert {k: v for k, v in defined.items() if len(v) > 1} == {}
    assert "make_run" not in defined, "tests build runs with tritonwatch.testing.make_run"


def test_no_module_outgrows_its_job() -> None:
    """DESIGN §1: modules of 100-400 lines, split (along nouns) before ~600."""
    package = TESTS.parent / "tritonwatch"
    limit = 600
    long = {
        str(p.relative_to(package)): n
        for p in package.rglob("*.py")
        if "migrations" not in p.parts
        and (n := len(p.read_text(encoding="utf-8").splitlines())) > limit
    }
    assert long == {}


def test_the_code_names_no_tracker_issue() -> None:
    """Docstrings and comments say why, in words: "issue 16" means nothing to a reader of the
    package (the commit history links the issues)."""
    import re

    pattern = re.compile(r"\bissues? #?\d+", re.IGNORECASE)
    found = [
        f"{p.relative_to(TESTS.parent)}:{i}"
        for p in sorted((TESTS.parent / "tritonwatch").rglob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert found == []
