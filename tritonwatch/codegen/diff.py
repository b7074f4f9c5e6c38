"""Two analysed artifact sets -> what changed: per kernel x target, and a summary that leads.

For each specialisation compiled in A and in B: the first stage whose normalised text differs
(TTIR, TTGIR, LLIR, PTX/AMDGCN, SASS, then the binary), metric deltas (registers, spills, shared
memory, instructions, AMD VGPR/AGPR/SGPR, scratch, occupancy), the opcode histogram delta, key
instructions gained or lost, compile times, and normalised unified diffs of the changed stages.
Pure functions (text diffs run GNU ``diff -u`` when it is installed, for speed; difflib else).
"""

from __future__ import annotations

import difflib
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .canonical import sass_modulo_registers
from .metrics import Compiled
from .normalize import STAGE_LABELS, changed_stages, code_text, strip_header

MAX_DIFF_LINES = 200


@dataclass(frozen=True)
class KernelDiff:
    """One specialisation on one target, A against B."""

    kernel: str
    spec: str
    target: str
    # identical | changed | failed_a | failed_b | failed_both | failed_same | unavailable | skipped
    status: str
    first_changed_stage: str | None
    # The first stage whose code differs once header lines (module attributes, target triple,
    # data layout, ISA version) are set aside; None when only headers differ.
    first_code_stage: str | None
    changed_stages: tuple[str, ...]
    a: Compiled
    b: Compiled
    metric_deltas: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    opcode_deltas: dict[str, tuple[int, int]] = field(default_factory=dict)
    keys_gained: tuple[str, ...] = ()
    keys_lost: tuple[str, ...] = ()
    diffs: dict[str, str] = field(default_factory=dict)
    # Set when both builds emitted the same PTX and ran the same ptxas but the SASS differs:
    # "register allocation" (equal once registers are renamed: ptxas is not deterministic, not
    # counted as a change) or "ptxas" (a real SASS change that ptxas, not Triton, made).
    ptxas_note: str | None = None

    @property
    def changed(self) -> bool:
        return self.status in ("changed", "failed_a", "failed_b", "failed_both")

    @property
    def impact(self) -> float:
        """How much a reviewer should care, for ordering rows: key instructions lost or gained
        first, then spills that grew, then relative register and instruction changes."""
        if self.status != "changed":
            return 1e9 if self.status in ("failed_a", "failed_b", "failed_both") else 0.0
        score = 1000.0 * len(self.keys_lost) + 500.0 * len(self.keys_gained)
        sa, sb = self.metric("spills")
        if (sb or 0) > (sa or 0):
            score += 300.0
        for name, weight in (("registers", 200.0), ("instructions", 100.0), ("shared", 50.0)):
            va, vb = self.metric(name)
            if va and vb is not None:
                score += weight * min(1.0, abs(vb - va) / va)
        return score

    def metric(self, name: str) -> tuple[float | None, float | None]:
        return self.a.metrics.get(name), self.b.metrics.get(name)

    def to_json(self, *, with_diffs: bool = False) -> dict[str, Any]:
        def side(c: Compiled) -> dict[str, Any]:
            return {
                "status": c.status,
                "error": c.error,
                "compile_ms": c.compile_ms,
                "metrics": c.metrics,
                "key_instructions": c.key_instructions,
                "stage_hashes": c.stage_hashes,
                "tools": c.tools,
            }

        d: dict[str, Any] = {
            "kernel": self.kernel,
            "spec": self.spec,
            "target": self.target,
            "status": self.status,
            "first_changed_stage": STAGE_LABELS.get(self.first_changed_stage or "", None),
            "first_code_change": STAGE_LABELS.get(self.first_code_stage or "", None),
            "changed_stages": [STAGE_LABELS[s] for s in self.changed_stages],
            "a": side(self.a),
            "b": side(self.b),
            "opcode_deltas": {k: {"a": a, "b": b} for k, (a, b) in self.opcode_deltas.items()},
            "key_instructions_gained": list(self.keys_gained),
            "key_instructions_lost": list(self.keys_lost),
            "ptxas_note": self.ptxas_note,
        }
        if with_diffs:
            d["diffs"] = {STAGE_LABELS[k]: v for k, v in self.diffs.items()}
        return d


