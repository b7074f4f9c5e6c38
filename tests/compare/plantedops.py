"""A planted-slowdown operator for compare tests, registered through an entry point.

``planted`` spins ``N`` microseconds, ``1 + TW_PLANTED_SLOWDOWN`` times longer when the Triton this
worker imported is ``TW_PLANTED_SLOW_TRITON`` (or when ``TW_PLANTED_SLOW_ALWAYS`` is set: the fake
environments of the fast tests); ``steady`` spins the same time whatever the build. Spinning on the
clock keeps CPU timings steady on a busy machine, unlike real arithmetic.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from tritonwatch.bench.registry import Registry
from tritonwatch.bench.spec import Case, DeviceInfo, Operator, Prepared, Provider


def _inputs(shape: dict[str, int], dtype: str, device: str, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(16, generator=g)}


def _spin(us: float) -> None:
    end = time.perf_counter() + us * 1e-6
    while time.perf_counter() < end:
        pass


def slow_factor() -> float:
    import triton

    slow = os.environ.get("TW_PLANTED_SLOW_TRITON")
    planted = os.environ.get("TW_PLANTED_SLOW_ALWAYS") or (slow and triton.__version__ == slow)
    return 1.0 + float(os.environ.get("TW_PLANTED_SLOWDOWN", "0.10")) if planted else 1.0


def _prov(name: str, planted: bool) -> Provider:
    def prepare(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
        x = inputs["x"]
        us = case.shape["N"] * (slow_factor() if planted else 1.0)

        def fn() -> torch.Tensor:
            _spin(us)
            return x * 2

        return Prepared(fn, config=lambda: {"spin_us": us})

    return Provider("planted", name, prepare, kind="torch", description=f"spin ({name})")


def register(reg: Registry) -> None:
    reg.add_operator(
        Operator(
            name="planted",
            family="test",
            shapes={"smoke": [{"N": 200}], "nightly": [{"N": n} for n in (150, 200, 250, 300)]},
            dtypes=("fp32",),
            make_inputs=_inputs,
            reference=lambda i, s, d: i["x"].double() * 2,
            flops=lambda s: 16.0,
            bytes=lambda s, d: 128.0,
            tolerance={"fp32": 1e-6},
            description="spin N us, then y = 2x",
        )
    )
    reg.add_provider(_prov("steady", False))
    reg.add_provider(_prov("planted", True))
