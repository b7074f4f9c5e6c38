"""Registry, suite files and case expansion: bad names list the valid ones, bad files name the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.probes import needs, needs_interpreter

from tritonwatch import plugins
from tritonwatch.bench.registry import Registry, expand, load_suite, parse_suite
from tritonwatch.bench.spec import Case, DeviceInfo, Operator, Prepared, Provider
from tritonwatch.errors import BenchError, InputError, UsageError

CPU = DeviceInfo("cpu", "cpu", interpreter=True)
H100 = DeviceInfo("cuda", "sm90", name="NVIDIA H100", capability=(9, 0), sm_count=132)
A100 = DeviceInfo("cuda", "sm80", name="NVIDIA A100", capability=(8, 0), sm_count=108)


@pytest.fixture(scope="module")
def reg() -> Registry:
    return plugins.load()


def _op(name: str = "x") -> Operator:
    return Operator(
        name=name,
        family="f",
        shapes={"smoke": [{"N": 1}]},
        dtypes=("fp32",),
        make_inputs=lambda *a: None,
        reference=lambda *a: None,
        flops=lambda s: 0.0,
        bytes=lambda s, d: 0.0,
        tolerance={},
    )


def test_duplicates_and_orphans_are_rejected() -> None:
    r = Registry()
    r.add_operator(_op())
    with pytest.raises(BenchError, match="registered twice"):
        r.add_operator(_op())
    p = Provider("x", "p", lambda *a: Prepared(lambda: None))
    r.add_provider(p)
    with pytest.raises(BenchError, match="registered twice"):
        r.add_provider(p)
    with pytest.raises(BenchError, match="unknown operator 'nope'"):
        r.add_provider(Provider("nope", "p", lambda *a: Prepared(lambda: None)))
    with pytest.raises(BenchError, match="unknown dtype"):
        r.add_operator(Operator(**{**_op("y").__dict__, "dtypes": ("fp64",)}))


@needs("torch", "triton")
def test_every_builtin_operator_has_smoke_and_nightly_shapes_and_costs(reg: Registry) -> None:
    assert {
        "vector_add",
        "softmax",
        "layernorm",
        "rmsnorm",
        "matmul",
        "attention",
        "attention_docmask",
        "moe_gemm",
    } <= set(reg.operators)
    for op in reg.operators.values():
        assert op.shapes["smoke"] and op.shapes["nightly"], op.name
        for s in op.shapes["smoke"] + op.shapes["nightly"]:
            assert op.flops(s) > 0 and op.bytes(s, op.dtypes[0]) > 0
        assert {"triton", "torch"} <= {p.name for p in reg.providers[op.name].values()}
    variants = {p.variant for p in reg.providers["matmul"].values()}
    assert variants >= {"pointers", "block_ptr", "device_desc", "host_desc", "persistent"}


@needs("torch", "triton")
def test_availability_depends_on_the_device(reg: Registry) -> None:
    fp8 = Case("matmul", "triton", "pointers", {"M": 1, "N": 1, "K": 1}, "fp8e4m3")
    assert "fp8" in (reg.why_not(fp8, CPU) or "") and "fp8" in (reg.why_not(fp8, A100) or "")
    assert reg.why_not(fp8, H100) is None
    desc = Case("matmul", "triton", "host_desc", {"M": 1, "N": 1, "K": 1}, "fp16")
    # Without TMA (sm80, gfx942) descriptors lower to ordinary loads: still measured.
    assert reg.why_not(desc, H100) is None and reg.why_not(desc, CPU) is None
    assert reg.why_not(desc, A100) is None
    import triton.language as tl

    blk = reg.why_not(Case("matmul", "triton", "block_ptr", {}, "fp16"), H100)
    removed = "removed" in (tl.make_block_ptr.__doc__ or "")
    assert (blk is not None and "removed block pointers" in blk) == removed


@needs_interpreter()
def test_filters_and_k_patterns(reg: Registry) -> None:
    plan = expand(
        reg, load_suite("smoke"), CPU, providers=["torch"], dtypes=["fp16"], patterns=["softmax"]
    )
    assert plan.cases and all(
        c.operator == "softmax" and c.provider == "torch" and c.dtype == "fp16" for c in plan.cases
    )
    plan = expand(
        reg, load_suite("smoke"), CPU, providers=["triton/persistent"], patterns=["M=64*"]
    )
    assert plan.cases and all(c.variant == "persistent" and c.shape["M"] == 64 for c in plan.cases)


@needs("torch", "triton")
def test_inductor_on_cpu_only_when_asked(reg: Registry) -> None:
    plan = expand(reg, load_suite("smoke"), CPU, patterns=["vector_add"])
    assert not [c for c in plan.cases if c.provider == "inductor"]
    assert any("--provider inductor" in why for _, why in plan.skipped)
    plan = expand(reg, load_suite("smoke"), CPU, providers=["inductor"], patterns=["vector_add"])
    assert plan.cases and all(c.provider == "inductor" for c in plan.cases)


@needs("torch", "triton")
def test_unknown_names_list_the_valid_ones(reg: Registry) -> None:
    with pytest.raises(UsageError, match="unknown provider 'cublas'; valid: .*torch.*triton"):
        expand(reg, load_suite("smoke"), CPU, providers=["cublas"])
    with pytest.raises(
        UsageError, match="unknown dtype 'fp64'; valid: fp32, tf32, fp16, bf16, fp8e4m3"
    ):
        expand(reg, load_suite("smoke"), CPU, dtypes=["fp64"])
    with pytest.raises(UsageError, match="unknown suite 'weekly'"):
        load_suite("weekly")
    with pytest.raises(UsageError, match="unknown operator 'conv'; valid: attention"):
        reg.operator("conv")


@needs("torch", "triton")
def test_suite_file(tmp_path: Path, reg: Registry) -> None:
    p = tmp_path / "mine.toml"
    p.write_text(
        '[suite]\nname = "mine"\n\n[[cases]]\noperator = "matmul"\nproviders = ["torch"]\n'
        'dtypes = ["fp32"]\nshapes = [{M = 8, N = 8, K = 8}, {M = 16, N = 8, K = 8}]\n'
    )
    s = load_suite(str(p))
    plan = expand(reg, s, CPU)
    assert s.name == "mine" and [c.shape["M"] for c in plan.cases] == [8, 16]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            '[[cases]]\noperator = "matmul"\n\n[[cases]]\noperator = "conv"\n',
            4,
            "unknown operator 'conv'",
        ),
        ('[[cases]]\noperator = "matmul"\nproviders = ["cublas"]\n', 1, "unknown provider"),
        ('[[cases]]\noperator = "matmul"\nshapes = [{M = -1}]\n', 1, "positive integers"),
        ('[[cases]]\noperator = "matmul"\nshape = "smoke"\n', 1, "unknown key"),
        ('[[cases]]\noperator = "matmul"\nshapes = [{M = 1\n', 3, "not valid TOML"),
        ('\n\n[[cases]]\nprovider = ["x"]\n', 3, "unknown key"),
    ],
)
@needs("torch", "triton")
def test_suite_file_errors_name_the_line(
    tmp_path: Path, reg: Registry, text: str, line: int, message: str
) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(InputError, match=message) as e:
        expand(reg, parse_suite(text, str(p)), CPU)
    assert f"bad.toml:{line}:" in str(e.value)


@needs_interpreter()
def test_nightly_on_cpu_skips_what_the_interpreter_cannot_run(reg: Registry) -> None:
    plan = expand(reg, load_suite("nightly"), CPU, patterns=["matmul"])
    assert not [c for c in plan.cases if c.provider == "triton"]
    assert any("too large for the Triton interpreter" in why for _, why in plan.skipped)
    assert [c for c in plan.cases if c.provider == "torch"]  # torch still runs on the CPU
    on_gpu = expand(reg, load_suite("nightly"), H100, patterns=["matmul"])
    assert [c for c in on_gpu.cases if c.provider == "triton"]
