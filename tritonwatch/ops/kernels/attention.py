"""Flash-attention forward (causal or not, optional document mask).

Imports only ``triton``, ``triton.language`` and the stdlib, so the blast-radius compile worker
can load this file by path in a torch-less environment (Triton 3.6-3.9).

Layout: q, k, v, o are ``[B, H, N, D]`` contiguous; ``doc_ptr`` is ``[B, N]`` int32 document ids
(read only when ``DOC_MASK``). ``COMPILE_SPECS`` uses the shape documented in ``matmul.py``.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def attention_fwd_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    o_ptr,
    doc_ptr,
    sm_scale,
    H,
    N_CTX,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOC_MASK: tl.constexpr,
):
    start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    off_b = off_bh // H
    base = off_bh.to(tl.int64) * N_CTX * HEAD_DIM
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(
        q_ptr + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :],
        mask=offs_m[:, None] < N_CTX,
        other=0.0,
    )
    if DOC_MASK:
        q_doc = tl.load(doc_ptr + off_b * N_CTX + offs_m, mask=offs_m < N_CTX, other=-1)
    qk_scale = sm_scale * 1.44269504  # exp2 is cheaper than exp
    m_i = tl.zeros((BLOCK_M,), dtype=tl.float32) - float("inf")
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    hi = N_CTX
    if CAUSAL:
        hi = tl.minimum((start_m + 1) * BLOCK_M, N_CTX)
    for start_n in range(0, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_mask = offs_n[:, None] < N_CTX
        k = tl.load(
            k_ptr + base + offs_n[:, None] * HEAD_DIM + offs_d[None, :], mask=kv_mask, other=0.0
        )
        v = tl.load(
            v_ptr + base + offs_n[:, None] * HEAD_DIM + offs_d[None, :], mask=kv_mask, other=0.0
        )
        qk = tl.dot(q, tl.trans(k)) * qk_scale
        keep = offs_n[None, :] < N_CTX
        if CAUSAL:
            keep = keep & (offs_m[:, None] >= offs_n[None, :])
        if DOC_MASK:
            k_doc = tl.load(doc_ptr + off_b * N_CTX + offs_n, mask=offs_n < N_CTX, other=-2)
            keep = keep & (q_doc[:, None] == k_doc[None, :])
        qk = tl.where(keep, qk, -float("inf"))
        m_new = tl.maximum(m_i, tl.max(qk, axis=1))
        # Rows with every key masked so far keep m = -inf; shift by 0 to avoid inf - inf.
        m_safe = tl.where(m_new == -float("inf"), 0.0, m_new)
        p = tl.exp2(qk - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_safe[:, None]
    tl.store(
        o_ptr + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :],
        out.to(o_ptr.dtype.element_ty),
        mask=offs_m[:, None] < N_CTX,
    )


def _spec(name: str, t: str, d: int, causal: bool, doc: bool) -> dict[str, object]:
    consts = {"HEAD_DIM": d, "BLOCK_M": 128, "BLOCK_N": 64, "CAUSAL": causal, "DOC_MASK": doc}
    sig = {
        "q_ptr": f"*{t}",
        "k_ptr": f"*{t}",
        "v_ptr": f"*{t}",
        "o_ptr": f"*{t}",
        "doc_ptr": "*i32",
        "sm_scale": "fp32",
        "H": "i32",
        "N_CTX": "i32",
        **{k: "constexpr" for k in consts},
    }
    return {
        "name": name,
        "kernel": "attention_fwd_kernel",
        "signature": sig,
        "constexprs": consts,
        "divisibility": ["q_ptr", "k_ptr", "v_ptr", "o_ptr", "doc_ptr", "N_CTX"],
        "num_warps": 8 if d == 128 else 4,
        "num_stages": 3,
    }


COMPILE_SPECS: list[dict[str, object]] = [
    _spec(f"attention_{t}_d{d}_{m}", t, d, m == "causal", m == "docmask")
    for t in ("fp16", "bf16")
    for d in (64, 128)
    for m in ("full", "causal", "docmask")
]
