"""Canonical names: value numbering, name hints, constant order and alias/metadata numbering are
not changes; a real change still is. On real Triton output (compiled here, sm90)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from tritonwatch.codegen import compiler
from tritonwatch.codegen.diff import compare, summarize
from tritonwatch.codegen.metrics import Compiled, analyze
from tritonwatch.codegen.normalize import normalize, stage_hash
from tritonwatch.codegen.runner import _PINNED

HERE = Path(__file__).resolve().parent
SIG = {"x_ptr": "*fp32", "out_ptr": "*fp32", "stride": "i32", "BLOCK": "constexpr",
       "SCALE": "constexpr"}  # fmt: skip


def _raw(file: str, scale: float) -> dict[str, Any]:
    task = {
        "id": "t",
        "file": str(HERE / file),
        "kernel": "rowsum",
        "signature": SIG,
        "constexprs": {"BLOCK": 64, "SCALE": scale},
        "divisibility": ["x_ptr", "out_ptr"],
        "target": "sm90",
        "options": {"num_warps": 4},
    }
    raw = compiler.compile_task(task, compiler.probe())
    assert raw["status"] == "ok", raw.get("error")
    return raw


@pytest.fixture(scope="module")
def raws(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    with pytest.MonkeyPatch.context() as mp:  # compile as the worker does (runner._PINNED)
        for k, v in {**_PINNED, "TRITON_CACHE_DIR": str(tmp_path_factory.mktemp("tc"))}.items():
            mp.setenv(k, v)
        out = {"base": _raw("kernels_names.py", 2.0), "scaled": _raw("kernels_names.py", 3.0)}
        # With line info on, Triton names SSA values after the source's variables (%acc, %total)
        mp.setenv("TRITON_DISABLE_LINE_INFO", "0")
        out["named"] = _raw("kernels_names.py", 2.0)
        out["renamed"] = _raw("kernels_names_renamed.py", 2.0)
        return out


def _an(raw: dict[str, Any]) -> Compiled:
    return analyze(raw, kernel="rowsum", spec="s", target="sm90")


pytestmark = pytest.mark.slow  # four compiles, about 10 s


def test_local_variable_names_are_not_a_change(raws: dict[str, dict[str, Any]]) -> None:
    named, renamed = raws["named"]["stages"], raws["renamed"]["stages"]
    # Triton names SSA values after the source's variables, so the raw IR differs ...
    assert "%acc" in named["ttir"] and "%total" in renamed["ttir"]
    row = compare(_an(raws["named"]), _an(raws["renamed"]))
    # ... but the code does not: no stage changed (the cubin carries the line table)
    assert row.status == "changed" and row.changed_stages == ("cubin",), row.changed_stages


def test_a_real_change_is_still_found(raws: dict[str, dict[str, Any]]) -> None:
    a, b = _an(raws["base"]), _an(raws["scaled"])
    # "where the code changes" is read from hashes made once at analysis (cheap when cached)
    assert set(a.code_hashes) == set(a.stages) and a.code_hashes["ttir"] != b.code_hashes["ttir"]
    row = compare(a, b)
    assert row.status == "changed"
    assert row.first_changed_stage == "ttir" and row.first_code_stage == "ttir"
    assert "3.000000e+00" in row.diffs["ttir"] and "2.000000e+00" in row.diffs["ttir"]


def _swap(text: str, x: str, y: str) -> str:
    return re.sub(
        rf"{re.escape(x)}\b|{re.escape(y)}\b", lambda m: y if m.group(0) == x else x, text
    )


def _perturb_mlir(text: str) -> str:
    """What another printer could emit for the same code: other value numbers, aliases
    numbered the other way round, hoisted constants in another order."""
    text = re.sub(r"%(\d+)\b", lambda m: f"%{int(m.group(1)) + 100}", text)
    text = _swap(text, "#blocked1", "#blocked2")
    lines = text.splitlines()
    consts = [i for i, ln in enumerate(lines) if " = arith.constant " in ln]
    block = [i for i in consts if i - 1 in consts or i + 1 in consts]
    assert len(block) >= 2, "the kernel should hoist several constants"
    for i, j in zip(block, reversed(block), strict=True):
        if i < j:
            lines[i], lines[j] = lines[j], lines[i]
    defs = [i for i, ln in enumerate(lines) if ln.startswith("#blocked")]
    if defs:  # TTGIR: the alias definitions in another order too
        lines[defs[0]], lines[defs[-1]] = lines[defs[-1]], lines[defs[0]]
    return "\n".join(lines) + "\n"


def _perturb_llir(text: str) -> str:
    text = re.sub(r"!(\d+)\b", lambda m: f"!{int(m.group(1)) + 7}", text)
    text = _swap(text, "#0", "#1")
    return re.sub(r"%(\d+)\b", lambda m: f"%{int(m.group(1)) + 50}", text)


@pytest.mark.parametrize("stage", ["ttir", "ttgir", "llir"])
def test_renumbering_real_output_is_not_a_change(
    raws: dict[str, dict[str, Any]], stage: str
) -> None:
    text = raws["base"]["stages"][stage]
    other = _perturb_llir(text) if stage == "llir" else _perturb_mlir(text)
    assert other != text
    assert stage_hash(normalize(stage, other), stage) == stage_hash(normalize(stage, text), stage)
    # a real change in the perturbed text is still seen: swap the operands of one muli/mul
    op = "arith.muli" if stage != "llir" else "mul i32"
    m = re.search(rf"{op} (%\w+), (%\w+)", other)
    assert m is not None
    swapped = other.replace(m.group(0), f"{op} {m.group(2)}, {m.group(1)}", 1)
    assert stage_hash(normalize(stage, swapped), stage) != stage_hash(normalize(stage, text), stage)


def _with_sass(c: Compiled, sass: str) -> Compiled:
    stages = {**c.stages, "sass": normalize("sass", sass)}
    hashes = {
        **c.stage_hashes,
        "sass": stage_hash(stages["sass"], "sass"),
        "cubin": stage_hash(sass),
    }
    return dataclasses.replace(c, stages=stages, stage_hashes=hashes)


def test_same_ptx_sass_differing_only_in_register_allocation_is_not_a_change(
    raws: dict[str, dict[str, Any]],
) -> None:
    sass = raws["base"]["stages"]["sass"]
    regs = sorted({int(n) for n in re.findall(r"\bR(\d+)\b", sass)})
    assert len(regs) > 4
    perm = dict(zip(regs, regs[1:] + regs[:1], strict=True))  # another allocation, same code
    other = re.sub(r"\bR(\d+)\b", lambda m: f"R{perm[int(m.group(1))]}", sass)
    base = _an(raws["base"])
    row = compare(base, _with_sass(base, other))
    assert row.status == "identical" and row.ptxas_note == "register allocation"
    s = summarize([row])
    assert s.regalloc_only == 1 and "only in register allocation" in s.headline
    assert s.headline.startswith("No change in 1 specialisation.")

    # a real SASS change behind the same PTX is a change, and is said to be ptxas's
    lines = other.splitlines()
    i = next(i for i, ln in enumerate(lines) if " FADD " in ln or " FMUL " in ln)
    changed = "\n".join(lines[:i] + lines[i + 1 :])
    row = compare(base, _with_sass(base, changed))
    assert row.status == "changed" and row.first_changed_stage == "sass"
    assert row.ptxas_note == "ptxas"
    assert "change is ptxas's" in summarize([row]).headline
