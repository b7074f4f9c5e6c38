"""Grouped GEMM for mixture-of-experts with top-k routing (Llama-4 Scout/Maverick, Mixtral).

Shape: ``T`` tokens, ``E`` experts, ``topk`` experts per token, ``K`` hidden size, ``N`` expert
output size. Routing (softmax over random router logits, top-k) and the sort by expert happen
outside the timed region; the timed call is the grouped GEMM that writes ``T*topk`` gated rows.
"""

from __future__ import annotations

from typing import Any

import torch

from ..bench.registry import Registry
from ..bench.spec import Case, DeviceInfo, Prepared, Provider, Shape
from . import _common as c
from .kernels import moe as k

DTYPES = ("fp16", "bf16")
TOL = {"fp16": 5e-3, "bf16": 2e-2}
NIGHTLY = [
    {"T": 4096, "E": 16, "topk": 1, "K": 5120, "N": 8192},  # Llama-4 Scout expert up-proj
    {"T": 16384, "E": 128, "topk": 1, "K": 5120, "N": 8192},  # Llama-4 Maverick
    {"T": 4096, "E": 8, "topk": 2, "K": 4096, "N": 14336},  # Mixtral-8x7B
]


def _inputs(shape: Shape, dtype: str, device: str, seed: int) -> dict[str, Any]:
    g = c.generator(shape, dtype, device, seed, "moe")
    t, e, kk, n, topk = shape["T"], shape["E"], shape["K"], shape["N"], shape["topk"]
    x = c.randn((t, kk), dtype, device, g, kk**-0.25)
    w = c.randn((e, kk, n), dtype, device, g, kk**-0.25)
    logits = torch.randn((t, e), generator=g, device=device)
    weights, experts = torch.softmax(logits, -1).topk(topk, dim=-1)
    return {"x": x, "w": w, "experts": experts.int(), "weights": weights.float().contiguous()}


def _reference(inp: dict[str, Any], shape: Shape, dtype: str) -> torch.Tensor:
    x, w = inp["x"], inp["w"]
    rd = c.ref_dtype(x.device.type)
    flat = inp["experts"].reshape(-1).long()
    gate = inp["weights"].reshape(-1).to(rd)
    out = torch.zeros((flat.numel(), shape["N"]), device=x.device, dtype=rd)
    for e in range(shape["E"]):
        pairs = (flat == e).nonzero().squeeze(1)
        if pairs.numel():
            out[pairs] = (x[pairs // shape["topk"]].to(rd) @ w[e].to(rd)) * gate[pairs, None]
    return out


def route(experts: torch.Tensor, n_experts: int, block_m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted pairs padded per expert to block_m with the sentinel T*topk, expert per block)."""
    flat = experts.reshape(-1).long()
    num_pairs = flat.numel()
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=n_experts).tolist()
    chunks, block_expert, start = [], [], 0
    for e, cnt in enumerate(counts):
        if cnt == 0:
            continue
        nblk = -(-cnt // block_m)
        pad = torch.full((nblk * block_m,), num_pairs, dtype=torch.int32, device=experts.device)
        pad[:cnt] = order[start : start + cnt].int()
        chunks.append(pad)
        block_expert += [e] * nblk
        start += cnt
    return torch.cat(chunks), torch.tensor(block_expert, dtype=torch.int32, device=experts.device)


def _triton(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
    s = case.shape
    x, w = inputs["x"], inputs["w"]
    note = None
    if device.interpreter and case.dtype == "bf16":
        x, w, note = x.float(), w.float(), c.INTERPRETER_BF16_NOTE
    if device.is_gpu:
        blocks, launch = (
            {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64},
            {"num_warps": 4, "num_stages": 3},
        )
    else:
        blocks, launch = {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32}, {}
    pairs, block_expert = route(inputs["experts"], s["E"], blocks["BLOCK_M"])
    num_pairs = s["T"] * s["topk"]
    o = torch.empty((num_pairs, s["N"]), device=x.device, dtype=x.dtype)
    out = torch.empty((num_pairs, s["N"]), device=x.device, dtype=inputs["x"].dtype)
    grid = (block_expert.numel(), -(-s["N"] // blocks["BLOCK_N"]))

    def fn() -> torch.Tensor:
        k.moe_grouped_gemm_kernel[grid](
            x,
            w,
            o,
            pairs,
            block_expert,
            inputs["weights"],
            s["N"],
            s["K"],
            num_pairs,
            TOPK=s["topk"],
            **blocks,
            **launch,
        )
        if note:
            out.copy_(o)
            return out
        return o

    return Prepared(fn, config=lambda: {**blocks, **launch}, note=note)


def _torch(inputs: dict[str, Any], case: Case) -> Any:
    s = case.shape
    x, w = inputs["x"], inputs["w"]
    flat = inputs["experts"].reshape(-1).long()
    gate = inputs["weights"].reshape(-1)
    groups = [(e, (flat == e).nonzero().squeeze(1)) for e in range(s["E"])]
    groups = [(e, p) for e, p in groups if p.numel()]
    out = torch.empty((flat.numel(), s["N"]), device=x.device, dtype=x.dtype)

    def fn() -> torch.Tensor:
        for e, pairs in groups:
            out[pairs] = (x[pairs // s["topk"]] @ w[e]) * gate[pairs, None].to(x.dtype)
        return out

    return fn


def register(reg: Registry) -> None:
    reg.add_operator(
        c.operator(
            name="moe_gemm",
            family="moe",
            dtypes=DTYPES,
            tolerance=TOL,
            description="MoE grouped GEMM with top-k routing (Llama-4, Mixtral expert shapes)",
            shapes={"smoke": [{"T": 24, "E": 4, "topk": 2, "K": 32, "N": 40}], "nightly": NIGHTLY},
            make_inputs=_inputs,
            reference=_reference,
            flops=lambda s: 2.0 * s["T"] * s["topk"] * s["K"] * s["N"],
            bytes=lambda s, d: float(
                c.BYTES[d]
                * (s["T"] * s["K"] + s["E"] * s["K"] * s["N"] + s["T"] * s["topk"] * s["N"])
            ),
        )
    )
    reg.add_provider(
        Provider(
            "moe_gemm",
            "triton",
            _triton,
            description="moe_grouped_gemm_kernel over expert-sorted rows",
        )
    )
    reg.add_provider(
        c.torch_provider("moe_gemm", _torch, "eager loop over experts (gather, mm, scatter)")
    )
