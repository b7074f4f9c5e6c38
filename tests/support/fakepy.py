"""Fake build environments: a wrapper script that is this Python with extra environment
variables (and flags). Blast and A/B treat any executable as a Python, so a wrapper that changes
what the test kernels do stands in for a second Triton build."""

from __future__ import annotations

import stat
import sys
from pathlib import Path


def fake_python(folder: Path, name: str, env: dict[str, str], *, flags: str = "") -> Path:
    """Write ``folder/name``, an executable that runs this interpreter with ``env`` set."""
    path = folder / name
    exports = "".join(f"export {k}={v!s}\n" for k, v in env.items())
    path.write_text(f'#!/bin/sh\n{exports}exec {sys.executable} {flags} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path
