"""A planted slowdown on a real GPU kernel, for `scripts/gpu-check`'s A/B check.

Operator ``planted_copy`` copies ``N`` fp32 values (bandwidth-bound: time follows bytes, less
than in proportion for a short copy: on an H200 the 16 M copy's 1% more bytes was +0.77% in
time, the 32 M and 64 M ones' +0.96-0.98%). Provider ``planted`` copies
``N * (1 + TW_PLANTED_SLOWDOWN)`` values (the extra values land past the ``N`` that are
checked), so an environment that sets the variable is about that much slower; provider
``steady`` always copies ``N``: its A/B is an A/A.

Operator ``planted_softmax`` is the same with tritonwatch's Triton row softmax (``M`` rows of
``N`` fp16, ``planted`` runs ``M * (1 + TW_PLANTED_SLOWDOWN)`` rows): on an H200 this kernel's
timings were the noisiest of the A/B's cases (its worker pairs' offsets 0.2-0.9%), so a change
planted into it shows what the design finds where finding is hardest.

Loaded as a plugin: ``--plugin gpu_planted:register`` with this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import math
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


def _softmax_inputs(shape: dict[str, int], dtype: str, device: str, seed: int) -> dict[str, Any]:
    g = torch.Generator(device=device).manual_seed(seed)
    rows = math.ceil(shape["M"] * (1 + MAX_SLOWDOWN))
    x = torch.randn((rows, shape["N"]), generator=g, device=device, dtype=torch.float32)
    return {"x": x.to(torch.float16)}


def _softmax_prov(name: str, planted: bool) -> Provider:
    def prepare(inputs: dict[str, Any], case: Case, device: DeviceInfo) -> Prepared:
        # The suite's own Triton softmax, launched as the suite launches it, on the first
        # ``rows`` rows; the checked output is the first M.
        from tritonwatch.ops.bandwidth import _softmax_triton

        m = case.shape["M"]
        rows = math.ceil(m * (1 + slowdown())) if planted else m
        run = _softmax_triton({"x": inputs["x"][:rows]}, case, device)

        def fn() -> torch.Tensor:
            return run.fn()[:m]

        return Prepared(fn, config=lambda: {**run.config(), "rows": rows, "slowdown": rows / m - 1})

    return Provider(
        "planted_softmax",
        name,
        prepare,
        kind="triton",
        description=f"Triton row softmax ({name} slowdown)",
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
    reg.add_operator(
        Operator(
            name="planted_softmax",
            family="test",
            shapes={"smoke": [{"M": 37, "N": 200}], "nightly": [{"M": 4096, "N": 4096}]},
            dtypes=("fp16",),
            make_inputs=_softmax_inputs,
            reference=lambda i, s, d: torch.softmax(i["x"][: s["M"]].float(), dim=-1),
            flops=lambda s: 5.0 * s["M"] * s["N"],
            bytes=lambda s, d: 4.0 * s["M"] * s["N"],
            tolerance={"fp16": 4e-3},
            description="row softmax (M x N fp16); the planted provider runs more rows",
        )
    )
    reg.add_provider(_softmax_prov("steady", False))
    reg.add_provider(_softmax_prov("planted", True))
