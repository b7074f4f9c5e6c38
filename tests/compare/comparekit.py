"""Helpers for compare tests (imported by name: tests are not a package)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

REAL_TRITON = "3.8.0"  # the second Triton of the slow tests (the host has another)


def fake_python(folder: Path, name: str, env: dict[str, str]) -> Path:
    """A 'build environment' that is this Python with extra environment variables."""
    path = folder / name
    exports = "".join(f"export {k}={v}\n" for k, v in env.items())
    path.write_text(f'#!/bin/sh\n{exports}exec {sys.executable} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path
