"""The measuring child process: runs cases, prints one JSON record per line on its stdout.

Started by the runner as ``python -m tritonwatch.bench.worker --cases FILE --device cpu ...``.
Protocol (one JSON object per line): ``{"event": "ready", "fingerprint": ...}`` once, then per
case ``{"event": "start", "index": i}`` and ``{"event": "result", "index": i, ...}``, then
``{"event": "done"}``. Anything the measured code prints goes to stderr, never into the protocol.
Imports only the stdlib, numpy, torch and triton: no database or web code.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import IO, Any

from .spec import Case, DeviceInfo, load_cases, load_timer_hints

_TRITON_KINDS = ("triton",)


def _emit(out: IO[str], record: dict[str, Any]) -> None:
    out.write(json.dumps(record, default=str) + "\n")
    out.flush()


def _error_size(out: Any, ref: Any) -> tuple[float, str | None]:
    """Largest |out - ref| relative to max|ref| (inf if shapes differ or NaNs appear)."""
    import torch

    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        return math.inf, f"provider returned {type(out).__name__}, not a tensor"
    if tuple(out.shape) != tuple(ref.shape):
        return math.inf, f"output shape {tuple(out.shape)} != reference {tuple(ref.shape)}"
    o = out.to(ref.dtype)
    if not bool(torch.isfinite(o).all()):
        return math.inf, "output has NaN or inf"
    scale = float(ref.abs().max()) or 1.0
    return float((o - ref).abs().max()) / scale, None


class Worker:
    """Runs cases one after another in this process."""

    def __init__(
        self,
        device: DeviceInfo,
        registry: Any,
        budget_ms: float,
        target_ci: float,
        seed: int,
        gpu: int = 0,
    ) -> None:
        self.device = device
        self.registry = registry
        self.budget_ms = budget_ms
        self.target_ci = target_ci
        self.seed = seed
        self.gpu = gpu
        self._event_timer: Any = None
        self.cpu_threads: int | None = None
        # case id -> the timer its results were measured with before (sticky timer choice)
        self.timer_hints: dict[str, str] = {}
        self.min_time_ms = 0.0  # GPU: sample at least this long (see settings.min_time_ms)
        self.dev = "cpu" if not device.is_gpu else "cuda"

    def _sync(self) -> None:
        if self.device.is_gpu:
            import torch

            torch.cuda.synchronize()

    def _gpu_state(self) -> dict[str, Any]:
        if not self.device.is_gpu:
            return {}
        from .environment import gpu_state

        return gpu_state(self.gpu)

    def _timer(self, fn: Any, previous: str | None) -> tuple[Any, str | None]:
        """The timer for one case (see :func:`timing.choose_timer`) and a note if it fell back."""
        from .timing import EventTimer, GraphTimer, WallTimer, cache_bytes, choose_timer

        if not self.device.is_gpu:
            return WallTimer(), None
        import statistics

        import torch

        l2 = cache_bytes(torch.cuda.get_device_properties(0))
        if self._event_timer is None:
            self._event_timer = EventTimer(l2)  # one flush buffer and event pool per worker
        device_ms = statistics.median(self._event_timer.sample(fn, 10))
        if choose_timer(device_ms, previous) == "event":
            return self._event_timer, None
        try:
            return GraphTimer(fn, l2, device_ms, events=self._event_timer), None
        except Exception as e:  # noqa: BLE001 - capture can fail (host syncs); events still work
            return self._event_timer, (
                f"graph capture failed ({type(e).__name__}: {str(e)[:120]}); used events"
            )

    def run_case(self, case: Case) -> dict[str, Any]:
        op = self.registry.operator(case.operator)
        prov = self.registry.provider(case.operator, case.provider_key)
        rec: dict[str, Any] = {
            "case": case.to_json(),
            "flops": op.flops(case.shape),
            "bytes": op.bytes(case.shape, case.dtype),
        }
        reason = self.registry.why_not(case, self.device)
        if reason:
            return {**rec, "status": "skipped", "error": reason}
        extra: dict[str, Any] = (
            {"gpu": self.gpu} if self.device.is_gpu else {"cpu_threads": self.cpu_threads}
        )
        state_before = self._gpu_state()
        inputs = op.make_inputs(case.shape, case.dtype, self.dev, self.seed)
        prepared = prov.prepare(inputs, case, self.device)
        if prepared.note:
            extra["note"] = prepared.note
        t0 = time.perf_counter()
        out = prepared.fn()
        self._sync()
        extra["compile_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
        ref = op.reference(inputs, case.shape, case.dtype)
        err, why = _error_size(out, ref)
        tol = op.tolerance.get(case.dtype, 1e-2)
        extra["max_error"] = err if math.isfinite(err) else None
        extra["tolerance"] = tol
        extra["config"] = prepared.config()
        del out, ref
        if why or err > tol:
            msg = (
                why or f"max error {err:.3g} (relative to max|reference|) exceeds tolerance {tol:g}"
            )
            return {**rec, "status": "incorrect", "correct": False, "error": msg, "extra": extra}
        if prov.kind in _TRITON_KINDS and self.device.interpreter:
            extra["timer"] = None
            return {
                **rec,
                "status": "skipped",
                "correct": True,
                "extra": extra,
                "error": f"not timed: Triton interpreter on CPU checks correctness only "
                f"(max error {err:.2g})",
            }
        # Warm up until steady: a few calls, or ~5% of the budget, whichever is longer.
        t0 = time.perf_counter()
        calls = 0
        while (
            calls < 3 or (time.perf_counter() - t0) * 1e3 < 0.05 * self.budget_ms and calls < 1000
        ):
            prepared.fn()
            calls += 1
            self._sync()
        timer, note = self._timer(prepared.fn, self.timer_hints.get(case.id))
        if note:
            extra["timer_note"] = note
        from .environment import GpuSampler, throttled
        from .timing import measure

        if self.device.is_gpu:
            events = getattr(timer, "events", timer)
            misses = events.hold_misses
            with GpuSampler(self.gpu) as sampler:
                m = measure(
                    prepared.fn,
                    timer,
                    budget_ms=self.budget_ms,
                    target_ci=self.target_ci,
                    min_time_ms=self.min_time_ms,
                )
            during = sampler.summary()
            extra["hold_misses"] = events.hold_misses - misses  # batches retaken (launch gaps)
        else:
            m = measure(prepared.fn, timer, budget_ms=self.budget_ms, target_ci=self.target_ci)
            during = {}
        state_after = self._gpu_state()

        extra.update(
            {
                "timer": m.timer,
                "stop": m.stop,
                "ci_width": m.ci_width,
                "measure_ms": round(m.elapsed_ms, 3),
            }
        )
        if self.device.is_gpu:
            extra["gpu_state"] = {"before": state_before, "during": during, "after": state_after}
            extra["throttled"] = throttled(state_before, during, state_after)
        return {**rec, "status": "ok", "correct": True, "samples": m.samples, "extra": extra}

    def run(self, cases: Sequence[Case], out: IO[str]) -> None:
        flags = _torch_flags()
        for i, case in enumerate(cases):
            _emit(out, {"event": "start", "index": i, "id": case.id})
            sticky = False
            try:
                rec = self.run_case(case)
            except Exception as e:  # noqa: BLE001 - any failure is this case's error result
                rec = {"case": case.to_json(), "status": "error", "error": _describe(e)}
                sticky = _is_device_error(e)
                del e
                # A traceback keeps the failed case's tensors alive in a cycle; only then is a
                # full collection worth its cost (~0.5 s with torch and triton loaded).
                gc.collect()
                sticky = not self._recover() or sticky
            finally:
                _restore_torch_flags(flags)  # a provider's TF32 choice ends with its case
            _emit(out, {"event": "result", "index": i, **rec})
            if sticky and i + 1 < len(cases):
                # A CUDA error poisons the context for good: every later case here would fail.
                _emit(out, {"event": "restart", "reason": rec.get("error", "")[:300]})
                return
            if self.device.is_gpu:
                import torch

                torch.cuda.empty_cache()
        _emit(out, {"event": "done"})

    def _recover(self) -> bool:
        """Free the failed case's memory; False if the device is unusable (a sticky error)."""
        if self.device.is_gpu:
            import torch

            try:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001 - a sticky CUDA error: restart the worker
                return False
        return True


