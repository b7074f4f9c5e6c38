"""Matmul in each Triton programming model, against cuBLAS/hipBLASLt (torch) and inductor.

Variants: ``pointers`` (plain pointer arithmetic), ``block_ptr`` (``tl.make_block_ptr``; listed
unavailable where the installed Triton removed block pointers), ``device_desc``
(``tl.make_tensor_descriptor`` + ``triton.set_allocator``), ``host_desc``
(``triton.tools.tensor_descriptor.TensorDescriptor``) and ``persistent`` (one program per SM).
On a GPU the kernels are autotuned and the chosen config is recorded; under the interpreter one
small config runs.

Precision is explicit on both sides, so Triton and cuBLAS always do the same arithmetic: ``fp32``
is true fp32 (``tl.dot(..., input_precision="ieee")``, torch with TF32 off) and ``tf32`` rounds
fp32 inputs to TF32 on the tensor cores (``input_precision="tf32"``, torch with TF32 on). They are
two dtypes, so two series. fp8 on sm90: Triton accumulates without promotion by default (fast
accumulation); ``torch._scaled_mm`` is asked for the same (``use_fast_accum=True``), and the
config records it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import triton

from ..bench.registry import Registry
from ..bench.spec import Case, DeviceInfo, Prepared, Provider, Shape
from . import _common as c
from .kernels import matmul as k

DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8e4m3")
# fp32 is tight enough to catch TF32 arithmetic: on random data true fp32 lands near 4e-7 and
# TF32 near 3e-4 of max|reference| (K = 64 to 14336).
TOL = {"fp32": 2e-5, "tf32": 2e-3, "fp16": 5e-3, "bf16": 2e-2, "fp8e4m3": 2e-2}
DOT_PRECISION = {"fp32": "ieee", "tf32": "tf32"}

# Llama-3 8B/70B projections at 4096 tokens (qkv, o, gate+up fused, down), plus skinny decode.
NIGHTLY = [
    {"M": 4096, "N": 6144, "K": 4096},
    {"M": 4096, "N": 4096, "K": 4096},
    {"M": 4096, "N": 28672, "K": 4096},
    {"M": 4096, "N": 4096, "K": 14336},
    {"M": 4096, "N": 10240, "K": 8192},
    {"M": 4096, "N": 8192, "K": 8192},
    {"M": 4096, "N": 8192, "K": 28672},
    {"M": 16, "N": 8192, "K": 8192},
]
SMOKE = [{"M": 64, "N": 48, "K": 80}, {"M": 128, "N": 96, "K": 64}]

_GPU_CONFIGS = [
    triton.Config(
        {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=3, num_warps=8
    ),
    triton.Config(
        {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=4, num_warps=4
    ),
    triton.Config(
        {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8}, num_stages=4, num_warps=4
    ),
    triton.Config(
        {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32, "GROUP_M": 8}, num_stages=4, num_warps=4
    ),
    triton.Config(
        {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=3, num_warps=4
    ),
]
_FP8_CONFIGS = [
    triton.Config(
        {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 128, "GROUP_M": 8}, num_stages=3, num_warps=8
    ),
    triton.Config(
        {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8}, num_stages=4, num_warps=8
    ),
    triton.Config(
        {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8}, num_stages=4, num_warps=4
    ),
    # The only one that fits gfx942's 64 KB of LDS (tests/codegen/test_launch_fit.py).
    triton.Config(
        {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=2, num_warps=4
    ),
]
_CPU_BLOCKS = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 4}
_tuned: dict[tuple[str, bool], Any] = {}


def _kernel(name: str, device: DeviceInfo, fp8: bool) -> Any:
    """The jit kernel (interpreter) or its autotuned wrapper (GPU), cached per variant."""
    base = getattr(k, f"matmul_{name}_kernel")
    if not device.is_gpu:
        return base
    key = (name, fp8)
    if key not in _tuned:
        _tuned[key] = c.autotune(base, _FP8_CONFIGS if fp8 else _GPU_CONFIGS, ["M", "N", "K"])
    return _tuned[key]


def _inputs(shape: Shape, dtype: str, device: str, seed: int) -> dict[str, Any]:
    g = c.generator(shape, dtype, device, seed, "matmul")
    m, n, kk = shape["M"], shape["N"], shape["K"]
    scale = 1.0 / kk**0.25  # keeps fp8/fp16 outputs in range
    a = c.randn((m, kk), dtype, device, g, scale)
    if dtype == "fp8e4m3":
        # fp8 tl.dot and torch._scaled_mm want B column-major (K contiguous).
        b = c.randn((n, kk), dtype, device, g, scale).t()
    else:
        b = c.randn((kk, n), dtype, device, g, scale)
    return {"a": a, "b": b}


def _reference(inp: dict[str, Any], shape: Shape, dtype: str) -> torch.Tensor:
    rd = c.ref_dtype(inp["a"].device.type)
    with c.fp32_matmul(tf32=False):  # the reference is true fp32 whatever the provider set
        return inp["a"].to(rd) @ inp["b"].to(rd)


def _out_dtype(a: torch.Tensor) -> torch.dtype:
    return torch.float16 if a.element_size() == 1 else a.dtype


def _upcast(
    inputs: dict[str, Any], case: Case, device: DeviceInfo
) -> tuple[torch.Tensor, torch.Tensor, str | None]:
    a, b = inputs["a"], inputs["b"]
    if device.interpreter and case.dtype == "bf16":
        return a.float(), b.float(), c.INTERPRETER_BF16_NOTE
    return a, b, None


def host_desc_launch(dtype: str, kind: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Blocks and launch options of the (not autotuned) host-descriptor kernel on a GPU.

    128x128x64 fp32 tiles in 4 stages need 295 KB of shared memory (sm90 has 227 KB): fp32 and
    tf32 take BLOCK_K 32 (180 KB). gfx942 has 64 KB of LDS: 2 stages there. Every choice is
    compiled for sm90, sm100 and gfx942 by tests/codegen/test_launch_fit.py.
    """
    blocks: dict[str, Any] = {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8}
    if dtype == "fp8e4m3":
        blocks["BLOCK_K"] = 128
    elif c.BYTES[dtype] == 4:
        blocks["BLOCK_K"] = 32
    return blocks, {"num_warps": 4, "num_stages": 2 if kind == "rocm" else 4}


