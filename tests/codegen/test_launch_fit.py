"""Every launch configuration the GPU path can use fits the GPU it is meant for.

Compiled for real (no GPU needed) for sm90, sm100 and gfx942 with the compile worker: each fixed
launch (attention per head dim and GPU kind, softmax per nightly row length, the host-descriptor
matmul per dtype, the norms, cross-entropy, MoE, vector add) must fit the target's shared memory;
an autotuned matmul needs at least one config that fits (the autotuner skips the others). A
launch that does not fit fails only at its first launch on that GPU, as fp32 host_desc did on
sm90 (295 KB of 227 KB) and head-dim-128 attention on gfx942 (80 KB of 64 KB).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

from tritonwatch.ops import attention, bandwidth, matmul  # noqa: E402
from tritonwatch.ops.kernels import attention as k_att  # noqa: E402
from tritonwatch.ops.kernels import bandwidth as k_bw  # noqa: E402
from tritonwatch.ops.kernels import cross_entropy as k_ce  # noqa: E402
from tritonwatch.ops.kernels import matmul as k_mm  # noqa: E402
from tritonwatch.ops.kernels import moe as k_moe  # noqa: E402

pytestmark = pytest.mark.slow

# Shared memory a block may use: sm90/sm100 opt-in maximum (227 KB), gfx942 LDS (64 KB).
SHARED_LIMIT = {"sm90": 232448, "sm100": 232448, "gfx942": 65536}
KIND = {"sm90": "cuda", "sm100": "cuda", "gfx942": "rocm"}
TRITON_TYPE = {"fp32": "fp32", "tf32": "fp32", "fp16": "fp16", "bf16": "bf16"}


def _module_source(mod: Any) -> str:
    """A kernel file without its COMPILE_SPECS (the test appends its own)."""
    text = Path(mod.__file__).read_text()
    cut = text.find("\nCOMPILE_SPECS")
    helper = text.find("\ndef _spec")
    return text[: min(i for i in (cut, helper) if i >= 0)]


def _fixed_launches(kind: str) -> dict[Any, list[dict[str, Any]]]:
    """Kernel module -> spec dicts of the launches the providers make on a GPU of ``kind``."""
    out: dict[Any, list[dict[str, Any]]] = {}
    att = []
    # Causal and document masks change the code, not the tiles: one mask per dtype and head dim.
    for s in (s for s in k_att.COMPILE_SPECS if s["name"].endswith("_docmask")):
        s = copy.deepcopy(s)
        bm, bn, launch = attention.gpu_launch(int(s["constexprs"]["HEAD_DIM"]), kind)
        s["constexprs"].update(BLOCK_M=bm, BLOCK_N=bn)
        s.update(launch)
        att.append(s)
    out[k_att] = att
    bw = []
    rows = {int(x["N"]) for x in _nightly("softmax")}
    for s in k_bw.COMPILE_SPECS:
        if s["kernel"] == "softmax_kernel":
            for n in sorted(rows):
                v = copy.deepcopy(s)
                block, warps = bandwidth.softmax_launch(n)
                v["constexprs"]["BLOCK_N"] = block
                v.update(name=f"{s['name']}_n{n}", num_warps=warps)
                bw.append(v)
        else:
            bw.append(copy.deepcopy(s))
    out[k_bw] = bw
    out[k_ce] = copy.deepcopy(k_ce.COMPILE_SPECS)
    out[k_moe] = copy.deepcopy(k_moe.COMPILE_SPECS)
    host = next(s for s in k_mm.COMPILE_SPECS if s["kernel"] == "matmul_host_desc_kernel")
    mm = []
    for dtype in ("fp32", "tf32", "fp16", "bf16"):
        blocks, launch = matmul.host_desc_launch(dtype, kind)
        v = copy.deepcopy(host)
        t = TRITON_TYPE[dtype]
        bm, bn, bk = blocks["BLOCK_M"], blocks["BLOCK_N"], blocks["BLOCK_K"]
        v["signature"].update(
            a_desc=f"tensordesc<{t}[{bm},{bk}]>",
            b_desc=f"tensordesc<{t}[{bk},{bn}]>",
            c_desc=f"tensordesc<{t}[{bm},{bn}]>",
        )
        v["constexprs"].update(blocks, DOT_PRECISION=matmul.DOT_PRECISION.get(dtype))
        v.update(name=f"matmul_host_desc_{dtype}", **launch)
        mm.append(v)
    out[k_mm] = mm
    return out


def _nightly(op: str) -> list[dict[str, int]]:
    from tritonwatch import plugins

    return list(plugins.load().operator(op).shapes["nightly"])


def _autotuned() -> list[dict[str, Any]]:
    """The pointer matmul with every autotune config, per dtype (the other variants share them;
    tf32 tiles are fp32's)."""
    specs = []
    for dtype in ("fp32", "fp16", "fp8"):
        if dtype == "fp8":
            base = next(s for s in k_mm.COMPILE_SPECS if s["name"] == "matmul_pointers_fp8e4nv")
            configs = matmul._FP8_CONFIGS
        else:
            t = TRITON_TYPE[dtype]
            base = k_mm._spec(f"p_{dtype}", "matmul_pointers_kernel", t, t, k_mm._PTR_ARGS, {})
            base["constexprs"]["DOT_PRECISION"] = matmul.DOT_PRECISION.get(dtype)
            configs = matmul._GPU_CONFIGS
        for i, cfg in enumerate(configs):
            v = copy.deepcopy(base)
            v["constexprs"].update(cfg.kwargs)
            v.update(
                name=f"autotune_pointers_{dtype}_{i}",
                num_warps=cfg.num_warps,
                num_stages=cfg.num_stages,
            )
            specs.append(v)
    return specs


@pytest.fixture(scope="module")
def compiled() -> dict[tuple[str, str], Any]:
    """(spec name, target) -> StaticRow, for every launch on every target."""
    from tritonwatch.codegen import static_metrics
    from tritonwatch.codegen.cache import CompileCache

    tmp = Path(tempfile.mkdtemp(prefix="tw-launch-fit-"))
    rows: dict[tuple[str, str], Any] = {}
    for kind, targets in (("cuda", ["sm90", "sm100"]), ("rocm", ["gfx942"])):
        files = []
        for i, (mod, specs) in enumerate(_fixed_launches(kind).items()):
            if mod is k_mm:
                specs = specs + _autotuned()
            path = tmp / f"{kind}_{i}_{Path(mod.__file__).stem}.py"
            path.write_text(_module_source(mod) + f"\n\nCOMPILE_SPECS = {specs!r}\n")
            files.append(str(path))
        m = static_metrics(
            targets=targets, kernel_files=files, jobs=2, cache=CompileCache(str(tmp / "cache"))
        )
        rows.update({(r.spec, r.target): r for r in m.rows})
    return rows


@pytest.mark.parametrize("target", ["sm90", "sm100", "gfx942"])
def test_every_fixed_launch_compiles_and_fits(compiled: dict[Any, Any], target: str) -> None:
    rows = [r for (name, t), r in compiled.items() if t == target and "autotune" not in name]
    assert len(rows) >= 30
    broken = [(r.spec, r.status, (r.error or "")[:200]) for r in rows if r.status != "ok"]
    assert not broken
    over = [(r.spec, r.metrics.get("shared")) for r in rows
            if r.metrics.get("shared", 0) > SHARED_LIMIT[target]]  # fmt: skip
    assert not over, f"needs more shared memory than {target}'s {SHARED_LIMIT[target]} B: {over}"


@pytest.mark.parametrize("target", ["sm90", "sm100", "gfx942"])
def test_every_autotuned_matmul_dtype_has_a_config_that_fits(
    compiled: dict[Any, Any], target: str
) -> None:
    for dtype in ("fp32", "fp16", "fp8"):
        rows = [r for (name, t), r in compiled.items()
                if t == target and name.startswith(f"autotune_pointers_{dtype}_")]  # fmt: skip
        assert rows, dtype
        fits = [r for r in rows
                if r.status == "ok" and r.metrics.get("shared", 0) <= SHARED_LIMIT[target]]  # fmt: skip
        assert fits, f"{dtype} on {target}: no autotune config fits"
