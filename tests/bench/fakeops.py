"""Fake operators for runner tests, registered through the real registry (``fakeops:register``).

Providers misbehave on purpose: wrong answers, exceptions, aborts, segfaults and hangs.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

import torch

from tritonwatch.bench.registry import Registry
from tritonwatch.bench.spec import Case, DeviceInfo, Operator, Prepared, Provider


def _inputs(shape: dict[str, int], dtype: str, device: str, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(shape["N"], generator=g)}


def _prov(name: str, body: Any) -> Provider:
    def prepare(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
        x = inputs["x"]
        return Prepared(lambda: body(x), config=lambda: {"fake": name})

    return Provider("fake", name, prepare, kind="torch", description=f"fake {name}")


def _abort(x: torch.Tensor) -> torch.Tensor:
    os.abort()


def _segv(x: torch.Tensor) -> torch.Tensor:
    ctypes.string_at(0)
    return x


def _hang(x: torch.Tensor) -> torch.Tensor:
    marker = os.environ.get("TW_FAKE_HANG_MARKER")
    if marker:  # tells a test the worker is now stuck in this case
        open(marker, "w").close()
    time.sleep(120)
    return x


def _raise(x: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("provider blew up on purpose")


BEHAVIOURS = {
    "good": lambda x: x * 2,
    "wrong": lambda x: x * 2 + 1,
    "raise": _raise,
    "abort": _abort,
    "segv": _segv,
    "hang": _hang,
}


def register(reg: Registry) -> None:
    reg.add_operator(
        Operator(
            name="fake",
            family="fake",
            shapes={"smoke": [{"N": 64}], "nightly": [{"N": 4096}]},
            dtypes=("fp32",),
            make_inputs=_inputs,
            reference=lambda i, s, d: i["x"].double() * 2,
            flops=lambda s: float(s["N"]),
            bytes=lambda s, d: 8.0 * s["N"],
            tolerance={"fp32": 1e-6},
            description="y = 2x",
        )
    )
    for name, body in BEHAVIOURS.items():
        reg.add_provider(_prov(name, body))