def _scratch_allocator(device_type: str) -> Callable[[int, int, Any], torch.Tensor]:
    """Triton's scratch allocator for device-side descriptors. It outlives the case (Triton
    keeps it globally), so it holds the device's name only, never the case's tensors."""

    def alloc(size: int, alignment: int, stream: Any) -> torch.Tensor:
        return torch.empty(size, device=device_type, dtype=torch.int8)

    return alloc


def _triton(variant: str) -> Callable[[dict[str, Any], Case, DeviceInfo], Prepared]:
    def prepare(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
        a, b, note = _upcast(inputs, case, device)
        fp8 = case.dtype == "fp8e4m3"
        m, kk = a.shape
        n = b.shape[1]
        out = torch.empty((m, n), device=a.device, dtype=_out_dtype(inputs["a"]))
        cout = out.float() if note else out
        kern = _kernel(variant, device, fp8)
        precision = (
            {"DOT_PRECISION": DOT_PRECISION[case.dtype]} if case.dtype in DOT_PRECISION else {}
        )
        fixed = {**({} if device.is_gpu else _CPU_BLOCKS), **precision}
        n_sm = device.sm_count or 2

        def grid(meta: dict[str, Any]) -> tuple[int]:
            tiles = triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"])
            return (min(tiles, n_sm) if variant == "persistent" else tiles,)

        if variant == "host_desc":
            from triton.tools.tensor_descriptor import TensorDescriptor

            descs: dict[tuple[int, int, int], tuple[Any, Any, Any]] = {}

            def run() -> None:
                # Block shapes depend on the config; with autotuning the kernel is launched through
                # a pre-hook-free path per config, so descriptors are built for the fixed blocks.
                bm, bn, bk = blocks["BLOCK_M"], blocks["BLOCK_N"], blocks["BLOCK_K"]
                key = (bm, bn, bk)
                if key not in descs:
                    descs[key] = (
                        TensorDescriptor.from_tensor(a, [bm, bk]),
                        TensorDescriptor.from_tensor(b, [bk, bn]),
                        TensorDescriptor.from_tensor(cout, [bm, bn]),
                    )
                da, db, dc = descs[key]
                base = k.matmul_host_desc_kernel
                tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
                base[(tiles,)](da, db, dc, m, n, kk, **blocks, **launch)

            blocks: dict[str, Any]
            if device.is_gpu:
                blocks, launch = host_desc_launch(case.dtype, device.kind)
            else:
                blocks, launch = dict(_CPU_BLOCKS), {}
                if fp8:
                    blocks["BLOCK_K"] = 128
            blocks.update(precision)

            def run_desc() -> torch.Tensor:
                run()
                if note:
                    out.copy_(cout)
                return out

            return Prepared(
                run_desc, config=lambda: {**blocks, **launch, "autotuned": False}, note=note
            )

        if variant == "device_desc":
            triton.set_allocator(_scratch_allocator(a.device.type))

        def fn() -> torch.Tensor:
            if variant == "device_desc":
                kern[grid](a, b, cout, m, n, kk, **fixed)
            elif variant == "persistent":
                kern[grid](
                    a,
                    b,
                    cout,
                    m,
                    n,
                    kk,
                    *a.stride(),
                    *b.stride(),
                    *cout.stride(),
                    NUM_SMS=n_sm,
                    **fixed,
                )
            else:
                kern[grid](a, b, cout, m, n, kk, *a.stride(), *b.stride(), *cout.stride(), **fixed)
            if note:
                out.copy_(cout)
            return out

        def config() -> dict[str, Any]:
            if device.is_gpu:
                best = c.config_dict(getattr(kern, "best_config", None))
                return {**best, **precision, "autotuned": True}
            return {**fixed, "autotuned": False}

        return Prepared(fn, config=config, note=note)

    return prepare


def _triton_available(variant: str) -> Callable[[DeviceInfo, str], str | None]:
    def check(device: DeviceInfo, dtype: str) -> str | None:
        if variant == "block_ptr" and c.block_pointers_removed():
            return (
                f"Triton {triton.__version__} removed block pointers (tl.make_block_ptr); "
                "use the tensor-descriptor variants"
            )
        if dtype == "tf32" and (why := c.tf32_unavailable(device)):
            return why
        if dtype == "fp8e4m3":
            if not device.has_fp8:
                return "fp8 e4m3 needs a GPU with fp8 (sm89+, gfx942, gfx950)"
            if variant not in ("pointers", "persistent"):
                return f"{variant} is measured for fp16/bf16/fp32 only (fp8 B must be K-major)"
        return None

    return check


def _torch(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
    a, b = inputs["a"], inputs["b"]
    if case.dtype == "fp8e4m3":
        one = torch.ones((), device=a.device, dtype=torch.float32)
        # Like with like: Triton's fp8 dot skips promotion on sm90 (max_num_imprecise_acc).
        fast = device.kind == "cuda" and device.capability == (9, 0)

        def fp8() -> torch.Tensor:
            return torch._scaled_mm(
                a, b, scale_a=one, scale_b=one, out_dtype=torch.float16, use_fast_accum=fast
            )

        return Prepared(fp8, config=lambda: {"use_fast_accum": fast})
    if case.dtype in DOT_PRECISION:
        # Set for this case; the worker restores torch's flags after every case.
        c.set_fp32_matmul(tf32=case.dtype == "tf32")
        return Prepared(
            lambda: torch.matmul(a, b), config=lambda: {"precision": DOT_PRECISION[case.dtype]}
        )
    return Prepared(lambda: torch.matmul(a, b))


def _torch_available(device: DeviceInfo, dtype: str) -> str | None:
    if dtype == "tf32":
        return c.tf32_unavailable(device)
    return c.torch_available(device, dtype)


def register(reg: Registry) -> None:
    reg.add_operator(
        c.operator(
            name="matmul",
            family="matmul",
            dtypes=DTYPES,
            tolerance=TOL,
            description="C = A @ B (Llama-3 8B/70B projection shapes at 4096 tokens)",
            shapes={"smoke": SMOKE, "nightly": NIGHTLY},
            make_inputs=_inputs,
            reference=_reference,
            flops=lambda s: 2.0 * s["M"] * s["N"] * s["K"],
            bytes=lambda s, d: float(
                c.BYTES[d] * (s["M"] * s["K"] + s["K"] * s["N"])
                + max(2, c.BYTES[d]) * s["M"] * s["N"]
            ),
        )
    )
    docs = {
        "pointers": "plain pointer arithmetic, grouped tile order",
        "block_ptr": "tl.make_block_ptr / tl.advance",
        "device_desc": "tl.make_tensor_descriptor inside the kernel (triton.set_allocator)",
        "host_desc": "TensorDescriptor.from_tensor on the host",
        "persistent": "one program per SM looping over tiles",
    }
    for variant, doc in docs.items():
        reg.add_provider(
            Provider(
                "matmul",
                "triton",
                _triton(variant),
                variant=variant,
                available=_triton_available(variant),
                description=doc,
            )
        )
    reg.add_provider(
        Provider(
            "matmul",
            "torch",
            _torch,
            kind="torch",
            available=_torch_available,
            description="torch.matmul (cuBLAS); torch._scaled_mm for fp8",
        )
    )
    reg.add_provider(
        c.inductor_provider(
            "matmul", torch.matmul, lambda i, cs: (i["a"], i["b"]), "torch.compile(torch.matmul)"
        )
    )
