"""Kernel for the canonicalisation tests; ``kernels_names_renamed.py`` has the same code with
other local variable names (Triton names SSA values after them). Imports only triton."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def rowsum(x_ptr, out_ptr, stride, BLOCK: tl.constexpr, SCALE: tl.constexpr):
    rows = tl.arange(0, BLOCK)
    cols = tl.arange(0, BLOCK)
    tile = tl.load(x_ptr + rows[:, None] * stride + cols[None, :])
    acc = tl.sum(tl.trans(tile) * SCALE, axis=1)
    acc = tl.where(acc > 0.5, acc + 1.0, 0.25)
    tl.store(out_ptr + rows, acc, mask=rows < 60)
