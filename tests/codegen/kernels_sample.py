"""Test kernels whose generated code a fake environment can change on purpose.

A "fake environment" is a wrapper script around the real Python that sets TW_TEST_* variables
(see conftest.py): TW_TEST_STAGES changes the software-pipelining depth of ``pipelined_kernel``'s
loop (a known TTGIR change), TW_TEST_BREAK makes ``breakable_kernel`` fail to compile.
Imports only triton and the stdlib, like every kernel file the compile worker loads.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

STAGES = tl.constexpr(int(os.environ.get("TW_TEST_STAGES", "3")))
BROKEN = tl.constexpr(os.environ.get("TW_TEST_BREAK", "") == "1")


@triton.jit
def scale_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) * 2.0, mask=mask)


@triton.jit
def pipelined_kernel(a_ptr, b_ptr, c_ptr, K, BLOCK: tl.constexpr):
    rm = tl.arange(0, BLOCK)
    rk = tl.arange(0, BLOCK)
    acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for k in tl.range(0, K, BLOCK, num_stages=STAGES):
        a = tl.load(a_ptr + rm[:, None] * K + (k + rk)[None, :])
        b = tl.load(b_ptr + (k + rk)[:, None] * BLOCK + rm[None, :])
        acc = tl.dot(a, b, acc)
    tl.store(c_ptr + rm[:, None] * BLOCK + rm[None, :], acc)


@triton.jit
def breakable_kernel(x_ptr, n, BLOCK: tl.constexpr):
    tl.static_assert(not BROKEN, "broken on purpose by TW_TEST_BREAK")
    offs = tl.arange(0, BLOCK)
    tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=offs < n) + 1.0, mask=offs < n)


COMPILE_SPECS = [
    {
        "name": "scale_fp32",
        "kernel": "scale_kernel",
        "signature": {"x_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"},
        "constexprs": {"BLOCK": 256},
        "divisibility": ["x_ptr", "out_ptr"],
        "num_warps": 4,
    },
    {
        "name": "pipelined_fp16",
        "kernel": "pipelined_kernel",
        "signature": {
            "a_ptr": "*fp16",
            "b_ptr": "*fp16",
            "c_ptr": "*fp32",
            "K": "i32",
            "BLOCK": "constexpr",
        },
        "constexprs": {"BLOCK": 64},
        "divisibility": ["a_ptr", "b_ptr", "c_ptr", "K"],
        "num_warps": 4,
        "num_stages": 3,
    },
    {
        "name": "breakable_fp32",
        "kernel": "breakable_kernel",
        "signature": {"x_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"},
        "constexprs": {"BLOCK": 128},
        "num_warps": 4,
    },
]
