"""A planted slowdown on a real GPU kernel, for `scripts/gpu-check`'s A/B check.

Operator ``planted_copy`` copies ``N`` fp32 values (a bandwidth-bound kernel, so time is
proportional to bytes). Provider ``planted`` copies ``N * (1 + TW_PLANTED_SLOWDOWN)`` values
(the extra values land past the ``N`` that are checked), so an environment that sets the
variable is that much slower; provider ``steady`` always copies ``N``: its A/B is an A/A.
Loaded as a plugin: ``--plugin gpu_planted:register`` with this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from tritonwatch.bench.registry import Registry
from tritonwatch.bench.spec import Case, DeviceInfo, Operator, Prepared, Provider

MAX_SLOWDOWN = 0.5


def slowdown() -> float:
    s = float(os.environ.get("TW_PLANTED_SLOWDOWN", "0") or 0)
    return min(max(s, 0.0), MAX_SLOWDOWN)


def _inputs(shape: dict[str, int], dtype: str, device: str, seed: int) -> dict[str, Any]:
    g = torch.Generator(device=device).manual_seed(seed)
    room = int(shape["N"] * (1 + MAX_SLOWDOWN))
    src = torch.randn(room, generator=g, device=device, dtype=torch.float32)
    return {"src": src, "dst": torch.empty_like(src)}


def _prov(name: str, planted: bool) -> Provider:
    def prepare(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
        n = case.shape["N"]
        # Whole 4 KiB blocks, so both sides take the same vectorised copy path.
        m = -(-int(n * (1 + slowdown())) // 1024) * 1024 if planted else n
        src, dst = inputs["src"], inputs["dst"]

        def fn() -> torch.Tensor:
            dst[:m].copy_(src[:m])
            return dst[:n]

        return Prepared(fn, config=lambda: {"copied": m, "slowdown": m / n - 1})

    return Provider(
        "planted_copy", name, prepare, kind="torch", description=f"copy ({name} slowdown)"
    )


def register(reg: Registry) -> None:
    reg.add_operator(
        Operator(
            name="planted_copy",
            family="test",
            shapes={
                "smoke": [{"N": 4096}],
                "nightly": [{"N": 1 << 24}, {"N": 1 << 25}, {"N": 1 << 26}],
            },
            dtypes=("fp32",),
            make_inputs=_inputs,
            reference=lambda i, s, d: i["src"][: s["N"]].clone(),
            flops=lambda s: 0.0,
            bytes=lambda s, d: 8.0 * s["N"],
            tolerance={"fp32": 0.0},
            description="y = x (N fp32 values); the planted provider copies more",
        )
    )
    reg.add_provider(_prov("steady", False))
    reg.add_provider(_prov("planted", True))
