"""Bandwidth-bound kernels: vector add, row softmax, layer norm and RMS norm (forward).

Imports only ``triton``, ``triton.language`` and the stdlib, so the blast-radius compile worker
can load this file by path in a torch-less environment (Triton 3.6-3.9).

``COMPILE_SPECS``: plain dicts ``{"name", "kernel", "signature", "constexprs", "divisibility",
"num_warps", "num_stages"}``; ``signature`` maps every argument to a Triton type string
(``"*fp16"``, ``"i32"``, ``"fp32"``) or ``"constexpr"`` (its value is in ``constexprs``).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n_elements
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.load(y_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, x + y, mask=mask)


@triton.jit
def softmax_kernel(x_ptr, y_ptr, n_cols, stride_x, stride_y, BLOCK_N: tl.constexpr):
    # One program per row; the whole row fits in one block (fused: one read, one write).
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < n_cols
    x = tl.load(x_ptr + row.to(tl.int64) * stride_x + cols, mask=mask, other=-float("inf"))
    x = x.to(tl.float32)
    x = x - tl.max(x, axis=0)
    num = tl.exp(x)
    y = num / tl.sum(num, axis=0)
    tl.store(y_ptr + row.to(tl.int64) * stride_y + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def layernorm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, n_cols, stride, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    base = row.to(tl.int64) * stride
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for off in range(0, n_cols, BLOCK_N):
        cols = off + tl.arange(0, BLOCK_N)
        acc += tl.load(x_ptr + base + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    mean = tl.sum(acc, axis=0) / n_cols
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for off in range(0, n_cols, BLOCK_N):
        cols = off + tl.arange(0, BLOCK_N)
        x = tl.load(x_ptr + base + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
        x = tl.where(cols < n_cols, x - mean, 0.0)
        acc += x * x
    rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / n_cols + eps)
    for off in range(0, n_cols, BLOCK_N):
        cols = off + tl.arange(0, BLOCK_N)
        mask = cols < n_cols
        x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + cols, mask=mask).to(tl.float32)
        b = tl.load(b_ptr + cols, mask=mask).to(tl.float32)
        y = (x - mean) * rstd * w + b
        tl.store(y_ptr + base + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def rmsnorm_kernel(x_ptr, w_ptr, y_ptr, n_cols, stride, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    base = row.to(tl.int64) * stride
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for off in range(0, n_cols, BLOCK_N):
        cols = off + tl.arange(0, BLOCK_N)
        x = tl.load(x_ptr + base + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
        acc += x * x
    rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / n_cols + eps)
    for off in range(0, n_cols, BLOCK_N):
        cols = off + tl.arange(0, BLOCK_N)
        mask = cols < n_cols
        x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + cols, mask=mask).to(tl.float32)
        tl.store(y_ptr + base + cols, (x * rstd * w).to(y_ptr.dtype.element_ty), mask=mask)


def _spec(
    name: str, kernel: str, sig: dict[str, str], consts: dict[str, object], num_warps: int = 4
) -> dict[str, object]:
    sig = {**sig, **{k: "constexpr" for k in consts}}
    return {
        "name": name,
        "kernel": kernel,
        "signature": sig,
        "constexprs": consts,
        "divisibility": [k for k, v in sig.items() if v.startswith("*")],
        "num_warps": num_warps,
        "num_stages": 1,
    }


COMPILE_SPECS: list[dict[str, object]] = []
for _t in ("fp32", "fp16", "bf16"):
    COMPILE_SPECS += [
        _spec(
            f"add_{_t}",
            "add_kernel",
            {"x_ptr": f"*{_t}", "y_ptr": f"*{_t}", "out_ptr": f"*{_t}", "n_elements": "i32"},
            {"BLOCK_SIZE": 1024},
        ),
        _spec(
            f"softmax_{_t}_4096",
            "softmax_kernel",
            {
                "x_ptr": f"*{_t}",
                "y_ptr": f"*{_t}",
                "n_cols": "i32",
                "stride_x": "i32",
                "stride_y": "i32",
            },
            {"BLOCK_N": 4096},
            num_warps=8,
        ),
        _spec(
            f"layernorm_{_t}",
            "layernorm_kernel",
            {
                "x_ptr": f"*{_t}",
                "w_ptr": f"*{_t}",
                "b_ptr": f"*{_t}",
                "y_ptr": f"*{_t}",
                "n_cols": "i32",
                "stride": "i32",
                "eps": "fp32",
            },
            {"BLOCK_N": 4096},
            num_warps=8,
        ),
        _spec(
            f"rmsnorm_{_t}",
            "rmsnorm_kernel",
            {
                "x_ptr": f"*{_t}",
                "w_ptr": f"*{_t}",
                "y_ptr": f"*{_t}",
                "n_cols": "i32",
                "stride": "i32",
                "eps": "fp32",
            },
            {"BLOCK_N": 4096},
            num_warps=8,
        ),
    ]
