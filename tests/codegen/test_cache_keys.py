"""The compile cache is never wrong: keys follow the kernel's real dependencies (Triton's own
cache key, computed where the kernel is compiled), failures are never kept, and it can be
bypassed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tritonwatch.codegen import blast, static_metrics
from tritonwatch.codegen.cache import CompileCache

HERE = Path(__file__).resolve().parent
KERNELS = HERE / "kernels_sample.py"

LIB = """
import triton
import triton.language as tl

FACTOR = tl.constexpr({factor})


@triton.jit
def _helper(x):
    return x * FACTOR


@triton.jit
def lib_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, _helper(tl.load(x_ptr + offs, mask=mask)){extra}, mask=mask)
"""

SPECS = """
from twlib_{tag}.kern import lib_kernel  # noqa: F401

COMPILE_SPECS = [
    {{
        "name": "lib_fp32",
        "kernel": "lib_kernel",
        "signature": {{"x_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"}},
        "constexprs": {{"BLOCK": 128}},
    }}
]
"""


def _library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: str) -> tuple[Path, Path]:
    """A package on PYTHONPATH (the parent's and the workers') and a spec file importing it."""
    root = tmp_path / "lib"
    pkg = root / f"twlib_{tag}"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    kern = pkg / "kern.py"
    kern.write_text(LIB.format(factor=2.0, extra=""))
    spec = tmp_path / "specs.py"
    spec.write_text(SPECS.format(tag=tag))
    monkeypatch.syspath_prepend(str(root))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(root) + (os.pathsep + old if old else ""))
    return kern, spec


def _drop(tag: str) -> None:
    for name in [m for m in sys.modules if m.startswith(f"twlib_{tag}")]:
        del sys.modules[name]


@pytest.mark.slow
def test_editing_a_library_kernel_a_spec_file_imports_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kern, spec = _library(tmp_path, monkeypatch, "edit")
    cache = CompileCache(tmp_path / "c")
    first = static_metrics(targets="gfx942", kernel_files=[spec], cache=cache)
    assert [r.status for r in first.rows] == ["ok"]
    again = static_metrics(targets="gfx942", kernel_files=[spec], cache=cache)
    assert again.rows[0].compiled.stage_hashes == first.rows[0].compiled.stage_hashes
    # the kernel's own source changes: new code
    kern.write_text(LIB.format(factor=2.0, extra=" + 1.0"))
    _drop("edit")
    second = static_metrics(targets="gfx942", kernel_files=[spec], cache=cache)
    assert (
        second.rows[0].compiled.stage_hashes["ttir"] != first.rows[0].compiled.stage_hashes["ttir"]
    )
    # a constexpr global of a jit function it calls changes: new code again
    kern.write_text(LIB.format(factor=3.0, extra=" + 1.0"))
    _drop("edit")
    third = static_metrics(targets="gfx942", kernel_files=[spec], cache=cache)
    hashes = [r.rows[0].compiled.stage_hashes["ttir"] for r in (first, second, third)]
    assert len(set(hashes)) == 3


@pytest.mark.slow
def test_failures_are_never_cached(tmp_path: Path, fake_envs: dict[str, Path]) -> None:
    cache = CompileCache(tmp_path / "c")
    kw = {"targets": "gfx942", "kernel_files": [KERNELS], "pattern": "breakable", "cache": cache}
    first = static_metrics(python=str(fake_envs["broken"]), **kw)  # type: ignore[arg-type]
    assert [r.status for r in first.rows] == ["error"]
    second = static_metrics(python=str(fake_envs["broken"]), **kw)  # type: ignore[arg-type]
    assert [r.status for r in second.rows] == ["error"]
    assert not any(p.suffix == ".gz" for p in (tmp_path / "c").rglob("*"))


@pytest.mark.slow
def test_no_cache_recompiles(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "c")
    kw = {"targets": "gfx942", "kernel_files": [KERNELS], "pattern": "scale"}
    first = blast("current", "current", cache=cache, **kw)  # type: ignore[arg-type]
    assert first.stats["compiled"] == 1  # A/A through one Python: compiled once
    warm = blast("current", "current", cache=cache, **kw)  # type: ignore[arg-type]
    assert warm.stats["cached"] == 2 and warm.stats["compiled"] == 0
    cold = blast("current", "current", cache=CompileCache(tmp_path / "c", read=False), **kw)  # type: ignore[arg-type]
    assert cold.stats["cached"] == 0 and cold.stats["compiled"] == 1


def test_cache_info_and_prune_keep_the_size_cap(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tritonwatch import settings
    from tritonwatch.cli import main

    cache = CompileCache(tmp_path / "c")
    for i in range(6):
        cache.put(f"{i:02d}" + "0" * 62, {"status": "ok", "blob": os.urandom(20000).hex()})
        p = cache._path(f"{i:02d}" + "0" * 62)
        os.utime(p, (1000.0 + i, 1000.0 + i))  # entry 0 least recently used
    cache.put("ff" + "0" * 62, {"status": "error", "error": "never kept"})
    info = cache.info()
    assert info.entries == 6 and info.bytes > 6 * 20000
    one = info.bytes // 6
    cache.get("00" + "0" * 62)  # a hit marks it used: it survives pruning
    r = cache.prune(3 * one + one // 2)
    assert r.removed == 3 and r.left.entries == 3
    assert cache.has("00" + "0" * 62) and not cache.has("01" + "0" * 62)
    with settings.scope(cache_dir=str(tmp_path / "c")):
        out = CliRunner().invoke(main, ["cache", "info"])
        assert out.exit_code == 0 and "entries: 3" in out.output, out.output
        out = CliRunner().invoke(main, ["cache", "prune", "--max-mb", "0"])
        assert out.exit_code == 0 and "removed 3 entries" in out.output, out.output
    assert cache.info().entries == 0
    assert not CompileCache(tmp_path / "c", read=False).has("00" + "0" * 62)


def test_tool_paths_passed_to_the_workers_are_part_of_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tritonwatch.codegen.envs import probe
    from tritonwatch.codegen.runner import key_fingerprint

    env = probe(sys.executable)
    monkeypatch.delenv("TRITON_PTXAS_PATH", raising=False)
    plain = key_fingerprint(env)
    monkeypatch.setenv("TRITON_PTXAS_PATH", "/opt/cuda/bin/ptxas")
    assert key_fingerprint(env) != plain
    monkeypatch.setenv("TRITON_DEBUG", "1")  # dropped for the workers: not part of the key
    assert key_fingerprint(env) == {
        **plain,
        "tools_env": {"TRITON_PTXAS_PATH": "/opt/cuda/bin/ptxas"},
    }
