"""``kernels_names.py``'s kernel with other local variable names: the same code."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def rowsum(x_ptr, out_ptr, stride, BLOCK: tl.constexpr, SCALE: tl.constexpr):
    r = tl.arange(0, BLOCK)
    c = tl.arange(0, BLOCK)
    block = tl.load(x_ptr + r[:, None] * stride + c[None, :])
    total = tl.sum(tl.trans(block) * SCALE, axis=1)
    total = tl.where(total > 0.5, total + 1.0, 0.25)
    tl.store(out_ptr + r, total, mask=r < 60)