@dataclass(frozen=True)
class BlastSummary:
    """Counts over all rows; ``headline`` is the sentence that leads every report."""

    total: int
    changed: int
    identical: int
    by_stage: dict[str, int]
    by_code_stage: dict[str, int]  # first stage whose code (headers set aside) differs
    header_only: int  # changed rows whose stages differ only in header lines
    failed_a_only: int
    failed_b_only: int
    failed_both: int
    failed_same: int
    dead_targets: dict[str, str]  # target -> error, when nothing compiles there in either build
    ptxas_changes: dict[str, str]  # target -> "12.9.86 → 13.4.59" when A and B used other ptxas
    unavailable: dict[str, str]  # target -> reason
    skipped: int  # rows a spec's own requirements exclude (targets, features, Triton version)
    keys_lost: dict[str, int]  # "wgmma on sm90" -> count
    keys_gained: dict[str, int]
    registers_up: int
    registers_down: int
    spills_appeared: int
    spills_gone: int
    shared_up: int
    instructions_up: int
    instructions_down: int
    headline: str
    # rows whose SASS differs only in register allocation with the same PTX and ptxas (counted
    # as identical), and changed rows whose only change is ptxas's (same PTX, same ptxas)
    regalloc_only: int = 0
    ptxas_only: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_DIFF = shutil.which("diff")


def _gnu_diff(a: str, b: str, stage: str) -> list[str] | None:
    """``diff -u`` (Myers, in C): much faster than difflib on large, very different texts."""
    if _DIFF is None:
        return None
    with tempfile.TemporaryDirectory(prefix="tw-diff-") as d:
        pa, pb = Path(d, "a"), Path(d, "b")
        pa.write_text(a, encoding="utf-8")
        pb.write_text(b, encoding="utf-8")
        r = subprocess.run(
            [_DIFF, "-U2", "--label", f"A/{stage}", "--label", f"B/{stage}", str(pa), str(pb)],
            capture_output=True,
            text=True,
        )
    if r.returncode not in (0, 1):
        return None
    return r.stdout.splitlines()


def unified_diff(a: str, b: str, stage: str, *, limit: int = MAX_DIFF_LINES) -> str:
    """Unified diff of two normalised texts (2 lines of context), cut at ``limit`` lines."""
    lines = _gnu_diff(a, b, stage)
    if lines is None:
        lines = list(
            difflib.unified_diff(
                a.splitlines(), b.splitlines(), f"A/{stage}", f"B/{stage}", n=2, lineterm=""
            )
        )
    if len(lines) > limit:
        more = len(lines) - limit
        lines = lines[:limit] + [f"... {more} more diff lines not shown"]
    return "\n".join(lines)


def _first_code_stage(a: Compiled, b: Compiled, changed: list[str]) -> str | None:
    for st in changed:
        if st not in a.stages or st not in b.stages:
            return st  # a binary (or a stage only one side has): no header to set aside
        ca, cb = a.code_hashes.get(st), b.code_hashes.get(st)
        if ca is None or cb is None:  # made by hand (tests) or by an older analysis
            if strip_header(code_text(st, a.stages[st])) != strip_header(
                code_text(st, b.stages[st])
            ):
                return st
        elif ca != cb:
            return st
    return None


#: ``KernelDiff.ptxas_note`` values.
REGALLOC = "register allocation"
PTXAS = "ptxas"


