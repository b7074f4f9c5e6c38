"""Helpers shared by the built-in operator families: dtypes, seeded inputs, availability rules.

Worker side: imports only the stdlib, torch and triton.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import triton
import triton.language as tl

from ..bench.spec import Case, DeviceInfo, Operator, Prepared, Provider, Shape

BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8e4m3": 1}
FLOAT_DTYPES = ("fp32", "fp16", "bf16")
INTERPRETER_BF16_NOTE = (
    "interpreter: bf16 tl.dot is computed in fp32 (numpy has no bf16; "
    "the interpreter's bf16 dot is wrong), output rounded to bf16"
)


def torch_dtype(name: str, device: str = "cuda") -> torch.dtype:
    if name == "fp8e4m3":
        # gfx942 (MI300) implements the fnuz flavour of e4m3.
        if torch.version.hip is not None and "gfx942" in _hip_arch():
            return torch.float8_e4m3fnuz
        return torch.float8_e4m3fn
    # tf32 data is fp32 in memory; only the matrix units round it.
    return {
        "fp32": torch.float32,
        "tf32": torch.float32,
        "fp16": torch.float16,
        "bf16": torch.bfloat16,
    }[name]


def _hip_arch() -> str:
    try:
        return str(torch.cuda.get_device_properties(0).gcnArchName)
    except Exception:  # noqa: BLE001 - no device: not gfx942
        return ""


def generator(shape: Shape, dtype: str, device: str, seed: int, salt: str) -> torch.Generator:
    """A generator seeded from the run seed and the case, so inputs never depend on case order."""
    key = f"{salt}|{sorted(shape.items())}|{dtype}|{seed}".encode()
    g = torch.Generator(device=device)
    g.manual_seed(zlib.crc32(key))
    return g


def randn(
    size: tuple[int, ...], dtype: str, device: str, g: torch.Generator, scale: float = 1.0
) -> torch.Tensor:
    x = torch.randn(size, generator=g, device=device, dtype=torch.float32)
    if scale != 1.0:
        x.mul_(scale)
    return x.to(torch_dtype(dtype, device))


def ref_dtype(device: str) -> torch.dtype:
    """Reference precision: float64 on the CPU; float32 on GPUs (float64 is too slow there)."""
    return torch.float64 if device == "cpu" else torch.float32


def sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


def needs_gpu_or_interpreter(device: DeviceInfo, dtype: str) -> str | None:
    if dtype == "fp8e4m3" and not device.has_fp8:
        return "fp8 e4m3 needs a GPU with fp8 (sm89+, gfx942, gfx950)"
    return None


def torch_available(device: DeviceInfo, dtype: str) -> str | None:
    if dtype == "fp8e4m3" and not device.has_fp8:
        return "fp8 e4m3 needs a GPU with fp8 (sm89+, gfx942, gfx950)"
    return None


def inductor_available(device: DeviceInfo, dtype: str) -> str | None:
    if dtype == "fp8e4m3":
        return "inductor provider is not defined for fp8 here"
    if device.kind == "rocm":
        return None
    try:
        import torch._inductor  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return f"torch.compile unavailable: {e}"
    return None


def tf32_unavailable(device: DeviceInfo) -> str | None:
    """Why TF32 matmuls cannot run here (None if they can): they need tensor cores with TF32."""
    if device.kind == "cuda" and device.capability is not None and device.capability >= (8, 0):
        return None
    if device.kind == "rocm" and device.arch == "gfx942":
        return None
    return "tf32 needs TF32 matrix units (NVIDIA sm80+ or gfx942); fp32 runs true fp32 here"


def set_fp32_matmul(*, tf32: bool) -> None:
    """Make torch's fp32 matmuls TF32 or true fp32 (the worker restores the flag per case)."""
    torch.backends.cuda.matmul.allow_tf32 = tf32


@contextlib.contextmanager
def fp32_matmul(*, tf32: bool) -> Iterator[None]:
    """torch's fp32 matmul precision set for a block, restored after it."""
    before = torch.backends.cuda.matmul.allow_tf32
    set_fp32_matmul(tf32=tf32)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def block_pointers_removed() -> bool:
    """Triton 3.9 keeps ``tl.make_block_ptr`` only as a stub that raises."""
    fn = getattr(tl, "make_block_ptr", None)
    return fn is None or "removed" in (getattr(fn, "__doc__", "") or "")


def autotune(kernel: Any, configs: list[triton.Config], key: list[str]) -> Any:
    return triton.autotune(configs=configs, key=key)(kernel)


def config_dict(cfg: Any) -> dict[str, Any]:
    """An autotune ``triton.Config`` as plain JSON."""
    if cfg is None:
        return {}
    return {
        **{k: v for k, v in cfg.kwargs.items()},
        "num_warps": cfg.num_warps,
        "num_stages": cfg.num_stages,
    }


def torch_provider(
    op: str,
    fn: Callable[[dict[str, Any], Case], Callable[[], Any]],
    description: str,
    dtypes: tuple[str, ...] | None = None,
) -> Provider:
    def prepare(inputs: Any, case: Case, device: DeviceInfo) -> Prepared:
        return Prepared(fn(inputs, case))

    return Provider(
        op,
        "torch",
        prepare,
        kind="torch",
        dtypes=dtypes,
        available=torch_available,
        description=description,
    )


def inductor_provider(
    op: str,
    fn: Callable[..., Any],
    args: Callable[[dict[str, Any], Case], tuple[Any, ...]],
    description: str,
    dtypes: tuple[str, ...] | None = FLOAT_DTYPES,
) -> Provider:
    def prepare(inputs: Any, case: Case, device: DeviceInfo) -> Prepared:
        # A fresh compile per case: dynamo caches per code object and silently falls back to
        # eager past its recompile limit, which would label eager timings as inductor.
        torch._dynamo.reset()
        f = torch.compile(fn, dynamic=False)
        a = args(inputs, case)
        return Prepared(lambda: f(*a), config=lambda: {"mode": "default", "dynamic": False})

    return Provider(
        op,
        "inductor",
        prepare,
        kind="inductor",
        dtypes=dtypes,
        available=inductor_available,
        description=description,
    )


def operator(**kw: Any) -> Operator:
    return Operator(**kw)