# Errors after which a CUDA/HIP context is unusable: the worker must be replaced.
_STICKY = (
    "illegal memory access",
    "illegal instruction",
    "misaligned address",
    "unspecified launch failure",
    "device-side assert",
    "an illegal",
    "cudaerrorlaunchfailure",
    "hiperrorlaunchfailure",
    "cuda error: unknown error",
)


def _is_device_error(e: BaseException) -> bool:
    text = f"{type(e).__name__}: {e}".lower()
    return any(s in text for s in _STICKY)


def _torch_flags() -> dict[str, Any]:
    """torch's global precision flags, which a provider may set for its case."""
    try:
        import torch
    except ImportError:
        return {}
    return {
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
    }


def _restore_torch_flags(flags: dict[str, Any]) -> None:
    if not flags:
        return
    import torch

    if torch.backends.cuda.matmul.allow_tf32 != flags["matmul_tf32"]:
        torch.backends.cuda.matmul.allow_tf32 = flags["matmul_tf32"]
    if torch.backends.cudnn.allow_tf32 != flags["cudnn_tf32"]:
        torch.backends.cudnn.allow_tf32 = flags["cudnn_tf32"]


def _describe(e: BaseException) -> str:
    kind = type(e).__name__
    if "OutOfMemory" in kind or "out of memory" in str(e).lower():
        return f"out of memory: {str(e).splitlines()[0][:300]}"
    tb = traceback.extract_tb(e.__traceback__)[-3:]
    where = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in reversed(tb))
    first = str(e).strip().splitlines()[0][:500] if str(e).strip() else ""
    return f"{kind}: {first} (at {where})"


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
    flags = _torch_flags()
    for name, dt, tf32 in kinds:
        a = torch.randn(n, n, device="cuda").to(dt)
        b = torch.randn(n, n, device="cuda").to(dt)

        def mm_fn(a: Any = a, b: Any = b) -> Any:
            return a @ b

        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            mm = measure(mm_fn, timer, budget_ms=budget_ms, target_ci=0.005)
        finally:
            _restore_torch_flags(flags)
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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tritonwatch.bench.worker")
    p.add_argument("--cases", required=True, help="JSON file with the cases to run, in order")
    p.add_argument("--device", choices=("cpu", "cuda"), required=True)
    p.add_argument("--gpu", type=int, default=0, help="physical GPU index (for NVML)")
    p.add_argument("--budget-ms", type=float, required=True)
    p.add_argument("--target-ci", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--plugin", action="append", default=[])
    p.add_argument("--calibrate", action="store_true", help="measure device peaks instead")
    p.add_argument("--cpu-threads", type=int, default=0, help="torch threads on CPU (0: default)")
    p.add_argument(
        "--min-time-ms", type=float, default=0.0, help="GPU: sample at least this long per case"
    )
    args = p.parse_args(argv)
    if args.device == "cpu":
        # Must be set before triton is imported anywhere in this process.
        os.environ["TRITON_INTERPRET"] = "1"
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray prints from kernels or libraries go to stderr
    sys.stdout = sys.stderr
    from .. import plugins
    from .environment import fingerprint, probe_device

    device = probe_device(args.device)
    if args.calibrate:
        _emit(proto, {"event": "ready", "fingerprint": fingerprint(device, gpu=args.gpu)})
        _emit(proto, {"event": "calibration", "peaks": calibrate(args.budget_ms)})
        return 0
    with open(args.cases, encoding="utf-8") as f:
        text = f.read()
    cases = load_cases(text)
    registry = plugins.load(args.plugin)
    _emit(
        proto,
        {
            "event": "ready",
            "fingerprint": fingerprint(device, gpu=args.gpu),
            "device": {"kind": device.kind, "arch": device.arch, "name": device.name},
        },
    )
    worker = Worker(device, registry, args.budget_ms, args.target_ci, args.seed, args.gpu)
    worker.timer_hints = load_timer_hints(text)
    worker.min_time_ms = args.min_time_ms
    if not device.is_gpu and args.cpu_threads > 0:
        import torch

        # Intra-op threads that wait on each other turn a busy machine's noise into 1000x outliers.
        torch.set_num_threads(args.cpu_threads)
        worker.cpu_threads = args.cpu_threads
    try:
        worker.run(cases, proto)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
