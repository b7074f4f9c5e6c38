"""Fixtures for codegen tests: fake environments (wrapper scripts around this Python) and a
private compile cache and envs folder per test."""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tritonwatch import settings

HERE = Path(__file__).resolve().parent
KERNELS = HERE / "kernels_sample.py"


def make_fake_python(folder: Path, name: str, env: dict[str, str], *, flags: str = "") -> Path:
    """A 'Python' that is this interpreter with extra environment variables (and flags).

    This is the shipped-fake boundary for build environments: blast treats any executable as a
    Python, so a wrapper that changes what the test kernels compile to stands in for a second
    Triton build.
    """
    path = folder / name
    exports = "".join(f"export {k}={v!s}\n" for k, v in env.items())
    path.write_text(f'#!/bin/sh\n{exports}exec {sys.executable} {flags} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(autouse=True)
def _codegen_dirs(tmp_path: Path) -> Iterator[None]:
    with settings.scope(cache_dir=str(tmp_path / "cache"), envs_dir=str(tmp_path / "envs"), jobs=2):
        yield


@pytest.fixture
def fake_envs(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "fake"
    folder.mkdir()
    return {
        "stages2": make_fake_python(folder, "py-stages2", {"TW_TEST_STAGES": "2"}),
        "broken": make_fake_python(folder, "py-broken", {"TW_TEST_BREAK": "1"}),
        "no_triton": make_fake_python(folder, "py-no-triton", {}, flags="-S"),
    }
