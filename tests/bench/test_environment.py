"""The fingerprint and GPU state, with and without NVML (a fake pynvml module)."""

from __future__ import annotations

import sys
import types

import pytest
from support.probes import needs

from tritonwatch.bench import environment as env
from tritonwatch.bench.spec import DeviceInfo


def fake_pynvml(reasons: int = 0) -> types.ModuleType:
    m = types.ModuleType("pynvml")
    m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM, m.NVML_TEMPERATURE_GPU = 1, 2, 0  # type: ignore[attr-defined]
    m.nvmlInit = lambda: None  # type: ignore[attr-defined]
    m.nvmlDeviceGetHandleByIndex = lambda i: ("handle", i)  # type: ignore[attr-defined]
    m.nvmlSystemGetDriverVersion = lambda: b"570.86.15"  # type: ignore[attr-defined]
    m.nvmlDeviceGetUUID = lambda h: "GPU-1234"  # type: ignore[attr-defined]
    m.nvmlDeviceGetName = lambda h: "NVIDIA H100 80GB HBM3"  # type: ignore[attr-defined]
    m.nvmlDeviceGetClockInfo = lambda h, kind: 1980 if kind == 1 else 2619  # type: ignore[attr-defined]
    m.nvmlDeviceGetPowerUsage = lambda h: 412345  # type: ignore[attr-defined]
    m.nvmlDeviceGetTemperature = lambda h, s: 61  # type: ignore[attr-defined]
    m.nvmlDeviceGetCurrentClocksEventReasons = lambda h: reasons  # type: ignore[attr-defined]
    return m


def test_gpu_state_through_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    s = env.gpu_state(0)
    assert s == {
        "sm_clock_mhz": 1980,
        "mem_clock_mhz": 2619,
        "power_w": 412.3,
        "temperature_c": 61,
        "throttle_reasons": [],
    }
    assert not env.throttled(s)
    assert env.collect_nvml(0) == {
        "driver": "570.86.15",
        "gpu_uuid": "GPU-1234",
        "gpu_name_nvml": "NVIDIA H100 80GB HBM3",
    }


def test_thermal_throttle_marks_the_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(reasons=0x40 | 0x1))  # hw thermal + idle
    s = env.gpu_state(0)
    assert s["throttle_reasons"] == ["hw_thermal_slowdown"]
    assert env.throttled({}, s)


def test_without_nvml_there_is_no_gpu_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert env.gpu_state(0) == {}
    assert env.collect_nvml(0) == {}


def test_nvml_errors_are_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    m = fake_pynvml()

    def boom(h: object, kind: int) -> int:
        raise RuntimeError("NVML_ERROR_GPU_IS_LOST")

    m.nvmlDeviceGetClockInfo = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", m)
    assert "GPU_IS_LOST" in env.gpu_state(0)["nvml_error"]


@needs("torch", "triton")
def test_cpu_fingerprint_has_machine_and_build() -> None:
    import triton

    fp = env.fingerprint(DeviceInfo("cpu", "cpu", interpreter=True))
    m, b = fp["machine"], fp["build"]
    assert m["device"] == "cpu" and m["name"] and m["cpu"] and m["os"] and m["hostname"]
    assert "gpu_model" not in m
    assert b["triton"]["version"] == triton.__version__
    assert b["torch"]["version"] and b["python"]["version"]


@needs("torch", "triton")
def test_gpu_fingerprint_uses_nvml_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.setattr(
        env,
        "collect_gpus",
        lambda torch: {
            "gpu_model": "NVIDIA H100 80GB HBM3",
            "gpu_count": 1,
            "toolkit": "cuda 12.8",
        },
    )
    fp = env.fingerprint(DeviceInfo("cuda", "sm90", capability=(9, 0), sm_count=132))
    assert fp["machine"]["driver"] == "570.86.15" and fp["machine"]["gpu_uuid"] == "GPU-1234"
    monkeypatch.setitem(sys.modules, "pynvml", None)
    fp = env.fingerprint(DeviceInfo("cuda", "sm90", capability=(9, 0), sm_count=132))
    assert "driver" not in fp["machine"] and fp["machine"]["gpu_model"] == "NVIDIA H100 80GB HBM3"


@needs("torch", "triton")
def test_source_build_commit_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    import triton

    monkeypatch.setattr(triton, "__version__", "3.9.0+git1a2b3c4d")
    assert env.collect_build()["triton"] == {"version": "3.9.0+git1a2b3c4d", "commit": "1a2b3c4d"}
