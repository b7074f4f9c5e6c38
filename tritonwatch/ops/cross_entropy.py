"""Cross-entropy forward over Llama-3/Llama-4 vocabularies: one loss per token (no reduction)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
import triton

from ..bench.registry import Registry
from ..bench.spec import Case, DeviceInfo, Prepared, Provider, Shape
from . import _common as c
from .kernels import cross_entropy as k

TOL = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 1e-2}  # torch returns the loss in the input dtype


def _inputs(shape: Shape, dtype: str, device: str, seed: int) -> dict[str, Any]:
    g = c.generator(shape, dtype, device, seed, "cross_entropy")
    m, v = shape["M"], shape["V"]
    x = c.randn((m, v), dtype, device, g, scale=2.0)
    t = torch.randint(0, v, (m,), generator=g, device=device)
    return {"x": x, "t": t}


def _reference(inp: dict[str, Any], shape: Shape, dtype: str) -> torch.Tensor:
    rd = c.ref_dtype(inp["x"].device.type)
    return F.cross_entropy(inp["x"].to(rd), inp["t"], reduction="none")


def _triton(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
    x, t = inputs["x"], inputs["t"]
    note = None
    if device.interpreter and case.dtype == "bf16":
        x, note = x.float(), "interpreter: bf16 logits read as fp32 (numpy has no bf16)"
    m, v = x.shape
    loss = torch.empty(m, device=x.device, dtype=torch.float32)
    block = min(triton.next_power_of_2(v), 4096 if device.is_gpu else 256)
    warps = 8 if block >= 2048 else 4

    def fn() -> torch.Tensor:
        k.cross_entropy_fwd_kernel[(m,)](x, t, loss, v, x.stride(0), BLOCK_N=block, num_warps=warps)
        return loss

    return Prepared(fn, config=lambda: {"BLOCK_N": block, "num_warps": warps}, note=note)


def register(reg: Registry) -> None:
    reg.add_operator(
        c.operator(
            name="cross_entropy",
            family="cross_entropy",
            dtypes=c.FLOAT_DTYPES,
            tolerance=TOL,
            description="per-token cross-entropy loss over the vocabulary (forward)",
            shapes={
                "smoke": [{"M": 9, "V": 1000}],
                "nightly": [{"M": 4096, "V": 128256}, {"M": 4096, "V": 202048}],
            },
            make_inputs=_inputs,
            reference=_reference,
            flops=lambda s: 4.0 * s["M"] * s["V"],
            bytes=lambda s, d: float(s["M"] * s["V"] * c.BYTES[d] + 12 * s["M"]),
        )
    )
    reg.add_provider(
        Provider(
            "cross_entropy",
            "triton",
            _triton,
            description="cross_entropy_fwd_kernel, online log-sum-exp per row",
        )
    )
    reg.add_provider(
        c.torch_provider(
            "cross_entropy",
            lambda i, cs: lambda: F.cross_entropy(i["x"], i["t"], reduction="none"),
            "F.cross_entropy(reduction='none')",
        )
    )
    reg.add_provider(
        c.inductor_provider(
            "cross_entropy",
            lambda x, t: F.cross_entropy(x.float(), t, reduction="none"),
            lambda i, cs: (i["x"], i["t"]),
            "torch.compile(F.cross_entropy)",
        )
    )
