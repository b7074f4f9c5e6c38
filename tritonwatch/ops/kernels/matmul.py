"""Matmul kernels in each Triton programming model: pointers, block pointers, device-side and
host-side tensor descriptors, and a persistent kernel.

This file imports only ``triton``, ``triton.language`` and the stdlib so the blast-radius compile
worker can load it by file path in a torch-less environment (Triton 3.6-3.9).

``COMPILE_SPECS`` lists representative specialisations as plain dicts::

    {"name": stable spec name, "kernel": jit function name in this file,
     "signature": {arg: "*fp16" | "i32" | "fp32" | "constexpr" | "nvTmaDesc"-free type string},
     "constexprs": {arg: value}, "num_warps": int, "num_stages": int,
     "divisibility": [args whose value is a multiple of 16 (pointers: 16-byte aligned)]}

A spec with ``"requires": "fp8"`` only applies to targets with fp8 (sm89+, gfx942, gfx950);
compiling it for sm80 fails by design. A spec with ``"triton_before": "3.9"`` needs an older
Triton (block pointers were removed in 3.9).

``DOT_PRECISION`` is ``tl.dot``'s ``input_precision``. It matters for fp32 inputs only: ``"tf32"``
rounds them to TF32 on the tensor cores, ``"ieee"`` computes true fp32. ``None`` (the default, so
the specs compile as before) is the backend's default: tf32 on NVIDIA, ieee on AMD.

Host-side descriptor kernels take ``tensordesc<fp16[64, 64]>``-style types, written here as
``"tensordesc<fp16[BM,BK]>"`` with the block shape spelled out.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _tile_ids(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    # Grouped ordering keeps a band of A rows in L2 while sweeping N.
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m
    return pid_m, pid_n


@triton.jit
def matmul_pointers_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_cn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    DOT_PRECISION: tl.constexpr = None,
):
    pid = tl.program_id(0)
    pid_m, pid_n = _tile_ids(pid, M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_left = K - k * BLOCK_K
        a = tl.load(a_ptrs, mask=(offs_m[:, None] < M) & (offs_k[None, :] < k_left), other=0.0)
        b = tl.load(b_ptrs, mask=(offs_k[:, None] < k_left) & (offs_n[None, :] < N), other=0.0)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    c = acc.to(c_ptr.dtype.element_ty)
    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    tl.store(c_ptrs, c, mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


@triton.jit
def matmul_block_ptr_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_cn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    DOT_PRECISION: tl.constexpr = None,
):
    pid = tl.program_id(0)
    pid_m, pid_n = _tile_ids(pid, M, N, BLOCK_M, BLOCK_N, GROUP_M)
    a_blk = tl.make_block_ptr(
        a_ptr, (M, K), (stride_am, stride_ak), (pid_m * BLOCK_M, 0), (BLOCK_M, BLOCK_K), (1, 0)
    )
    b_blk = tl.make_block_ptr(
        b_ptr, (K, N), (stride_bk, stride_bn), (0, pid_n * BLOCK_N), (BLOCK_K, BLOCK_N), (1, 0)
    )
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for _ in range(0, tl.cdiv(K, BLOCK_K)):
        a = tl.load(a_blk, boundary_check=(0, 1), padding_option="zero")
        b = tl.load(b_blk, boundary_check=(0, 1), padding_option="zero")
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
        a_blk = tl.advance(a_blk, (0, BLOCK_K))
        b_blk = tl.advance(b_blk, (BLOCK_K, 0))
    c_blk = tl.make_block_ptr(
        c_ptr,
        (M, N),
        (stride_cm, stride_cn),
        (pid_m * BLOCK_M, pid_n * BLOCK_N),
        (BLOCK_M, BLOCK_N),
        (1, 0),
    )
    tl.store(c_blk, acc.to(c_ptr.dtype.element_ty), boundary_check=(0, 1))


@triton.jit
def matmul_device_desc_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    DOT_PRECISION: tl.constexpr = None,
):
    # Row-major A [M, K], B [K, N], C [M, N]; descriptors built on the device (needs
    # triton.set_allocator for their scratch on GPUs that use TMA).
    pid = tl.program_id(0)
    pid_m, pid_n = _tile_ids(pid, M, N, BLOCK_M, BLOCK_N, GROUP_M)
    a_desc = tl.make_tensor_descriptor(
        a_ptr, shape=[M, K], strides=[K, 1], block_shape=[BLOCK_M, BLOCK_K]
    )
    b_desc = tl.make_tensor_descriptor(
        b_ptr, shape=[K, N], strides=[N, 1], block_shape=[BLOCK_K, BLOCK_N]
    )
    c_desc = tl.make_tensor_descriptor(
        c_ptr, shape=[M, N], strides=[N, 1], block_shape=[BLOCK_M, BLOCK_N]
    )
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        a = a_desc.load([pid_m * BLOCK_M, k * BLOCK_K])
        b = b_desc.load([k * BLOCK_K, pid_n * BLOCK_N])
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
    c_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], acc.to(c_desc.dtype))


@triton.jit
def matmul_host_desc_kernel(
    a_desc,
    b_desc,
    c_desc,
    M,
    N,
    K,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    DOT_PRECISION: tl.constexpr = None,
):
    # Descriptors made on the host with triton.tools.tensor_descriptor.TensorDescriptor.
    pid = tl.program_id(0)
    pid_m, pid_n = _tile_ids(pid, M, N, BLOCK_M, BLOCK_N, GROUP_M)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        a = a_desc.load([pid_m * BLOCK_M, k * BLOCK_K])
        b = b_desc.load([k * BLOCK_K, pid_n * BLOCK_N])
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
    c_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], acc.to(c_desc.dtype))


@triton.jit
def matmul_persistent_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_cn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    NUM_SMS: tl.constexpr,
    DOT_PRECISION: tl.constexpr = None,
):
    # One program per SM walks the output tiles with a stride of NUM_SMS.
    start_pid = tl.program_id(0)
    num_tiles = tl.cdiv(M, BLOCK_M) * tl.cdiv(N, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    for tile_id in range(start_pid, num_tiles, NUM_SMS):
        pid_m, pid_n = _tile_ids(tile_id, M, N, BLOCK_M, BLOCK_N, GROUP_M)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            kk = k * BLOCK_K + offs_k
            a = tl.load(
                a_ptr + offs_m[:, None] * stride_am + kk[None, :] * stride_ak,
                mask=(offs_m[:, None] < M) & (kk[None, :] < K),
                other=0.0,
            )
            b = tl.load(
                b_ptr + kk[:, None] * stride_bk + offs_n[None, :] * stride_bn,
                mask=(kk[:, None] < K) & (offs_n[None, :] < N),
                other=0.0,
            )
            acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
        c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
        tl.store(
            c_ptrs,
            acc.to(c_ptr.dtype.element_ty),
            mask=(offs_m[:, None] < M) & (offs_n[None, :] < N),
        )


_PTR_ARGS = {
    "a_ptr": "*{t}", "b_ptr": "*{t}", "c_ptr": "*{o}", "M": "i32", "N": "i32", "K": "i32",
    "stride_am": "i32", "stride_ak": "i32", "stride_bk": "i32", "stride_bn": "i32",
    "stride_cm": "i32", "stride_cn": "i32",
}  # fmt: skip
_BLOCKS = {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8}


def _spec(
    name: str,
    kernel: str,
    t: str,
    o: str,
    args: dict[str, str],
    extra: dict[str, int],
    num_warps: int = 8,
    num_stages: int = 3,
) -> dict[str, object]:
    fp8 = t.startswith("fp8")
    sig = {k: v.format(t=t, o=o) for k, v in args.items()}
    # DOT_PRECISION None: the backend's default, as the suite launches fp16/bf16/fp8.
    consts: dict[str, object] = {**_BLOCKS, **extra, "DOT_PRECISION": None}
    if fp8:
        consts["BLOCK_K"] = 128  # and B is K-major (column-major), as the fp8 providers pass it
    unit = (
        ("stride_ak", "stride_bk", "stride_cn") if fp8 else ("stride_ak", "stride_bn", "stride_cn")
    )
    for k in unit:
        if k in sig:
            consts[k] = 1
    for k in consts:
        sig[k] = "constexpr"
    spec: dict[str, object] = {
        "name": name,
        "kernel": kernel,
        "signature": sig,
        "constexprs": consts,
        "divisibility": [
            k
            for k, v in sig.items()
            if v != "constexpr" and (v.startswith("*") or k[0] in "MNK" or k.startswith("stride"))
        ],
        "num_warps": num_warps,
        "num_stages": num_stages,
    }
    if fp8:
        spec["requires"] = "fp8"
    return spec


COMPILE_SPECS: list[dict[str, object]] = []
for _t, _o in (("fp16", "fp16"), ("bf16", "bf16"), ("fp8e4nv", "fp16")):
    COMPILE_SPECS.append(
        _spec(f"matmul_pointers_{_t}", "matmul_pointers_kernel", _t, _o, _PTR_ARGS, {})
    )
    COMPILE_SPECS.append(
        _spec(
            f"matmul_persistent_{_t}",
            "matmul_persistent_kernel",
            _t,
            _o,
            _PTR_ARGS,
            {"NUM_SMS": 132},
        )
    )
# Triton 3.9 removed block pointers: this spec compiles with 3.6-3.8 only.
COMPILE_SPECS.append(
    {
        **_spec("matmul_block_ptr_fp16", "matmul_block_ptr_kernel", "fp16", "fp16", _PTR_ARGS, {}),
        "triton_before": "3.9",
    }
)
COMPILE_SPECS.append(
    _spec(
        "matmul_device_desc_fp16",
        "matmul_device_desc_kernel",
        "fp16",
        "fp16",
        {"a_ptr": "*{t}", "b_ptr": "*{t}", "c_ptr": "*{o}", "M": "i32", "N": "i32", "K": "i32"},
        {},
    )
)
COMPILE_SPECS.append(
    _spec(
        "matmul_host_desc_fp16",
        "matmul_host_desc_kernel",
        "fp16",
        "fp16",
        {
            "a_desc": "tensordesc<fp16[128,64]>",
            "b_desc": "tensordesc<fp16[64,128]>",
            "c_desc": "tensordesc<fp16[128,128]>",
            "M": "i32",
            "N": "i32",
            "K": "i32",
        },
        {},
    )
)
