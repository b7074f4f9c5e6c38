"""Bandwidth-bound operators: vector add, row softmax, layer norm and RMS norm (forward)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import triton

from ..bench.registry import Registry
from ..bench.spec import Case, DeviceInfo, Prepared, Provider, Shape
from . import _common as c
from .kernels import bandwidth as k

EPS = 1e-5
TOL = {"fp32": 1e-4, "fp16": 4e-3, "bf16": 2e-2}
NORM_N = (4096, 8192, 16384)


# -- vector add ------------------------------------------------------------------------------
def _add_inputs(shape: Shape, dtype: str, device: str, seed: int) -> dict[str, Any]:
    g = c.generator(shape, dtype, device, seed, "vector_add")
    n = shape["N"]
    return {"x": c.randn((n,), dtype, device, g), "y": c.randn((n,), dtype, device, g)}


def _add_triton(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
    x, y = inputs["x"], inputs["y"]
    note = None
    if device.interpreter and case.dtype == "bf16":
        # The interpreter adds bf16 bit patterns as if they were numbers (NaN/garbage).
        x, y, note = x.float(), y.float(), "interpreter: bf16 add computed in fp32, rounded to bf16"
    o = torch.empty_like(x)
    out = torch.empty_like(inputs["x"])
    n = x.numel()
    block = 1024

    def fn() -> torch.Tensor:
        k.add_kernel[(triton.cdiv(n, block),)](x, y, o, n, BLOCK_SIZE=block)
        if note:
            out.copy_(o)
            return out
        return o

    return Prepared(fn, config=lambda: {"BLOCK_SIZE": block, "num_warps": 4}, note=note)


# -- softmax ---------------------------------------------------------------------------------
def _rows_inputs(
    salt: str, with_bias: bool, with_weight: bool
) -> Callable[[Shape, str, str, int], dict[str, Any]]:
    def make(shape: Shape, dtype: str, device: str, seed: int) -> dict[str, Any]:
        g = c.generator(shape, dtype, device, seed, salt)
        m, n = shape["M"], shape["N"]
        d: dict[str, Any] = {"x": c.randn((m, n), dtype, device, g)}
        if with_weight:
            d["w"] = (1.0 + 0.1 * c.randn((n,), "fp32", device, g)).to(d["x"].dtype)
        if with_bias:
            d["b"] = c.randn((n,), dtype, device, g, scale=0.1)
        return d

    return make


def _softmax_triton(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
    x = inputs["x"]
    m, n = x.shape
    y = torch.empty_like(x)
    block, warps = softmax_launch(n)

    def fn() -> torch.Tensor:
        k.softmax_kernel[(m,)](x, y, n, x.stride(0), y.stride(0), BLOCK_N=block, num_warps=warps)
        return y

    return Prepared(fn, config=lambda: {"BLOCK_N": block, "num_warps": warps})


def softmax_launch(n: int) -> tuple[int, int]:
    """(BLOCK_N, num_warps) for a softmax row of ``n``: the whole row in one block."""
    block = triton.next_power_of_2(n)
    return block, 4 if block <= 2048 else (8 if block <= 8192 else 16)


def norm_launch(n: int) -> tuple[int, int]:
    """(BLOCK_N, num_warps) for a layernorm/rmsnorm row of ``n``: loops over 4096-wide blocks."""
    block = min(triton.next_power_of_2(n), 4096)
    return block, 8 if block >= 2048 else 4


def _layernorm_triton(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
    x, w, b = inputs["x"], inputs["w"], inputs["b"]
    m, n = x.shape
    y = torch.empty_like(x)
    block, warps = norm_launch(n)

    def fn() -> torch.Tensor:
        k.layernorm_kernel[(m,)](x, w, b, y, n, x.stride(0), EPS, BLOCK_N=block, num_warps=warps)
        return y

    return Prepared(fn, config=lambda: {"BLOCK_N": block, "num_warps": warps})


def _rmsnorm_triton(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
    x, w = inputs["x"], inputs["w"]
    m, n = x.shape
    y = torch.empty_like(x)
    block, warps = norm_launch(n)

    def fn() -> torch.Tensor:
        k.rmsnorm_kernel[(m,)](x, w, y, n, x.stride(0), EPS, BLOCK_N=block, num_warps=warps)
        return y

    return Prepared(fn, config=lambda: {"BLOCK_N": block, "num_warps": warps})


def _layernorm_ref(inp: dict[str, Any], shape: Shape, dtype: str) -> torch.Tensor:
    rd = c.ref_dtype(inp["x"].device.type)
    x, w, b = (inp[n].to(rd) for n in ("x", "w", "b"))
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, EPS)


def _rmsnorm_eager(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS) * w.float()).to(x.dtype)


def _rmsnorm_ref(inp: dict[str, Any], shape: Shape, dtype: str) -> torch.Tensor:
    rd = c.ref_dtype(inp["x"].device.type)
    x, w = inp["x"].to(rd), inp["w"].to(rd)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def _rows_bytes(n_in: int) -> Any:
    def f(s: Shape, dtype: str) -> float:
        return float((n_in + 1) * s["M"] * s["N"] * c.BYTES[dtype])

    return f


def register(reg: Registry) -> None:
    dts = c.FLOAT_DTYPES
    reg.add_operator(
        c.operator(
            name="vector_add",
            family="bandwidth",
            dtypes=dts,
            tolerance=TOL,
            description="out = x + y over N elements (memory bandwidth)",
            shapes={
                "smoke": [{"N": 4099}, {"N": 1 << 14}],
                "nightly": [{"N": 1 << 20}, {"N": 1 << 24}, {"N": 1 << 28}],
            },
            make_inputs=_add_inputs,
            reference=lambda i, s, d: (
                i["x"].to(c.ref_dtype(i["x"].device.type))
                + i["y"].to(c.ref_dtype(i["x"].device.type))
            ),
            flops=lambda s: float(s["N"]),
            bytes=lambda s, d: 3.0 * s["N"] * c.BYTES[d],
        )
    )
    reg.add_provider(
        Provider("vector_add", "triton", _add_triton, description="add_kernel, 1024 per program")
    )
    reg.add_provider(c.torch_provider("vector_add", lambda i, cs: lambda: i["x"] + i["y"], "x + y"))
    reg.add_provider(
        c.inductor_provider(
            "vector_add", torch.add, lambda i, cs: (i["x"], i["y"]), "torch.compile(torch.add)"
        )
    )

    rows_smoke = [{"M": 37, "N": 200}, {"M": 64, "N": 1024}]
    reg.add_operator(
        c.operator(
            name="softmax",
            family="bandwidth",
            dtypes=dts,
            tolerance=TOL,
            description="row-wise softmax, one fused read and write",
            shapes={
                "smoke": rows_smoke,
                "nightly": [{"M": 4096, "N": n} for n in (1024, 4096, 16384)],
            },
            make_inputs=_rows_inputs("softmax", False, False),
            reference=lambda i, s, d: torch.softmax(
                i["x"].to(c.ref_dtype(i["x"].device.type)), dim=-1
            ),
            flops=lambda s: 5.0 * s["M"] * s["N"],
            bytes=_rows_bytes(1),
        )
    )
    reg.add_provider(
        Provider(
            "softmax", "triton", _softmax_triton, description="softmax_kernel, one row per program"
        )
    )
    reg.add_provider(
        c.torch_provider(
            "softmax", lambda i, cs: lambda: torch.softmax(i["x"], dim=-1), "torch.softmax"
        )
    )
    reg.add_provider(
        c.inductor_provider(
            "softmax",
            lambda x: torch.softmax(x, dim=-1),
            lambda i, cs: (i["x"],),
            "torch.compile(softmax)",
        )
    )

    norm_smoke = [{"M": 19, "N": 300}, {"M": 32, "N": 5000}]
    norm_nightly = [{"M": 4096, "N": n} for n in NORM_N]
    reg.add_operator(
        c.operator(
            name="layernorm",
            family="bandwidth",
            dtypes=dts,
            tolerance=TOL,
            description="layer norm forward over the last dim, with weight and bias",
            shapes={"smoke": norm_smoke, "nightly": norm_nightly},
            make_inputs=_rows_inputs("layernorm", True, True),
            reference=_layernorm_ref,
            flops=lambda s: 8.0 * s["M"] * s["N"],
            bytes=_rows_bytes(1),
        )
    )
    reg.add_provider(
        Provider(
            "layernorm",
            "triton",
            _layernorm_triton,
            description="layernorm_kernel, three passes per row",
        )
    )
    reg.add_provider(
        c.torch_provider(
            "layernorm",
            lambda i, cs: (
                lambda: torch.nn.functional.layer_norm(
                    i["x"], (i["x"].shape[-1],), i["w"], i["b"], EPS
                )
            ),
            "F.layer_norm",
        )
    )
    reg.add_provider(
        c.inductor_provider(
            "layernorm",
            lambda x, w, b: torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, EPS),
            lambda i, cs: (i["x"], i["w"], i["b"]),
            "torch.compile(F.layer_norm)",
        )
    )

    reg.add_operator(
        c.operator(
            name="rmsnorm",
            family="bandwidth",
            dtypes=dts,
            tolerance=TOL,
            description="RMS norm forward over the last dim, with weight",
            shapes={"smoke": norm_smoke, "nightly": norm_nightly},
            make_inputs=_rows_inputs("rmsnorm", False, True),
            reference=_rmsnorm_ref,
            flops=lambda s: 4.0 * s["M"] * s["N"],
            bytes=_rows_bytes(1),
        )
    )
    reg.add_provider(
        Provider(
            "rmsnorm", "triton", _rmsnorm_triton, description="rmsnorm_kernel, two passes per row"
        )
    )
    reg.add_provider(
        c.torch_provider(
            "rmsnorm", lambda i, cs: lambda: _rmsnorm_eager(i["x"], i["w"]), "eager fp32 RMS norm"
        )
    )
    reg.add_provider(
        c.inductor_provider(
            "rmsnorm", _rmsnorm_eager, lambda i, cs: (i["x"], i["w"]), "torch.compile(RMS norm)"
        )
    )
