"""Fingerprint of the machine and the build, and the GPU's state around each case.

Metadata is a flat dict built by small ``collect_*`` functions (pyperf style). NVML (the
``pynvml`` module from nvidia-ml-py) is optional: without it the GPU state is simply absent.
Worker side: imports only the stdlib, torch and triton (lazily), never the database.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from .spec import DeviceInfo

# NVML throttle-reason bits that mean the clocks were pulled down by something other than idling
# or an application clock setting (thermal, power cap, slowdown): results are marked throttled.
_THROTTLE_BITS = {
    0x0000000000000004: "sw_power_cap",
    0x0000000000000008: "hw_slowdown",
    0x0000000000000020: "sw_thermal_slowdown",
    0x0000000000000040: "hw_thermal_slowdown",
    0x0000000000000080: "hw_power_brake_slowdown",
}


def probe_device(requested: str = "auto", gpu: int = 0) -> DeviceInfo:
    """What ``--device`` means on this machine: the GPU if asked (or auto and present), else CPU."""
    import torch

    want = requested
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cpu":
        return DeviceInfo(
            kind="cpu",
            arch="cpu",
            name=platform.processor() or platform.machine(),
            interpreter=True,
        )
    if not torch.cuda.is_available():
        from ..errors import UsageError

        raise UsageError("--device cuda but torch sees no GPU here; use --device cpu or auto")
    props = torch.cuda.get_device_properties(gpu)
    if torch.version.hip is not None:
        arch = str(getattr(props, "gcnArchName", "gfx")).split(":")[0]
        return DeviceInfo(
            kind="rocm",
            arch=arch,
            name=props.name,
            capability=None,
            sm_count=props.multi_processor_count,
            count=torch.cuda.device_count(),
        )
    cap = (props.major, props.minor)
    return DeviceInfo(
        kind="cuda",
        arch=f"sm{props.major}{props.minor}",
        name=props.name,
        capability=cap,
        sm_count=props.multi_processor_count,
        count=torch.cuda.device_count(),
    )


def _nvml() -> Any:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVML library absent or no driver: no GPU state
        return None
    return pynvml


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def collect_cpu() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
            if m:
                cpu = m.group(1).strip()
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count()}


def collect_os() -> dict[str, Any]:
    return {
        "os": f"{platform.system()} {platform.release()}",
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
    }


def collect_gpus(torch: Any) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {}
    n = torch.cuda.device_count()
    props = torch.cuda.get_device_properties(0)
    info: dict[str, Any] = {
        "gpu_model": props.name,
        "gpu_count": n,
        "sm_count": props.multi_processor_count,
        "memory_gb": round(props.total_memory / 2**30, 1),
        "l2_bytes": int(getattr(props, "L2_cache_size", 0) or 0),
    }
    if torch.version.hip is not None:
        info["toolkit"] = f"rocm {torch.version.hip}"
        info["arch"] = str(getattr(props, "gcnArchName", "")).split(":")[0]
    else:
        info["toolkit"] = f"cuda {torch.version.cuda}"
        info["arch"] = f"sm{props.major}{props.minor}"
    return info


def collect_nvml(index: int = 0, nvml: Any = None) -> dict[str, Any]:
    """Driver, UUID and model through NVML (empty without NVML)."""
    nv = nvml if nvml is not None else _nvml()
    if nv is None:
        return {}
    try:
        h = nv.nvmlDeviceGetHandleByIndex(index)
        return {
            "driver": _text(nv.nvmlSystemGetDriverVersion()),
            "gpu_uuid": _text(nv.nvmlDeviceGetUUID(h)),
            "gpu_name_nvml": _text(nv.nvmlDeviceGetName(h)),
        }
    except Exception as e:  # noqa: BLE001 - report, don't fail the run
        return {"nvml_error": str(e)[:200]}


def gpu_state(index: int = 0, nvml: Any = None) -> dict[str, Any]:
    """SM and memory clocks (MHz), power (W), temperature (C) and throttle reasons, via NVML."""
    nv = nvml if nvml is not None else _nvml()
    if nv is None:
        return {}
    try:
        h = nv.nvmlDeviceGetHandleByIndex(index)
    except Exception as e:  # noqa: BLE001
        return {"nvml_error": str(e)[:200]}
    # Each query on its own: one that this GPU or driver refuses must not empty the others.
    state: dict[str, Any] = {}
    errors: list[str] = []
    queries: list[tuple[str, Callable[[], Any]]] = [
        ("sm_clock_mhz", lambda: int(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))),
        ("mem_clock_mhz", lambda: int(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM))),
        ("power_w", lambda: round(nv.nvmlDeviceGetPowerUsage(h) / 1000.0, 1)),
        (
            "temperature_c",
            lambda: int(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
        ),
        ("throttle_reasons", lambda: _reasons(nv, h)),
    ]
    for key, query in queries:
        try:
            state[key] = query()
        except Exception as e:  # noqa: BLE001
            errors.append(f"{key}: {str(e)[:80]}")
    if errors:
        state["nvml_error"] = "; ".join(errors)
    return state


def _reasons(nv: Any, h: Any) -> list[str]:
    reasons = int(
        nv.nvmlDeviceGetCurrentClocksEventReasons(h)
        if hasattr(nv, "nvmlDeviceGetCurrentClocksEventReasons")
        else nv.nvmlDeviceGetCurrentClocksThrottleReasons(h)
    )
    return [name for bit, name in _THROTTLE_BITS.items() if reasons & bit]


class GpuSampler:
    """Reads the GPU state every ``interval_s`` on a thread while a case is timed.

    Before-and-after reads both land at idle and miss a throttle that lasts only while the
    kernel runs. :meth:`summary` gives the range of clocks, the hottest and most power-hungry
    reading, and every throttle reason seen.
    """

    def __init__(self, index: int, interval_s: float = 0.02, nvml: Any = None) -> None:
        self.index, self.interval_s, self.nvml = index, interval_s, nvml
        self.states: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self.states.append(gpu_state(self.index, self.nvml))
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.states.append(gpu_state(self.index, self.nvml))  # the state as timing ended

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"samples": len(self.states)}
        for key in ("sm_clock_mhz", "mem_clock_mhz"):
            vals = [s[key] for s in self.states if key in s]
            if vals:
                out[key.replace("_mhz", "_min_mhz")] = min(vals)
                out[key.replace("_mhz", "_max_mhz")] = max(vals)
        for key in ("power_w", "temperature_c"):
            vals = [s[key] for s in self.states if key in s]
            if vals:
                out[key.replace("_w", "_max_w").replace("_c", "_max_c")] = max(vals)
        seen = sorted({r for s in self.states for r in s.get("throttle_reasons") or []})
        out["throttle_reasons"] = seen
        errors = {s["nvml_error"] for s in self.states if "nvml_error" in s}
        if errors:
            out["nvml_error"] = sorted(errors)[0]
        return out


def throttled(*states: dict[str, Any]) -> bool:
    """True if any state shows a thermal or power throttle reason."""
    return any(s.get("throttle_reasons") for s in states)


def _ptxas_version() -> str | None:
    candidates = []
    try:
        import triton

        base = os.path.dirname(triton.__file__)
        candidates.append(os.path.join(base, "backends", "nvidia", "bin", "ptxas"))
    except ImportError:
        pass
    found = shutil.which("ptxas")
    if found:
        candidates.append(found)
    for path in candidates:
        if os.path.exists(path):
            try:
                out = subprocess.run(
                    [path, "--version"], capture_output=True, text=True, timeout=10
                ).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            m = re.search(r"release ([\d.]+)", out)
            if m:
                return m.group(1)
    return None


def collect_build() -> dict[str, Any]:
    """Triton (with its commit for a source build), torch, Python, ptxas."""
    import torch
    import triton

    tri: dict[str, Any] = {"version": triton.__version__}
    m = re.search(r"\+git([0-9a-f]{7,40})", triton.__version__)
    if m:
        tri["commit"] = m.group(1)
    build: dict[str, Any] = {
        "triton": tri,
        "torch": {"version": torch.__version__.split("+")[0], "full": torch.__version__},
        "python": {"version": platform.python_version()},
    }
    ptxas = _ptxas_version()
    if ptxas:
        build["ptxas"] = {"version": ptxas}
    return build


def fingerprint(device: DeviceInfo, nvml: Any = None, gpu: int = 0) -> dict[str, Any]:
    """``{"machine": {...}, "build": {...}}`` ready for a run/1 document.

    ``gpu`` is the NVML (physical, PCI-ordered) index of the GPU the worker measures on; torch
    sees that GPU as device 0 because the runner pins each worker with CUDA_VISIBLE_DEVICES.
    """
    import torch

    machine: dict[str, Any] = {"name": socket.gethostname(), **collect_cpu(), **collect_os()}
    if device.is_gpu:
        machine.update(collect_gpus(torch))
        machine.update(collect_nvml(gpu, nvml))
    else:
        machine["gpu_model"] = None
    machine["device"] = device.kind
    machine["executable"] = sys.executable
    return {
        "machine": {k: v for k, v in machine.items() if v is not None},
        "build": collect_build(),
    }
