"""Real build environments: Triton 3.8.0 from the package index against the host's Triton.

The environments live in a persistent folder (TRITONWATCH_TEST_ENVS_DIR, default
~/.cache/tritonwatch-test-envs) so repeated runs and CI reuse them; a broken or half-made one is
rebuilt. Without network access to the package index these tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.probes import needs

from tritonwatch import settings
from tritonwatch.codegen import EnvInfo, blast, create_env
from tritonwatch.codegen.envs import env_python, probe
from tritonwatch.errors import CodegenError, TritonwatchError

pytestmark = [pytest.mark.slow, needs("torch", "triton")]
OLD = "3.8.0"
KERNELS = (
    Path(__file__).resolve().parent.parent.parent / "tritonwatch" / "codegen" / "sample_kernels.py"
)


@pytest.fixture(scope="session")
def envs_root() -> Path:
    root = Path(
        os.environ.get(
            "TRITONWATCH_TEST_ENVS_DIR", Path.home() / ".cache" / "tritonwatch-test-envs"
        )
    )
    root.mkdir(parents=True, exist_ok=True)
    return root


def _imports(folder: Path, module: str) -> bool:
    code = f"import {module}"
    return (
        subprocess.run([str(env_python(folder)), "-c", code], capture_output=True).returncode == 0
    )


def _ensure(root: Path, name: str, triton: str, *, system: bool = False) -> EnvInfo:
    folder = root / name
    with settings.scope(envs_dir=str(root)):
        if env_python(folder).exists():
            try:
                info = probe(env_python(folder), name=name)
                # An environment cached by an older tritonwatch may not see the host's torch.
                sees_host = not system or _imports(folder, "torch")
                if info.triton_version == OLD and sees_host:
                    return info
            except TritonwatchError:
                pass
            shutil.rmtree(folder)
        elif folder.exists():
            shutil.rmtree(folder)
        try:
            return create_env(name, triton, system_site_packages=system)
        except CodegenError as e:
            if "pip install" in str(e):
                pytest.skip(f"cannot install triton {triton} here: {e}")
            raise


@pytest.fixture(scope="session")
def env_old(envs_root: Path) -> Iterator[EnvInfo]:
    yield _ensure(envs_root, f"triton-{OLD}", OLD)


def test_old_triton_against_the_host_reports_real_differences(env_old: EnvInfo) -> None:
    r = blast(env_old, "current", targets="sm90,gfx942", kernel_files=[KERNELS])
    assert r.env_a.triton_version == OLD and r.env_b.triton_version != OLD
    assert r.summary.total == 6
    assert all(row.a.status == "ok" and row.b.status == "ok" for row in r.rows)
    changed = [row for row in r.rows if row.status == "changed"]
    assert changed, "two Triton releases should not compile every kernel identically"
    for row in changed:
        assert row.first_changed_stage in row.changed_stages
        assert row.diffs
    assert r.summary.headline.startswith(f"{len(changed)} of 6 specialisations changed")
    # the old environment against itself is still clean: the differences are real
    again = blast(env_old, env_old, targets="gfx942", kernel_files=[KERNELS])
    assert again.summary.changed == 0


def test_system_site_packages_env_shadows_the_host_triton(envs_root: Path) -> None:
    info = _ensure(envs_root, f"triton-{OLD}-sys", OLD, system=True)
    folder = envs_root / f"triton-{OLD}-sys"
    assert info.triton_version == OLD
    assert Path(info.triton_path).resolve().is_relative_to(folder.resolve())
    code = "import triton, sys; print(triton.__version__); import torch; print('torch ok')"
    out = subprocess.run(
        [str(env_python(folder)), "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split() == [OLD, "torch", "ok"]


def test_capture_works_with_the_older_triton(envs_root: Path, tmp_path: Path) -> None:
    """The capture hook binds arguments with Triton's own binder; 3.8 specialises the sample
    launches exactly as the host's Triton does."""
    from tritonwatch.codegen.capture import capture

    _ensure(envs_root, f"triton-{OLD}-sys", OLD, system=True)  # sees the host's torch
    python = str(env_python(envs_root / f"triton-{OLD}-sys"))
    launch = Path(__file__).resolve().parent / "data" / "launch_sample.py"
    import sys

    old = capture([python, str(launch)], tmp_path / "old.json", interpret=True)
    new = capture([sys.executable, str(launch)], tmp_path / "new.json", interpret=True)
    assert old.returncode == 0 and not old.errors, old.errors
    assert len(old.specs) == 3 and old.specs == new.specs


def test_liger_between_releases_from_captured_specs(
    envs_root: Path, liger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deliver 7 of issue 13: Liger's GeGLU, SwiGLU, RMSNorm, RoPE and cross-entropy, captured
    under the interpreter (no hand-written signature), blasted 3.8.0 against the host's Triton on
    sm90 and gfx942; every row compiles in both, changes come with the diff of the stage where
    the code first changes; and A/A through two paths is clean on sm90 and sm100."""
    import sys

    from tritonwatch.codegen.capture import capture

    monkeypatch.syspath_prepend(str(liger))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(liger) + (os.pathsep + old if old else ""))
    launch = Path(__file__).resolve().parent / "data" / "liger_launch.py"
    specs = tmp_path / "liger.json"
    assert capture([sys.executable, str(launch)], specs, interpret=True).returncode == 0
    env = _ensure(envs_root, f"triton-{OLD}-sys", OLD, system=True)  # Liger imports torch
    r = blast(env, "current", targets="sm90,gfx942", kernel_files=[specs])
    assert r.summary.total == 10, r.summary.headline
    bad = [
        (x.spec, x.target, x.a.error_line, x.b.error_line)
        for x in r.rows
        if x.status != "changed" and x.status != "identical"
    ]
    assert not bad, bad
    changed = [x for x in r.rows if x.status == "changed"]
    assert changed, "3.8.0 and 3.9.0 should not compile all of Liger identically"
    for x in changed:
        code = x.first_code_stage or x.first_changed_stage
        assert code in x.diffs or code in ("cubin", "hsaco"), (
            x.spec,
            x.target,
            code,
            list(x.diffs),
        )
    assert r.summary.headline.endswith(".")
    other = tmp_path / "py-same"
    other.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    other.chmod(0o755)
    same = blast("current", str(other), targets="sm90,sm100", kernel_files=[specs])
    assert same.summary.headline == "No change in 10 specialisations."
