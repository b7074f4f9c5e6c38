"""Flash-attention forward (causal and not) and attention with a document mask.

``attention`` shapes carry ``causal`` (0/1); ``attention_docmask`` packs ``docs`` equal-length
documents per sequence, causal within each document (packed-sequence training). FLOPs count
only the (query, key) pairs the mask keeps: 4 * B * H * D * pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..bench.registry import Registry
from ..bench.spec import Case, DeviceInfo, Prepared, Provider, Shape
from . import _common as c
from .kernels import attention as k

DTYPES = ("fp16", "bf16")
TOL = {"fp16": 5e-3, "bf16": 2e-2}


def _nightly(causal_key: str) -> list[Shape]:
    out = []
    for n in (1024, 4096, 16384):
        for d in (64, 128):
            shape = {"B": max(1, 16384 // n), "H": 32 if d == 64 else 16, "N": n, "D": d}
            if causal_key == "causal":
                out += [{**shape, "causal": 0}, {**shape, "causal": 1}]
            else:
                out.append({**shape, "docs": 4})
    return out


def _pairs(s: Shape) -> float:
    n = s["N"]
    if "docs" in s:
        ln = n // s["docs"]
        return float(s["docs"] * ln * (ln + 1) // 2)
    return float(n * (n + 1) // 2 if s.get("causal") else n * n)


def _doc_ids(s: Shape, device: str) -> torch.Tensor:
    ln = s["N"] // s["docs"]
    ids = torch.arange(s["N"], device=device, dtype=torch.int32) // ln
    return ids.clamp_(max=s["docs"] - 1).expand(s["B"], -1).contiguous()


def _inputs(salt: str) -> Callable[[Shape, str, str, int], dict[str, Any]]:
    def make(shape: Shape, dtype: str, device: str, seed: int) -> dict[str, Any]:
        g = c.generator(shape, dtype, device, seed, salt)
        size = (shape["B"], shape["H"], shape["N"], shape["D"])
        d = {n: c.randn(size, dtype, device, g) for n in ("q", "k", "v")}
        if "docs" in shape:
            d["doc"] = _doc_ids(shape, device)
        return d

    return make


def _mask(shape: Shape, device: torch.device, doc: torch.Tensor | None) -> torch.Tensor | None:
    n = shape["N"]
    if doc is None and not shape.get("causal"):
        return None
    i = torch.arange(n, device=device)
    m = i[:, None] >= i[None, :]
    if doc is None:
        return m
    return (m & (doc[:, :, None] == doc[:, None, :]))[:, None]


def _reference(inp: dict[str, Any], shape: Shape, dtype: str) -> torch.Tensor:
    q = inp["q"]
    rd = c.ref_dtype(q.device.type)
    scale = 1.0 / math.sqrt(shape["D"])
    mask = _mask(shape, q.device, inp.get("doc"))
    out = torch.empty(q.shape, device=q.device, dtype=rd)
    # One (batch, head) at a time keeps the N x N scores small at 16k tokens.
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            s = (q[b, h].to(rd) @ inp["k"][b, h].to(rd).T) * scale
            if mask is not None:
                mb = mask[b, 0] if mask.dim() == 4 else mask
                s = s.masked_fill(~mb, float("-inf"))
            out[b, h] = torch.softmax(s, dim=-1) @ inp["v"][b, h].to(rd)
    return out


def gpu_launch(head_dim: int, kind: str) -> tuple[int, int, dict[str, int]]:
    """(BLOCK_M, BLOCK_N, launch options) on a GPU of ``kind`` (cuda or rocm).

    Three stages of 64x128 K and V tiles need 80 KB of LDS, more than gfx942's 64 KB, so on
    ROCm head dim 128 runs unpipelined (32 KB); tests/codegen/test_launch_fit.py compiles each.
    """
    stages = 1 if kind == "rocm" and head_dim == 128 else 3
    return 128, 64, {"num_warps": 8 if head_dim == 128 else 4, "num_stages": stages}


def _triton(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
    s = case.shape
    q, kk, v = inputs["q"], inputs["k"], inputs["v"]
    note = None
    if device.interpreter and case.dtype == "bf16":
        q, kk, v, note = q.float(), kk.float(), v.float(), c.INTERPRETER_BF16_NOTE
    doc = inputs.get("doc")
    doc_arg = doc if doc is not None else torch.zeros(1, device=q.device, dtype=torch.int32)
    o = torch.empty_like(q)
    out = torch.empty_like(inputs["q"])
    d = s["D"]
    if device.is_gpu:
        bm, bn, launch = gpu_launch(d, device.kind)
    else:
        bm, bn, launch = 16, 16, {}
    grid = (-(-s["N"] // bm), s["B"] * s["H"])
    scale = 1.0 / math.sqrt(d)

    def fn() -> torch.Tensor:
        k.attention_fwd_kernel[grid](
            q,
            kk,
            v,
            o,
            doc_arg,
            scale,
            s["H"],
            s["N"],
            HEAD_DIM=d,
            BLOCK_M=bm,
            BLOCK_N=bn,
            CAUSAL=bool(s.get("causal") or doc is not None),
            DOC_MASK=doc is not None,
            **launch,
        )
        if note:
            out.copy_(o)
            return out
        return o

    return Prepared(fn, config=lambda: {"BLOCK_M": bm, "BLOCK_N": bn, **launch}, note=note)


def _sdpa(inputs: dict[str, Any], case: Case) -> Any:
    q, kk, v = inputs["q"], inputs["k"], inputs["v"]
    if "doc" in inputs:
        mask = _mask(case.shape, q.device, inputs["doc"])
        return lambda: F.scaled_dot_product_attention(q, kk, v, attn_mask=mask)
    causal = bool(case.shape.get("causal"))
    return lambda: F.scaled_dot_product_attention(q, kk, v, is_causal=causal)


def _sdpa_args(inputs: dict[str, Any], case: Case) -> tuple[Any, ...]:
    if "doc" in inputs:
        return (
            inputs["q"],
            inputs["k"],
            inputs["v"],
            _mask(case.shape, inputs["q"].device, inputs["doc"]),
            False,
        )
    return (inputs["q"], inputs["k"], inputs["v"], None, bool(case.shape.get("causal")))


def _sdpa_fn(
    q: torch.Tensor, k_: torch.Tensor, v: torch.Tensor, mask: Any, causal: bool
) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k_, v, attn_mask=mask, is_causal=causal)


def _bytes(s: Shape, dt: str) -> float:
    return 4.0 * s["B"] * s["H"] * s["N"] * s["D"] * c.BYTES[dt]


def register(reg: Registry) -> None:
    reg.add_operator(
        c.operator(
            name="attention",
            family="attention",
            dtypes=DTYPES,
            tolerance=TOL,
            description="flash-attention forward, causal and not (sequence 1k-16k, head dim 64/128)",
            shapes={
                "smoke": [
                    {"B": 1, "H": 2, "N": 40, "D": 16, "causal": 0},
                    {"B": 1, "H": 2, "N": 40, "D": 16, "causal": 1},
                ],
                "nightly": _nightly("causal"),
            },
            make_inputs=_inputs("attention"),
            reference=_reference,
            flops=lambda s: 4.0 * s["B"] * s["H"] * s["D"] * _pairs(s),
            bytes=_bytes,
        )
    )
    reg.add_operator(
        c.operator(
            name="attention_docmask",
            family="attention",
            dtypes=DTYPES,
            tolerance=TOL,
            description="attention over packed documents: causal within each document",
            shapes={
                "smoke": [{"B": 2, "H": 1, "N": 48, "D": 16, "docs": 3}],
                "nightly": _nightly("docs"),
            },
            make_inputs=_inputs("attention_docmask"),
            reference=_reference,
            flops=lambda s: 4.0 * s["B"] * s["H"] * s["D"] * _pairs(s),
            bytes=_bytes,
        )
    )
    for op in ("attention", "attention_docmask"):
        reg.add_provider(
            Provider(op, "triton", _triton, description="attention_fwd_kernel (online softmax)")
        )
        reg.add_provider(
            c.torch_provider(op, _sdpa, "F.scaled_dot_product_attention (flash/cuDNN/efficient)")
        )
        reg.add_provider(
            c.inductor_provider(op, _sdpa_fn, _sdpa_args, "torch.compile(SDPA)", dtypes=DTYPES)
        )
