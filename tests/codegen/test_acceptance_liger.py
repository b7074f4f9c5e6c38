"""Acceptance on real code: Liger-Kernel from PyPI (installed with --no-deps into a temporary
target, see conftest.py), its kernels named as module:name, an autotuned one expanded per config,
blasted A/A through two paths to one Python; an edited kernel is recompiled; its kernels captured
from a run under the interpreter and blasted from the captured specs. Skipped when PyPI is
unreachable."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tritonwatch.codegen import blast
from tritonwatch.codegen.cache import CompileCache
from tritonwatch.codegen.capture import capture

SPECS = Path(__file__).resolve().parent / "data" / "liger_specs.py"
LAUNCH = Path(__file__).resolve().parent / "data" / "liger_launch.py"
TARGETS = "sm90,gfx942"


@pytest.mark.slow
def test_liger_kernels_blast_and_an_edit_is_recompiled(
    liger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(liger))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(liger) + (os.pathsep + old if old else ""))
    other_path = tmp_path / "py-same"  # the same Python through another path
    other_path.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    other_path.chmod(0o755)
    cache = CompileCache(tmp_path / "cache")
    r = blast("current", str(other_path), targets=TARGETS, kernel_files=[SPECS], cache=cache)
    assert r.summary.total == 10 and r.summary.changed == 0, r.summary.headline
    assert all(row.a.status == "ok" and row.b.status == "ok" for row in r.rows), [
        (row.spec, row.target, row.a.error_line, row.b.error_line) for row in r.rows
    ]
    specs = {row.spec for row in r.rows}
    assert "dyt_fwd_bf16[BLOCK_N=1024,w4,s1]" in specs  # @triton.autotune, one row per config
    geglu = {row.target: row for row in r.rows if row.spec == "geglu_fwd_bf16"}
    assert geglu["sm90"].a.metrics["registers"] > 0 and geglu["gfx942"].a.metrics["vgprs"] > 0

    # edit the installed library's kernel: blast must see the new code
    src = liger / "liger_kernel" / "ops" / "geglu.py"
    text = src.read_text()
    assert "geglu_a = 0.5 * a_row" in text
    src.write_text(text.replace("geglu_a = 0.5 * a_row", "geglu_a = 0.25 * a_row"))
    for name in [m for m in sys.modules if m.startswith("liger_kernel")]:
        monkeypatch.delitem(sys.modules, name)
    again = blast(
        "current", "current", targets=TARGETS, kernel_files=[SPECS], pattern="geglu", cache=cache
    )
    # A/A through one Python: each of the 2 targets compiled once, for both sides
    assert again.stats["compiled"] == 2 and again.stats["cached"] == 0
    for row in again.rows:
        before = geglu[row.target].a.stage_hashes["ttir"]
        assert row.a.stage_hashes["ttir"] != before


@pytest.mark.slow
def test_liger_kernels_captured_under_the_interpreter_blast_with_no_hand_written_spec(
    liger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(liger))  # as PYTHONPATH=... tritonwatch would have it
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(liger) + (os.pathsep + old if old else ""))
    out = tmp_path / "liger.json"
    r = capture([sys.executable, str(LAUNCH)], out, interpret=True)
    assert r.returncode == 0 and not r.errors, r.errors
    names = {k.rsplit(":", 1)[-1] for k in r.kernels}
    assert names == {
        "_geglu_tanh_forward_kernel",
        "_swiglu_forward_kernel",
        "_rms_norm_forward_kernel",
        "_triton_rope",
        "liger_cross_entropy_kernel",
    }
    assert all(k.startswith("liger_kernel.ops.") for k in r.kernels)  # module:name, importable
    ce = next(s for s in json.loads(out.read_text())["specs"] if "cross_entropy" in s["kernel"])
    assert len(ce["signature"]) > 20  # the 28-argument kernel nobody had to type
    report = blast("current", "current", targets=TARGETS, kernel_files=[out])
    assert report.summary.total == 10, report.summary.headline
    assert all(row.a.status == "ok" for row in report.rows), [
        (row.spec, row.target, row.a.error_line) for row in report.rows
    ]
    assert report.summary.headline == "No change in 10 specialisations."
