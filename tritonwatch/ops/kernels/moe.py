"""Grouped GEMM for mixture-of-experts with top-k routing (vLLM ``fused_moe`` style).

Imports only ``triton``, ``triton.language`` and the stdlib, so the blast-radius compile worker
can load this file by path in a torch-less environment (Triton 3.6-3.9).

Routing is prepared on the host: the T*topk (token, slot) pairs are sorted by expert and each
expert's list is padded to a multiple of BLOCK_M with the sentinel ``T*topk``. Program ``pid_m``
handles one BLOCK_M chunk of one expert (``block_expert[pid_m]``); rows gather ``x[pair // topk]``
and write ``out[pair] = weight[pair] * x[token] @ w[expert]``.
``COMPILE_SPECS`` uses the shape documented in ``matmul.py``.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def moe_grouped_gemm_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    sorted_pairs_ptr,
    block_expert_ptr,
    topk_weight_ptr,
    N,
    K,
    num_pairs,
    TOPK: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    expert = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    pairs = tl.load(sorted_pairs_ptr + pid_m * BLOCK_M + tl.arange(0, BLOCK_M))
    valid = pairs < num_pairs
    tokens = pairs // TOPK
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    w_base = w_ptr + expert * K * N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + offs_k
        a = tl.load(
            x_ptr + tokens[:, None].to(tl.int64) * K + kk[None, :],
            mask=valid[:, None] & (kk[None, :] < K),
            other=0.0,
        )
        b = tl.load(
            w_base + kk[:, None] * N + offs_n[None, :],
            mask=(kk[:, None] < K) & (offs_n[None, :] < N),
            other=0.0,
        )
        acc = tl.dot(a, b, acc)
    gate = tl.load(topk_weight_ptr + pairs, mask=valid, other=0.0).to(tl.float32)
    acc = acc * gate[:, None]
    tl.store(
        out_ptr + pairs[:, None].to(tl.int64) * N + offs_n[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=valid[:, None] & (offs_n[None, :] < N),
    )


COMPILE_SPECS: list[dict[str, object]] = []
for _t in ("fp16", "bf16"):
    for _k in (1, 2):
        _c = {"TOPK": _k, "BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64}
        COMPILE_SPECS.append(
            {
                "name": f"moe_grouped_gemm_{_t}_top{_k}",
                "kernel": "moe_grouped_gemm_kernel",
                "signature": {
                    "x_ptr": f"*{_t}",
                    "w_ptr": f"*{_t}",
                    "out_ptr": f"*{_t}",
                    "sorted_pairs_ptr": "*i32",
                    "block_expert_ptr": "*i32",
                    "topk_weight_ptr": "*fp32",
                    "N": "i32",
                    "K": "i32",
                    "num_pairs": "i32",
                    **{k: "constexpr" for k in _c},
                },
                "constexprs": _c,
                "divisibility": ["x_ptr", "w_ptr", "out_ptr", "sorted_pairs_ptr", "N", "K"],
                "num_warps": 4,
                "num_stages": 3,
            }
        )
