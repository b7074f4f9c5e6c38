"""The device's achievable ceilings, measured by ``tritonwatch calibrate`` in a worker process
(``python -m tritonwatch.bench.worker --calibrate``): what % of peak is reckoned against when
the published peaks would flatter or shame a kernel."""

from __future__ import annotations

from typing import Any


def calibrate(budget_ms: float) -> dict[str, Any]:
    """Achievable copy bandwidth (GB/s) and matmul TFLOP/s per dtype on this GPU.

    Bandwidth: a 1 GiB device-to-device copy (read + write counted). Compute: 8192^3 matmuls
    through torch (cuBLAS/hipBLASLt), fp8 through ``torch._scaled_mm`` where the GPU has fp8.
    """
    import torch

    from .environment import probe_device
    from .timing import EventTimer, cache_bytes, measure

    dev = probe_device("cuda")
    l2 = cache_bytes(torch.cuda.get_device_properties(0))
    timer = EventTimer(l2)
    src = torch.empty(1 << 28, dtype=torch.float32, device="cuda").normal_()
    dst = torch.empty_like(src)

    def copy(s: Any = src, d: Any = dst) -> Any:
        return d.copy_(s)

    m = measure(copy, timer, budget_ms=budget_ms, target_ci=0.005)
    from .timing import median_ci

    med = median_ci(m.samples)[0]
    peaks: dict[str, Any] = {
        "bandwidth_gbps": 2 * src.numel() * 4 / (med / 1e3) / 1e9,
        "tflops": {},
    }
    del src, dst
    n = 8192
    kinds = (
        ("fp16", torch.float16, False),
        ("bf16", torch.bfloat16, False),
        ("fp32", torch.float32, False),  # true fp32
        ("tf32", torch.float32, True),  # fp32 data on the TF32 matrix units
    )
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    for name, dt, tf32 in kinds:
        a = torch.randn(n, n, device="cuda").to(dt)
        b = torch.randn(n, n, device="cuda").to(dt)

        def mm_fn(a: Any = a, b: Any = b) -> Any:
            return a @ b

        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            mm = measure(mm_fn, timer, budget_ms=budget_ms, target_ci=0.005)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32_before
        peaks["tflops"][name] = 2 * n**3 / (median_ci(mm.samples)[0] / 1e3) / 1e12
    if dev.has_fp8:
        f8 = torch.float8_e4m3fnuz if dev.arch == "gfx942" else torch.float8_e4m3fn
        a = torch.randn(n, n, device="cuda").to(f8)
        b = torch.randn(n, n, device="cuda").to(f8).t()
        one = torch.ones((), device="cuda")
        fast = dev.kind == "cuda"  # the fastest fp8 rate: no promotion of the accumulator
        mm = measure(
            lambda: torch._scaled_mm(
                a, b, scale_a=one, scale_b=one, out_dtype=torch.float16, use_fast_accum=fast
            ),
            timer,
            budget_ms=budget_ms,
            target_ci=0.005,
        )
        peaks["tflops"]["fp8e4m3"] = 2 * n**3 / (median_ci(mm.samples)[0] / 1e3) / 1e12
    peaks["method"] = "1 GiB copy; 8192^3 torch matmul (medians of event-timed samples)"
    return peaks
