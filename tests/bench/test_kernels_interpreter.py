"""Every built-in Triton kernel against its reference under the interpreter, on the smoke shapes.

One worker subprocess runs them all (TRITON_INTERPRET must be set before triton is imported,
which this pytest process may already have done).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support.probes import needs, needs_interpreter

from tritonwatch import plugins
from tritonwatch.bench.registry import expand, load_suite
from tritonwatch.bench.runner import execute
from tritonwatch.bench.spec import DeviceInfo

KERNELS = Path(__file__).parents[2] / "tritonwatch" / "ops" / "kernels"


@pytest.mark.slow
@needs_interpreter()
def test_every_triton_provider_is_correct_on_smoke_shapes() -> None:
    reg = plugins.load()
    cpu = DeviceInfo("cpu", "cpu", interpreter=True)
    plan = expand(reg, load_suite("smoke"), cpu, providers=["triton"])
    variants = {(c.operator, c.variant) for c in plan.cases}
    assert {
        ("matmul", v) for v in ("pointers", "device_desc", "host_desc", "persistent")
    } <= variants
    assert {
        "vector_add",
        "softmax",
        "layernorm",
        "rmsnorm",
        "attention",
        "attention_docmask",
        "moe_gemm",
    } <= {op for op, _ in variants}
    records, fp, interrupted = execute(
        plan.cases, cpu, budget_ms=1, target_ci=0.5, seed=0, gpus=None
    )
    assert not interrupted and fp and fp["machine"]["device"] == "cpu"
    assert len(records) == len(plan.cases)
    bad = [
        (r.case.id, r.status, r.error)
        for r in records
        if not (r.status == "skipped" and r.correct is True)
    ]
    assert not bad
    for r in records:
        assert r.extra["max_error"] <= r.extra["tolerance"]
        if r.case.dtype == "bf16" and r.case.operator in (
            "matmul",
            "attention",
            "moe_gemm",
            "vector_add",
        ):
            assert "interpreter" in r.extra["note"]  # the upcast is said, not silent


@pytest.mark.parametrize("path", sorted(KERNELS.glob("*.py")), ids=lambda p: p.name)
def test_kernel_files_import_only_triton_and_stdlib(path: Path) -> None:
    import sys

    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            mod = node.module or ""
        elif isinstance(node, ast.Import):
            mod = node.names[0].name
        else:
            continue
        top = mod.split(".")[0]
        assert top in ("triton", "__future__") or top in sys.stdlib_module_names, (
            f"{path.name}: {mod}"
        )


@pytest.mark.parametrize("path", sorted(KERNELS.glob("*.py")), ids=lambda p: p.name)
@needs("torch", "triton")
def test_compile_specs_name_real_kernels(path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_tw_kernels_{path.stem}", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = [s["name"] for s in mod.COMPILE_SPECS]
    assert names and len(names) == len(set(names))
    for s in mod.COMPILE_SPECS:
        fn = getattr(mod, s["kernel"])
        assert set(s["signature"]) == set(fn.arg_names), s["name"]
        assert {k for k, v in s["signature"].items() if v == "constexpr"} == set(s["constexprs"]), (
            s["name"]
        )
        assert isinstance(s["num_warps"], int) and isinstance(s["num_stages"], int)
