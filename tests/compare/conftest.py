"""Fixtures for compare tests: the planted-slowdown plugin installed as a distribution (entry
point), fake build environments (wrapper scripts around this Python) and a real second Triton."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from comparekit import REAL_TRITON

from tritonwatch import settings

HERE = Path(__file__).resolve().parent


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``plantedops`` installed as a plugin: a dist-info with an entry point, on PYTHONPATH so
    the workers of every environment find it (venvs with system site packages read it too)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "plantedops.py").write_text((HERE / "plantedops.py").read_text())
    dist = site / "tw_planted-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tw-planted\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tritonwatch]\nplanted = plantedops:register\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(site))
    suite = tmp_path / "planted.toml"
    suite.write_text('[[cases]]\noperator = "planted"\nproviders = ["steady", "planted"]\n')
    return suite


@pytest.fixture
def quick() -> object:
    """Short budgets: CPU timings of a 200 us spin need little to be steady."""
    with settings.scope(budget_ms=150.0, target_ci=0.002, case_timeout_s=120.0, device="cpu"):
        yield


def _cache_root() -> Path:
    return Path(
        os.environ.get("TRITONWATCH_TEST_ENVS", Path.home() / ".cache/tritonwatch-test-envs")
    )


@pytest.fixture(scope="session")
def real_env() -> Path:
    """A venv with Triton 3.8.0 that sees the host's torch and tritonwatch (system site packages),
    made once and cached across sessions; skips when it cannot be made (no network)."""
    root = _cache_root()
    folder = root / f"triton-{REAL_TRITON}-site"
    py = folder / "bin" / "python"
    check = [str(py), "-c", "import triton, torch, tritonwatch; print(triton.__version__)"]
    ok = (
        py.exists()
        and subprocess.run(check, capture_output=True, text=True).stdout.strip() == REAL_TRITON
    )
    if not ok:
        import shutil

        from tritonwatch.codegen.envs import create_env
        from tritonwatch.errors import TritonwatchError

        shutil.rmtree(folder, ignore_errors=True)
        try:
            with settings.scope(envs_dir=str(root)):
                create_env(folder.name, REAL_TRITON, system_site_packages=True)
        except TritonwatchError as e:
            pytest.skip(f"cannot make a Triton {REAL_TRITON} environment: {e}")
    return folder
