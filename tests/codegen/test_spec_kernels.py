"""Specs are checked against the kernel they name, and wrappers are unwrapped: autotuned kernels
expand to one specialisation per config, heuristics are evaluated on the spec's arguments, a
kernel may be named as ``module:name``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tritonwatch.codegen import static_metrics
from tritonwatch.codegen.specs import load_file
from tritonwatch.errors import InputError

WRAPPED = """
import triton
import triton.language as tl


@triton.autotune(
    configs=[
        triton.Config({"BLOCK": 64}, num_warps=2, num_stages=2),
        triton.Config({"BLOCK": 128}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK": 256}, num_warps=8, num_stages=1, maxnreg=128),
    ],
    key=["n"],
)
@triton.heuristics({"EVEN": lambda args: args["n"] % args["BLOCK"] == 0})
@triton.jit
def tuned(x_ptr, n, BLOCK: tl.constexpr, EVEN: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if EVEN:
        tl.store(x_ptr + offs, tl.load(x_ptr + offs) + 1.0)
    else:
        tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=offs < n) + 1.0, mask=offs < n)


@triton.heuristics({"BLOCK": lambda args: triton.next_power_of_2(args["n_cols"])})
@triton.jit
def rowwise(x_ptr, n_cols, BLOCK: tl.constexpr, SCALE: tl.constexpr = 2):
    offs = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n_cols)
    tl.store(x_ptr + offs, x * SCALE, mask=offs < n_cols)
