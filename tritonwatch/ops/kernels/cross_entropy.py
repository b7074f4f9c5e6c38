"""Cross-entropy forward: per-row loss over a large vocabulary with an online log-sum-exp.

Imports only ``triton``, ``triton.language`` and the stdlib, so the blast-radius compile worker
can load this file by path in a torch-less environment (Triton 3.6-3.9).
``COMPILE_SPECS`` uses the shape documented in ``matmul.py``.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def cross_entropy_fwd_kernel(
    logits_ptr, target_ptr, loss_ptr, n_cols, stride, BLOCK_N: tl.constexpr
):
    row = tl.program_id(0)
    base = logits_ptr + row.to(tl.int64) * stride
    m = tl.zeros((BLOCK_N,), dtype=tl.float32) - float("inf")
    s = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for off in range(0, n_cols, BLOCK_N):
        cols = off + tl.arange(0, BLOCK_N)
        x = tl.load(base + cols, mask=cols < n_cols, other=-float("inf")).to(tl.float32)
        m_new = tl.maximum(m, x)
        m_safe = tl.where(m_new == -float("inf"), 0.0, m_new)
        s = s * tl.exp(m - m_safe) + tl.exp(x - m_safe)
        m = m_new
    m_row = tl.max(m, axis=0)
    m_fin = tl.where(m == -float("inf"), m_row, m)
    total = tl.sum(s * tl.exp(m_fin - m_row), axis=0)
    target = tl.load(target_ptr + row)
    x_t = tl.load(base + target).to(tl.float32)
    tl.store(loss_ptr + row, tl.log(total) + m_row - x_t)


COMPILE_SPECS: list[dict[str, object]] = [
    {
        "name": f"cross_entropy_fwd_{t}",
        "kernel": "cross_entropy_fwd_kernel",
        "signature": {
            "logits_ptr": f"*{t}",
            "target_ptr": "*i64",
            "loss_ptr": "*fp32",
            "n_cols": "i32",
            "stride": "i32",
            "BLOCK_N": "constexpr",
        },
        "constexprs": {"BLOCK_N": 4096},
        "divisibility": ["logits_ptr", "target_ptr", "loss_ptr", "n_cols", "stride"],
        "num_warps": 8,
        "num_stages": 1,
    }
    for t in ("fp32", "fp16", "bf16")
]
