"""The declaration API: COMPILE_SPECS dicts in kernel files, validated into CompileSpec."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from support.probes import needs

from tritonwatch.codegen import specs as specs_mod
from tritonwatch.codegen.specs import CompileSpec, load_file, load_specs, parse_targets
from tritonwatch.errors import InputError, UsageError

KERNELS = Path(__file__).resolve().parent / "kernels_sample.py"

KERNEL_SRC = """
import triton
import triton.language as tl

@triton.jit
def k(x_ptr, BLOCK: tl.constexpr):
    tl.store(x_ptr + tl.arange(0, BLOCK), 1.0)
"""


def _write(tmp_path: Path, specs: str, name: str = "mine.py") -> Path:
    p = tmp_path / name
    p.write_text(KERNEL_SRC + "\nCOMPILE_SPECS = " + specs + "\n")
    return p


@needs("torch", "triton")
def test_load_file_reads_the_sample_kernels() -> None:
    got = load_file(KERNELS)
    assert [s.name for s in got] == ["scale_fp32", "pipelined_fp16", "breakable_fp32"]
    s = got[1]
    assert s.kernel == "pipelined_kernel" and s.num_stages == 3 and s.num_warps == 4
    assert s.constexprs == {"BLOCK": 64} and "K" in s.divisibility
    assert Path(s.file) == KERNELS
    assert s.compile_options() == {"num_warps": 4, "num_stages": 3}


@needs("torch", "triton")
def test_user_file_with_defaults_and_target_restriction(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        '[{"kernel": "k", "signature": {"x_ptr": "*fp32", "BLOCK": "constexpr"},'
        ' "constexprs": {"BLOCK": 64}, "targets": ["sm90"]}]',
    )
    (s,) = load_file(p)
    # num_stages left out: each target compiles with its own default, as a launch would.
    assert s.name.startswith("k-") and s.num_warps == 4 and s.num_stages is None
    assert s.compile_options() == {"num_warps": 4}
    assert s.applies_to("sm90") and not s.applies_to("gfx942")


@needs("torch", "triton")
def test_a_spec_without_num_stages_compiles_with_each_targets_own_default(
    tmp_path: Path,
) -> None:
    """Triton's default is 3 stages on NVIDIA and 2 on AMD; a spec that says nothing must not
    compile gfx942 with 3 (what a launch there would never use)."""
    from tritonwatch.codegen.compiler import compile_task, probe

    p = _write(
        tmp_path,
        '[{"kernel": "k", "signature": {"x_ptr": "*fp32", "BLOCK": "constexpr"},'
        ' "constexprs": {"BLOCK": 64}}]',
    )
    (s,) = load_file(p)
    info = probe()
    got = {}
    for target in ("sm90", "gfx942"):
        task = {"target": target, "file": s.file, "kernel": s.kernel, **s.key()}
        out = compile_task(task, info)
        assert out["status"] == "ok", out
        got[target] = out["metadata"]["num_stages"]
    assert got == {"sm90": 3, "gfx942": 2}


@pytest.mark.parametrize(
    "specs, message",
    [
        ('[{"signature": {}}]', "needs 'kernel'"),
        (
            '[{"kernel": "k", "signature": {"x_ptr": "*fp32", "BLOCK": "constexpr"}}]',
            "need a value",
        ),
        ('[{"kernel": "k", "signature": {}, "warps": 4}]', "unknown key(s) warps"),
        ('[{"kernel": "nope", "signature": {}}]', "does not define"),
        ('["k"]', "expected a dict"),
        ('{"kernel": "k"}', "must be a list"),
        ('[{"kernel": "k", "signature": {}, "targets": ["h100"]}]', "unknown target"),
    ],
)
@needs("torch", "triton")
def test_bad_specs_name_the_file_and_the_problem(tmp_path: Path, specs: str, message: str) -> None:
    p = _write(tmp_path, specs)
    with pytest.raises(
        (InputError, UsageError), match=".*" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        load_file(p)


def test_file_without_specs_or_with_foreign_imports(tmp_path: Path) -> None:
    p = tmp_path / "none.py"
    p.write_text("X = 1\n")
    with pytest.raises(InputError, match="defines no COMPILE_SPECS"):
        load_file(p)
    q = tmp_path / "torchy.py"
    q.write_text("import not_a_module_xyz\nCOMPILE_SPECS = []\n")
    with pytest.raises(InputError, match="cannot import 'not_a_module_xyz'; install it"):
        load_file(q)
    with pytest.raises(InputError, match="no such kernel file"):
        load_file(tmp_path / "missing.py")


@needs("torch", "triton")
def test_pattern_filters_by_kernel_or_spec_name() -> None:
    assert [s.name for s in load_specs([KERNELS], pattern="scale")] == ["scale_fp32"]
    assert [s.name for s in load_specs([KERNELS], pattern="*_fp16")] == ["pipelined_fp16"]
    assert [s.name for s in load_specs([KERNELS], pattern="kernels_sample.breakable*")] == [
        "breakable_fp32"
    ]
    assert load_specs([KERNELS], pattern="nothing-matches") == []


@needs("torch", "triton")
def test_duplicate_spec_names_are_refused(tmp_path: Path) -> None:
    one = '{"name": "a", "kernel": "k", "signature": {"x_ptr": "*fp32", "BLOCK": "constexpr"}, "constexprs": {"BLOCK": 64}}'
    p = _write(tmp_path, f"[{one}, {one}]")
    with pytest.raises(InputError, match="two specs named 'a'"):
        load_specs([p])


def test_parse_targets() -> None:
    assert parse_targets("sm80, sm_90,gfx942,sm80") == ["sm80", "sm90", "gfx942"]
    assert parse_targets("sm90a,sm_90a,SM_100A,gfx950") == ["sm90a", "sm100a", "gfx950"]
    with pytest.raises(UsageError, match="unknown target 'h100'"):
        parse_targets("sm90,h100")
    with pytest.raises(UsageError, match="unknown target 'sm91'; did you mean sm90") as e:
        parse_targets("sm91")
    assert "valid targets: sm70, " in str(e.value) and "gfx942" in str(e.value)
    with pytest.raises(UsageError, match="unknown target 'gfx943'"):
        parse_targets("gfx943")
    with pytest.raises(UsageError, match="no targets"):
        parse_targets(" , ")


def test_default_files_are_the_suite_kernel_files() -> None:
    files = specs_mod.default_files()
    suite = specs_mod.suite_files()
    if suite:
        assert all(f.parent.name == "kernels" for f in suite)
        assert set(suite) <= set(files)
    else:
        assert files == [specs_mod.sample_file()]


def test_entry_points_name_modules_with_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "mykernels_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "kern.py").write_text(
        KERNEL_SRC + '\nCOMPILE_SPECS = [{"kernel": "k", "signature": '
        '{"x_ptr": "*fp32", "BLOCK": "constexpr"}, "constexprs": {"BLOCK": 32}}]\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [SimpleNamespace(name="mine", value="mykernels_pkg.kern")]
    monkeypatch.setattr(
        specs_mod.metadata,
        "entry_points",
        lambda group: eps if group == specs_mod.ENTRY_POINT_GROUP else [],
    )
    assert specs_mod.entry_point_files() == [pkg / "kern.py"]
    assert pkg / "kern.py" in specs_mod.default_files()
    eps[0] = SimpleNamespace(name="bad", value="no_such_module_xyz")
    with pytest.raises(InputError, match="no such Python module"):
        specs_mod.entry_point_files()


@needs("torch", "triton")
def test_spec_key_changes_with_what_decides_the_code() -> None:
    (a,) = load_specs([KERNELS], pattern="scale")
    b = CompileSpec(**{**a.__dict__, "num_warps": 8})
    assert a.key() != b.key()


@needs("torch", "triton")
def test_requirements_exclude_targets_and_triton_versions(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        '[{"kernel": "k", "signature": {"x_ptr": "*fp8e4nv", "BLOCK": "constexpr"},'
        ' "constexprs": {"BLOCK": 64}, "requires": "fp8", "triton_before": "3.9"}]',
    )
    (s,) = load_file(p)
    assert s.why_not("sm80") == "requires fp8, which sm80 lacks"
    assert s.why_not("sm90") is None and s.why_not("gfx942") is None
    assert s.why_not("sm90", "3.9.0") == "needs triton < 3.9"
    assert s.why_not("sm90", "3.8.0+git1234abc") is None
    bad = _write(tmp_path, '[{"kernel": "k", "signature": {}, "requires": "tf64"}]', "bad.py")
    with pytest.raises(InputError, match="unknown required feature"):
        load_file(bad)
