"""Is PostgreSQL reachable, are torch and triton importable? Asked when a test needs to know,
never at import time (collecting the tests must not open a database connection)."""

from __future__ import annotations

import functools
import importlib.util
import os

import pytest

PG_ADMIN_URL = os.environ.get(
    "TRITONWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
).replace("postgresql+psycopg", "postgresql")


@functools.cache
def pg_problem() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None; probed once per session."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'tritonwatch[postgres]')"
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {str(e).strip()[:100]}"


def require_pg() -> None:
    """Skip the test without PostgreSQL; in CI (env CI set) fail instead."""
    problem = pg_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def missing_modules(*names: str) -> list[str]:
    """The names that cannot be imported here."""
    out = []
    for n in names:
        try:
            found = importlib.util.find_spec(n) is not None
        except ImportError:
            found = False
        if not found:
            out.append(n)
    return out


def needs(*names: str) -> pytest.MarkDecorator:
    """A skipif marker for tests that need torch and/or triton, naming what is missing."""
    missing = missing_modules(*names)
    verb = "is" if len(missing) == 1 else "are"
    return pytest.mark.skipif(
        bool(missing), reason=f"needs {' and '.join(missing)}, which {verb} not installed here"
    )


def needs_interpreter() -> pytest.MarkDecorator:
    """A skipif marker for tests that run Triton kernels under the CPU interpreter: skipped
    where the installed Triton's cannot (Triton 3.6 with numpy 2.4; CI runs Triton 3.9)."""
    from tritonwatch.bench.registry import interpreter_problem

    missing = missing_modules("torch", "triton")
    problem = f"needs {' and '.join(missing)}" if missing else interpreter_problem()
    return pytest.mark.skipif(problem is not None, reason=str(problem))
