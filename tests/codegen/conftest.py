"""Fixtures for codegen tests: fake environments (wrapper scripts around this Python) and a
private compile cache and envs folder per test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fakepy import fake_python

from tritonwatch import settings

HERE = Path(__file__).resolve().parent
KERNELS = HERE / "kernels_sample.py"


@pytest.fixture(autouse=True)
def _codegen_dirs(tmp_path: Path) -> Iterator[None]:
    with settings.scope(cache_dir=str(tmp_path / "cache"), envs_dir=str(tmp_path / "envs"), jobs=2):
        yield


@pytest.fixture(scope="session")
def liger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """liger-kernel from PyPI, --no-deps, in a temporary target (skips when PyPI is unreachable)."""
    target = tmp_path_factory.mktemp("liger")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    cmd += ["--no-deps", "--target", str(target), "liger-kernel"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("PyPI unreachable: pip install liger-kernel timed out")
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"PyPI unreachable or liger-kernel not installable: {tail}")
    return target


@pytest.fixture
def fake_envs(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "fake"
    folder.mkdir()
    return {
        "stages2": fake_python(folder, "py-stages2", {"TW_TEST_STAGES": "2"}),
        "broken": fake_python(folder, "py-broken", {"TW_TEST_BREAK": "1"}),
        "no_triton": fake_python(folder, "py-no-triton", {}, flags="-S"),
    }


def _compiled(kernel: str, spec: str, target: str, **kw: object) -> object:
    from tritonwatch.codegen.metrics import Compiled

    return Compiled(kernel=kernel, spec=spec, target=target, **kw)  # type: ignore[arg-type]


@pytest.fixture
def synthetic_report() -> object:
    """A BlastReport built by hand (no compiling): one identical row, one changed at TTGIR that
    lost wgmma and grew registers and spills, one failing only in B, one AMD row."""
    import uuid
    from datetime import UTC, datetime

    from tritonwatch.codegen.blast import BlastReport
    from tritonwatch.codegen.diff import compare_all
    from tritonwatch.codegen.envs import EnvInfo

    def env(name: str, version: str) -> EnvInfo:
        return EnvInfo(
            name=name,
            python=f"/envs/{name}/bin/python",
            python_version="3.11.7",
            triton_version=version,
            triton_commit=None,
            triton_path="/x",
            build_hash=name,
            backends=("amd", "nvidia"),
            tools={"ptxas": {"path": "/p", "version": "12.9.86"}},
        )

    same = {"ttir": "h1", "ttgir": "h2", "ptx": "h3"}
    a_mm = _compiled(
        "mm<kernel>",
        "mm_fp16",
        "sm90",
        status="ok",
        compile_ms=100.0,
        stages={"ttir": "a\n", "ttgir": "x = 1\ny = 2\n"},
        stage_hashes={"ttir": "t", "ttgir": "g1", "sass": "s1"},
        metrics={"registers": 120, "spills": 0, "shared": 65536, "instructions": 400},
        opcodes={"HGMMA": 8, "LDG": 4},
        key_instructions={"wgmma": 8, "mma.sync": 0},
    )
    b_mm = _compiled(
        "mm<kernel>",
        "mm_fp16",
        "sm90",
        status="ok",
        compile_ms=130.0,
        stages={"ttir": "a\n", "ttgir": "x = 1\ny = 3 <script>\n"},
        stage_hashes={"ttir": "t", "ttgir": "g2", "sass": "s2"},
        metrics={"registers": 168, "spills": 24, "shared": 65536, "instructions": 520},
        opcodes={"HMMA": 32, "LDG": 4},
        key_instructions={"wgmma": 0, "mma.sync": 32},
    )
    pairs = [
        (
            _compiled(
                "add",
                "add_fp32",
                "sm90",
                status="ok",
                stage_hashes=same,
                metrics={"registers": 26},
                compile_ms=10.0,
            ),
            _compiled(
                "add",
                "add_fp32",
                "sm90",
                status="ok",
                stage_hashes=same,
                metrics={"registers": 26},
                compile_ms=11.0,
            ),
        ),
        (a_mm, b_mm),
        (
            _compiled("soft", "soft_fp16", "sm90", status="ok", stage_hashes=same, compile_ms=5.0),
            _compiled(
                "soft",
                "soft_fp16",
                "sm90",
                status="error",
                compile_ms=1.0,
                error="CompilationError: at 2:4:\n    x = y\n    ^\nbroken | on purpose",
            ),
        ),
        (
            _compiled(
                "mm<kernel>",
                "mm_fp16",
                "gfx942",
                status="ok",
                stage_hashes={"amdgcn": "1"},
                metrics={"registers": 100, "vgprs": 100, "agprs": 0, "occupancy": 4},
                key_instructions={"mfma": 4},
            ),
            _compiled(
                "mm<kernel>",
                "mm_fp16",
                "gfx942",
                status="ok",
                stage_hashes={"amdgcn": "2"},
                metrics={"registers": 90, "vgprs": 90, "agprs": 0, "occupancy": 5},
                key_instructions={"mfma": 4},
            ),
        ),
    ]
    rows, summary = compare_all(pairs)  # type: ignore[arg-type]
    return BlastReport(
        uuid=str(uuid.uuid4()),
        created_at=datetime.now(UTC),
        env_a=env("tri38", "3.8.0"),
        env_b=env("tri39", "3.9.0"),
        targets=("sm90", "gfx942"),
        rows=tuple(rows),
        summary=summary,
        stats={"tasks": 8, "cached": 0, "compiled": 8},
    )