def _same_ptx_note(a: Compiled, b: Compiled, changed: list[str]) -> str | None:
    """With the same PTX and the same ptxas, a SASS difference is ptxas's own: register
    allocation only (ptxas is not deterministic for some kernels and targets) or otherwise."""
    if "sass" not in changed or "ptx" in changed or "ptx" not in a.stage_hashes:
        return None
    if a.tools.get("ptxas") != b.tools.get("ptxas") or "sass" not in a.stages:
        return None
    if "sass" not in b.stages:
        return None
    same = sass_modulo_registers(a.stages["sass"]) == sass_modulo_registers(b.stages["sass"])
    return REGALLOC if same else PTXAS


def _changed_stages(a: Compiled, b: Compiled) -> list[str]:
    return changed_stages(a.stage_hashes, b.stage_hashes)


def compare(a: Compiled, b: Compiled, *, diff_stages: int = 1) -> KernelDiff:
    """Compare one specialisation; ``diff_stages`` text diffs are kept (first changed onwards,
    plus the final ISA)."""
    base: dict[str, Any] = {"kernel": a.kernel, "spec": a.spec, "target": a.target, "a": a, "b": b}
    if "skipped" in (a.status, b.status):
        return KernelDiff(
            status="skipped",
            first_changed_stage=None,
            first_code_stage=None,
            changed_stages=(),
            **base,
        )
    if "unavailable" in (a.status, b.status):
        return KernelDiff(
            status="unavailable",
            first_changed_stage=None,
            first_code_stage=None,
            changed_stages=(),
            **base,
        )
    if a.status != "ok" or b.status != "ok":
        status = (
            "failed_both"
            if a.status != "ok" and b.status != "ok"
            else "failed_a"
            if a.status != "ok"
            else "failed_b"
        )
        if status == "failed_both" and a.error_line == b.error_line:
            status = "failed_same"  # fails the same way in both: no change, but worth saying
        return KernelDiff(
            status=status,
            first_changed_stage=None,
            first_code_stage=None,
            changed_stages=(),
            **base,
        )
    changed = _changed_stages(a, b)
    ptxas_note = _same_ptx_note(a, b, changed)
    if ptxas_note == REGALLOC:
        changed = [s for s in changed if s not in ("sass", "cubin")]
    metrics = {}
    for name in sorted(set(a.metrics) | set(b.metrics)):
        va, vb = a.metrics.get(name), b.metrics.get(name)
        if va != vb:
            metrics[name] = (va, vb)
    opcodes = {
        op: (a.opcodes.get(op, 0), b.opcodes.get(op, 0))
        for op in sorted(set(a.opcodes) | set(b.opcodes))
        if a.opcodes.get(op, 0) != b.opcodes.get(op, 0)
    }
    keys = set(a.key_instructions) | set(b.key_instructions)
    gained = tuple(
        sorted(k for k in keys if not a.key_instructions.get(k) and b.key_instructions.get(k))
    )
    lost = tuple(
        sorted(k for k in keys if a.key_instructions.get(k) and not b.key_instructions.get(k))
    )
    diffs: dict[str, str] = {}
    text_changed = [s for s in changed if s in a.stages and s in b.stages]
    code_stage = _first_code_stage(a, b, changed)
    picks = text_changed[:diff_stages]
    if code_stage in text_changed and code_stage not in picks:
        picks.append(code_stage)  # the first change was a header line: show where code changes
    final = [s for s in ("sass", "amdgcn", "ptx") if s in text_changed][:1]
    for s in picks + [f for f in final if f not in picks]:
        diffs[s] = unified_diff(a.stages[s], b.stages[s], STAGE_LABELS[s])
    return KernelDiff(
        status="changed" if changed else "identical",
        first_changed_stage=changed[0] if changed else None,
        first_code_stage=code_stage,
        ptxas_note=ptxas_note,
        changed_stages=tuple(changed),
        metric_deltas=metrics,
        opcode_deltas=opcodes,
        keys_gained=gained,
        keys_lost=lost,
        diffs=diffs,
        **base,
    )


def _up(d: KernelDiff, name: str) -> bool:
    va, vb = d.metric(name)
    return va is not None and vb is not None and vb > va


def _down(d: KernelDiff, name: str) -> bool:
    va, vb = d.metric(name)
    return va is not None and vb is not None and vb < va