"""


def _file(tmp_path: Path, specs: str, name: str = "wrapped.py") -> Path:
    p = tmp_path / name
    p.write_text(WRAPPED + "\nCOMPILE_SPECS = " + specs + "\n")
    return p


def test_autotune_expands_to_one_spec_per_config_and_heuristics_are_evaluated(
    tmp_path: Path,
) -> None:
    p = _file(
        tmp_path,
        '[{"name": "tuned_fp32", "kernel": "tuned", "signature": {"x_ptr": "*fp32", "n": "i32"},'
        ' "args": {"n": 1000}}]',
    )
    got = load_file(p)
    assert [s.name for s in got] == [
        "tuned_fp32[BLOCK=64,w2,s2]",
        "tuned_fp32[BLOCK=128,w4,s3]",
        "tuned_fp32[BLOCK=256,w8,s1,maxnreg128]",
    ]
    assert [s.constexprs for s in got] == [
        {"BLOCK": 64, "EVEN": False},
        {"BLOCK": 128, "EVEN": False},
        {"BLOCK": 256, "EVEN": False},
    ]
    assert [(s.num_warps, s.num_stages) for s in got] == [(2, 2), (4, 3), (8, 1)]
    assert got[2].options == {"maxnreg": 128}
    assert got[0].signature == {
        "x_ptr": "*fp32",
        "n": "i32",
        "BLOCK": "constexpr",
        "EVEN": "constexpr",
    }
    (one,) = load_file(
        _file(
            tmp_path,
            '[{"kernel": "tuned", "signature": {"x_ptr": "*fp32", "n": "i32"},'
            ' "args": {"n": 1024}, "configs": [1]}]',
            "one.py",
        )
    )
    assert one.constexprs == {"BLOCK": 128, "EVEN": True} and one.name.endswith("[BLOCK=128,w4,s3]")


def test_heuristics_and_defaults_fill_constexprs(tmp_path: Path) -> None:
    (s,) = load_file(
        _file(
            tmp_path,
            '[{"kernel": "rowwise", "signature": {"x_ptr": "*fp16", "n_cols": "i32"},'
            ' "args": {"n_cols": 3000}}]',
        )
    )
    assert s.constexprs == {"BLOCK": 4096, "SCALE": 2}
    # a value the spec gives wins over the heuristic
    (s,) = load_file(
        _file(
            tmp_path,
            '[{"kernel": "rowwise", "signature": {"x_ptr": "*fp16", "n_cols": "i32"},'
            ' "constexprs": {"BLOCK": 512}}]',
            "given.py",
        )
    )
    assert s.constexprs["BLOCK"] == 512


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            '{"kernel": "rowwise", "signature": {"x_ptr": "*fp16", "n_cols": "i32"}}',
            "the @triton.heuristics value of BLOCK reads argument 'n_cols'; give an example value",
        ),
        (
            '{"kernel": "rowwise", "signature": {"x_ptr": "*fp16", "ncols": "i32"}, '
            '"args": {"n_cols": 8}}',
            "signature names argument(s) ncols that rowwise does not take; it takes: x_ptr, "
            "n_cols, BLOCK, SCALE",
        ),
        (
            '{"kernel": "rowwise", "signature": {"x_ptr": "*fp23", "n_cols": "i32"}, '
            '"args": {"n_cols": 8}}',
            "unknown type(s) *fp23; use constexpr, one of",
        ),
        (
            '{"kernel": "rowwise", "signature": {"x_ptr": "*fp16", "n_cols": "i32"}, '
            '"args": {"n_cols": 8}, "divisibility": ["x_pt"]}',
            "divisibility names x_pt, not runtime argument(s) of rowwise; valid: x_ptr, n_cols",
        ),
        (
            '{"kernel": "rowwise", "signature": {"x_ptr": "*fp16", "n_cols": "i32"}, '
            '"args": {"n_cols": 8}, "options": {"num_ctaz": 2}}',
            "unknown compile option(s) num_ctaz; valid: ",
        ),
        (
            '{"kernel": "rowwise", "signature": {"x_ptr": "*fp16"}, "args": {"n_cols": 8}}',
            "signature lacks argument(s) n_cols of rowwise",
        ),
        (
            '{"kernel": "rowwise", "signature": {"x_ptr": "*fp16", "n_cols": "i32"}, '
            '"constexprs": {"BLOK": 8}}',
            "constexprs name(s) BLOK that rowwise does not take; its constexpr parameters: "
            "BLOCK, SCALE",
        ),
        (
            '{"kernel": "tuned", "signature": {"x_ptr": "*fp32", "n": "i32"}, "configs": [3]}',
            "'configs' must list indices 0..2 of tuned's 3 autotune configs",
        ),
        (
            '{"kernel": "tuned", "signature": {"x_ptr": "*fp32", "n": "i32"}, '
            '"constexprs": {"BLOCK": 32}, "args": {"n": 8}}',
            "BLOCK are set by tuned's autotune configs",
        ),
        (
            '{"kernel": "triton", "signature": {}}',
            "module is not a @triton.jit function",
        ),
    ],
)
def test_specs_are_checked_against_the_kernel(tmp_path: Path, spec: str, message: str) -> None:
    p = _file(tmp_path, f"[{spec}]")
    with pytest.raises(InputError) as e:
        load_file(p)
    text = str(e.value)
    assert message in text, text
    assert "\n" not in text and "COMPILE_SPECS[0]" in text


def test_kernel_named_as_module_colon_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "lib" / "twmod_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import os  # a package may import what it likes\n")
    (pkg / "ops.py").write_text(WRAPPED)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    p = tmp_path / "specs.py"
    p.write_text(
        'COMPILE_SPECS = [{"name": "row", "kernel": "twmod_pkg.ops:rowwise", '
        '"signature": {"x_ptr": "*fp16", "n_cols": "i32"}, "args": {"n_cols": 100}}]\n'
    )
    (s,) = load_file(p)
    assert (s.file, s.kernel, s.constexprs["BLOCK"]) == ("twmod_pkg.ops", "rowwise", 128)
    bad = tmp_path / "bad.py"
    bad.write_text('COMPILE_SPECS = [{"kernel": "no_such_mod_q:k", "signature": {}}]\n')
    with pytest.raises(InputError, match="cannot import 'no_such_mod_q'"):
        load_file(bad)


@pytest.mark.slow
def test_wrapped_and_module_kernels_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "lib" / "twmod_pkg2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ops.py").write_text(WRAPPED)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "lib") + (os.pathsep + old if old else ""))
    p = tmp_path / "specs.py"
    p.write_text(
        'COMPILE_SPECS = [{"name": "row", "kernel": "twmod_pkg2.ops:rowwise", '
        '"signature": {"x_ptr": "*fp16", "n_cols": "i32"}, "args": {"n_cols": 100}},'
        '{"name": "tuned", "kernel": "twmod_pkg2.ops:tuned", "configs": [0, 1],'
        '"signature": {"x_ptr": "*fp32", "n": "i32"}, "args": {"n": 1024}}]\n'
    )
    m = static_metrics(targets="gfx942", kernel_files=[p])
    assert [(r.spec, r.status) for r in m.rows] == [
        ("row", "ok"),
        ("tuned[BLOCK=64,w2,s2]", "ok"),
        ("tuned[BLOCK=128,w4,s3]", "ok"),
    ], [r.error for r in m.rows]