def _dead_targets(rows: Sequence[KernelDiff]) -> dict[str, str]:
    out = {}
    for t in dict.fromkeys(r.target for r in rows):
        mine = [r for r in rows if r.target == t and r.status != "skipped"]
        if mine and all(r.status == "failed_same" for r in mine):
            out[t] = mine[0].a.error_line or "compile error"
    return out


def _ptxas_changes(rows: Sequence[KernelDiff]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in rows:
        va, vb = r.a.tools.get("ptxas"), r.b.tools.get("ptxas")
        if va and vb and va != vb and r.target not in out:
            out[r.target] = f"{va} → {vb}"
    return out


def summarize(rows: Sequence[KernelDiff]) -> BlastSummary:
    ok = [r for r in rows if r.status in ("identical", "changed")]
    changed = [r for r in rows if r.status == "changed"]
    by_stage = Counter(
        STAGE_LABELS[r.first_changed_stage] for r in changed if r.first_changed_stage
    )
    by_code = Counter(STAGE_LABELS[r.first_code_stage] for r in changed if r.first_code_stage)
    lost: Counter[str] = Counter()
    gained: Counter[str] = Counter()
    for r in changed:
        for k in r.keys_lost:
            lost[f"{k} on {r.target}"] += 1
        for k in r.keys_gained:
            gained[f"{k} on {r.target}"] += 1
    unavailable: dict[str, str] = {}
    for r in rows:
        if r.status == "unavailable" and r.target not in unavailable:
            side, c = ("A", r.a) if r.a.status == "unavailable" else ("B", r.b)
            unavailable[r.target] = f"{side}: {c.error_line}"
    spills_appeared = sum(
        1 for r in changed if not r.a.metrics.get("spills") and r.b.metrics.get("spills")
    )
    spills_gone = sum(
        1 for r in changed if r.a.metrics.get("spills") and not r.b.metrics.get("spills")
    )
    s = BlastSummary(
        total=len(rows),
        changed=len(changed),
        identical=len(ok) - len(changed),
        by_stage={lbl: by_stage[lbl] for lbl in STAGE_LABELS.values() if by_stage[lbl]},
        by_code_stage={lbl: by_code[lbl] for lbl in STAGE_LABELS.values() if by_code[lbl]},
        header_only=sum(1 for r in changed if r.first_code_stage is None),
        failed_a_only=sum(r.status == "failed_a" for r in rows),
        failed_b_only=sum(r.status == "failed_b" for r in rows),
        failed_both=sum(r.status == "failed_both" for r in rows),
        failed_same=sum(r.status == "failed_same" for r in rows),
        dead_targets=_dead_targets(rows),
        ptxas_changes=_ptxas_changes(rows),
        unavailable=unavailable,
        skipped=sum(r.status == "skipped" for r in rows),
        keys_lost=dict(lost.most_common()),
        keys_gained=dict(gained.most_common()),
        registers_up=sum(_up(r, "registers") for r in changed),
        registers_down=sum(_down(r, "registers") for r in changed),
        spills_appeared=spills_appeared,
        spills_gone=spills_gone,
        shared_up=sum(_up(r, "shared") for r in changed),
        instructions_up=sum(_up(r, "instructions") for r in changed),
        instructions_down=sum(_down(r, "instructions") for r in changed),
        headline="",
        regalloc_only=sum(r.ptxas_note == REGALLOC for r in ok),
        ptxas_only=sum(r.ptxas_note == PTXAS for r in changed),
    )
    return _with_headline(s)


def _count(n: int, one: str = "specialisation", many: str = "specialisations") -> str:
    return f"{n} {one if n == 1 else many}"


def _and(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _verb(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _with_headline(s: BlastSummary) -> BlastSummary:
    """The summary in whole sentences, most important first."""
    compared = s.total - s.skipped  # failures count; specs excluded by their own rules do not
    out: list[str] = []
    if s.changed:
        where = _and([f"{stage} in {n}" for stage, n in s.by_stage.items()])
        out.append(
            f"{s.changed} of {_count(compared)} changed; the first difference is at {where}."
        )
        if s.by_code_stage != s.by_stage:
            code = _and([f"{stage} in {n}" for stage, n in s.by_code_stage.items()])
            text = f"The code itself first differs at {code}." if code else ""
            if s.header_only:
                text += (
                    f" {s.header_only} of them {_verb(s.header_only, 'differs', 'differ')} only "
                    "in module attributes or target lines."
                )
            out.append(text.strip())
    elif s.identical:
        out.append(f"No change in {_count(s.identical)}.")
    else:
        out.append(f"No specialisation compiled in both builds ({compared} compared).")
    keys = [f"{k} lost in {n}" for k, n in s.keys_lost.items()]
    keys += [f"{k} gained in {n}" for k, n in s.keys_gained.items()]
    if keys:
        out.append("Key instructions: " + "; ".join(keys) + ".")
    moved = []
    if s.registers_up or s.registers_down:
        parts = [f"up in {s.registers_up}"] if s.registers_up else []
        parts += [f"down in {s.registers_down}"] if s.registers_down else []
        moved.append("registers went " + " and ".join(parts))
    if s.spills_appeared:
        moved.append(f"spills appeared in {s.spills_appeared}")
    if s.spills_gone:
        moved.append(f"spills went away in {s.spills_gone}")
    if s.shared_up:
        moved.append(f"shared memory went up in {s.shared_up}")
    if moved:
        text = ", ".join(moved)
        out.append(text[0].upper() + text[1:] + ".")
    if s.failed_b_only:
        out.append(
            f"{_count(s.failed_b_only)} {_verb(s.failed_b_only, 'fails', 'fail')} to compile "
            "only in B."
        )
    if s.failed_a_only:
        out.append(
            f"{_count(s.failed_a_only)} {_verb(s.failed_a_only, 'fails', 'fail')} to compile "
            "only in A."
        )
    if s.failed_both:
        out.append(
            f"{_count(s.failed_both)} {_verb(s.failed_both, 'fails', 'fail')} in both builds, "
            "with different errors."
        )
    if s.regalloc_only:
        out.append(
            f"In {_count(s.regalloc_only)} the SASS differs only in register allocation, with "
            "the same PTX and the same ptxas (ptxas's choice, not the code generator's); "
            f"{_verb(s.regalloc_only, 'it is', 'they are')} not counted as changed."
        )
    if s.ptxas_only:
        out.append(
            f"In {_count(s.ptxas_only)} the SASS changed with the same PTX and the same ptxas, "
            "so that change is ptxas's, not the code generator's."
        )
    by_version: dict[str, list[str]] = {}
    for target, change in s.ptxas_changes.items():
        by_version.setdefault(change, []).append(target)
    for change, targets in by_version.items():
        out.append(
            f"ptxas differs on {', '.join(targets)} ({change}), so SASS changes there may be "
            "ptxas's."
        )
    for target, reason in s.dead_targets.items():
        out.append(f"Nothing compiles for {target} in either build ({reason}).")
    if s.failed_same:
        out.append(
            f"{_count(s.failed_same)} {_verb(s.failed_same, 'fails', 'fail')} to compile in "
            "both builds, the same way."
        )
    if s.skipped:
        out.append(
            f"{_count(s.skipped)} {_verb(s.skipped, 'is', 'are')} skipped by "
            f"{_verb(s.skipped, 'its', 'their')} spec's requirements."
        )
    for target, reason in s.unavailable.items():
        out.append(f"{target} is unavailable ({reason}).")
    return BlastSummary(**{**s.to_json(), "headline": " ".join(out)})


def compare_all(
    pairs: Sequence[tuple[Compiled, Compiled]],
) -> tuple[list[KernelDiff], BlastSummary]:
    rows = [compare(a, b) for a, b in pairs]
    return rows, summarize(rows)
