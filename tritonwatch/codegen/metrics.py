"""Static metrics of one compiled specialisation, read from what the compile worker returned.

Registers, spills and shared memory come from ptxas (``-v`` log and ``cuobjdump -res-usage``) on
NVIDIA and from the AMDGCN kernel descriptor on AMD; instruction counts and opcode histograms
come from SASS (or PTX when no disassembler shipped) and AMDGCN; key instructions are the ones a
compiler developer watches for (wgmma, tcgen05, TMA, mma.sync, mfma, ...).

Pure functions: ``analyze(raw, ...) -> Compiled``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .normalize import STAGE_ORDER, code_text, normalize, stage_hash, strip_header

#: What each metric means; renderers and docs read this.
METRIC_HELP = {
    "registers": "registers per thread (NVIDIA: ptxas; AMD: arch VGPRs)",
    "spills": "NVIDIA: spill-store bytes; AMD: spilled VGPRs + SGPRs",
    "spill_loads": "NVIDIA: spill-load bytes",
    "stack": "NVIDIA: stack frame bytes",
    "shared": "shared memory / LDS bytes the kernel is launched with",
    "instructions": "instructions in the final ISA (SASS, else PTX; AMDGCN)",
    "ptx_instructions": "PTX instructions",
    "vgprs": "AMD vector registers",
    "agprs": "AMD accumulation registers",
    "sgprs": "AMD scalar registers",
    "scratch": "AMD scratch bytes per lane",
    "occupancy": "AMD waves per SIMD",
    "binary_bytes": "cubin / hsaco size",
}

#: Metrics whose increase is bad (used for "up in N" counts in the summary).
COST_METRICS = (
    "registers",
    "spills",
    "shared",
    "instructions",
    "scratch",
    "vgprs",
    "agprs",
    "sgprs",
)

# Patterns start with a literal so the regex engine scans fast (a leading \b defeats that).
KEY_INSTRUCTIONS: dict[str, dict[str, re.Pattern[str]]] = {
    "cuda": {
        "wgmma": re.compile(r"wgmma\.mma_async"),
        "tcgen05": re.compile(r"tcgen05\.\w"),
        "tma": re.compile(r"cp\.async\.bulk\.tensor"),
        "bulk_copy": re.compile(r"cp\.async\.bulk\.(?!tensor)"),
        "mma.sync": re.compile(r"mma\.sync"),
        "cp.async": re.compile(r"cp\.async\.c[ag]\b"),
        "ldmatrix": re.compile(r"ldmatrix\."),
        "stmatrix": re.compile(r"stmatrix\."),
        "mbarrier": re.compile(r"mbarrier\."),
        "setmaxnreg": re.compile(r"setmaxnreg\."),
    },
    "hip": {
        "mfma": re.compile(r"v_mfma_"),
        "smfmac": re.compile(r"v_smfmac_"),
        "wmma": re.compile(r"v_wmma_"),
        "direct_to_lds": re.compile(r"_load_\w+[^\n]*\blds\b|global_load_lds_"),
        "ds_read_tr": re.compile(r"ds_read_\w*tr"),
        "buffer_load": re.compile(r"buffer_load_"),
        "v_dot": re.compile(r"v_dot\d"),
        "scratch_access": re.compile(r"scratch_(?:load|store)_"),
    },
}

_PTX_TYPE = re.compile(
    r"^(?:[busf]\d+|bf16(?:x2)?|f16x2|pred|v\d|e4m3|e5m2|tf32|rn|rz|rm|rp|"
    r"approx|ftz|sat|wide|lo|hi|full|uni|x\d|m\d+n\d+k\d+)$"
)


@dataclass(frozen=True)
class Compiled:
    """One kernel specialisation compiled for one target in one environment, analysed."""

    kernel: str
    spec: str
    target: str
    status: str  # ok | error | unavailable
    error: str | None = None
    compile_ms: float | None = None
    stages: dict[str, str] = field(default_factory=dict)  # stage -> normalised text
    stage_hashes: dict[str, str] = field(default_factory=dict)
    # per text stage: the hash of its strict form with header lines set aside (what "the code
    # itself changed" compares; computed once here so comparing stays cheap when cached)
    code_hashes: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    opcodes: dict[str, int] = field(default_factory=dict)
    key_instructions: dict[str, int] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)

    @property
    def error_line(self) -> str | None:
        """The line of a (multi-line) compiler error that says what went wrong."""
        if not self.error:
            return None
        lines = [ln.strip() for ln in self.error.splitlines() if ln.strip()]
        head = lines[0] if lines else self.error
        if len(lines) > 1 and head.endswith(":"):
            return f"{head.split(':', 1)[0]}: {lines[-1]}"[:300]
        return head[:300]


def ptx_opcodes(text: str) -> Counter[str]:
    ops: Counter[str] = Counter()
    for line in text.splitlines():
        s = line.split("//", 1)[0].strip()
        if not s.endswith(";") or s.startswith((".", "}", "{")):
            continue
        s = re.sub(r"^@!?%\w+\s+", "", s)
        mnemonic = s.split(None, 1)[0].rstrip(";")
        parts = mnemonic.split(".")
        keep = parts[:2] if len(parts) > 1 and not _PTX_TYPE.match(parts[1]) else parts[:1]
        ops[".".join(keep)] += 1
    return ops


_SASS_LINE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)")


def sass_opcodes(text: str) -> Counter[str]:
    return Counter(m.group(1) for m in _SASS_LINE.finditer(text))


def amdgcn_opcodes(text: str) -> Counter[str]:
    ops: Counter[str] = Counter()
    for line in text.splitlines():
        s = line.split(";", 1)[0].strip()
        if not s or s.startswith(".") or s.endswith(":"):
            continue
        tok = s.split(None, 1)[0]
        if re.fullmatch(r"[a-z][a-z0-9_]*", tok):
            ops[tok] += 1
    return ops


def _strip_comments(text: str, marker: str) -> str:
    return re.sub(re.escape(marker) + r".*", "", text)


def _key_counts(kind: str, text: str) -> dict[str, int]:
    """Occurrences of each key instruction (comments removed first)."""
    code = _strip_comments(text, "//" if kind == "cuda" else ";")
    return {name: len(pat.findall(code)) for name, pat in KEY_INSTRUCTIONS[kind].items()}


def _int(pattern: str, text: str) -> int | None:
    m = re.search(pattern, text, re.MULTILINE)
    return int(m.group(1)) if m else None


def _cuda_metrics(raw: dict[str, Any], stages: dict[str, str]) -> dict[str, float]:
    log = raw.get("ptxas_log") or ""
    res = raw.get("resources") or {}
    m: dict[str, float] = {}
    regs = res.get("REG", _int(r"Used (\d+) registers", log))
    if regs is not None:
        m["registers"] = regs
    for key, pat in (
        ("spills", r"(\d+) bytes spill stores"),
        ("spill_loads", r"(\d+) bytes spill loads"),
        ("stack", r"(\d+) bytes stack frame"),
    ):
        v = _int(pat, log)
        if v is not None:
            m[key] = v
    if "STACK" in res and "stack" not in m:
        m["stack"] = res["STACK"]
    if "LOCAL" in res:
        m["local"] = res["LOCAL"]
    return m


def _amd_metrics(text: str) -> dict[str, float]:
    m: dict[str, float] = {}
    for key, pat in (
        ("vgprs", r"^\s*\.vgpr_count:\s+(\d+)"),
        ("agprs", r"^\s*\.agpr_count:\s+(\d+)"),
        ("sgprs", r"^\s*\.sgpr_count:\s+(\d+)"),
        ("scratch", r"; ScratchSize: (\d+)"),
        ("occupancy", r"; Occupancy: (\d+)"),
        ("code_bytes", r"; codeLenInByte = (\d+)"),
    ):
        v = _int(pat, text)
        if v is not None:
            m[key] = v
    if "vgprs" in m:
        m["registers"] = m["vgprs"]
    spills = [
        _int(p, text)
        for p in (r"^\s*\.vgpr_spill_count:\s+(\d+)", r"^\s*\.sgpr_spill_count:\s+(\d+)")
    ]
    if any(v is not None for v in spills):
        m["spills"] = sum(v or 0 for v in spills)
    return m


def analyze(raw: dict[str, Any], *, kernel: str, spec: str, target: str) -> Compiled:
    """Normalise the stages of one worker result and read its metrics."""
    status = raw.get("status", "error")
    if status != "ok":
        return Compiled(
            kernel=kernel,
            spec=spec,
            target=target,
            status=status,
            error=raw.get("error") or "unknown error",
            compile_ms=raw.get("compile_ms"),
        )
    raw_stages: dict[str, str] = raw.get("stages") or {}
    stages = {s: normalize(s, raw_stages[s]) for s in STAGE_ORDER if s in raw_stages}
    hashes = {s: stage_hash(t, s) for s, t in stages.items()}
    code_hashes = {s: stage_hash(strip_header(code_text(s, t))) for s, t in stages.items()}
    binary = raw.get("binary") or {}
    if binary.get("kind"):
        hashes[binary["kind"]] = binary["sha256"]
    meta = raw.get("metadata") or {}
    is_cuda = "ptx" in raw_stages
    metrics: dict[str, float] = {}
    tools: dict[str, str] = {}
    if is_cuda:
        metrics.update(_cuda_metrics(raw, stages))
        ptx_ops = ptx_opcodes(raw_stages["ptx"])
        metrics["ptx_instructions"] = sum(ptx_ops.values())
        if "sass" in raw_stages:
            opcodes = sass_opcodes(raw_stages["sass"])
            tools["isa"] = "SASS"
        else:
            opcodes = ptx_ops
            tools["isa"] = "PTX"
        keys = _key_counts("cuda", raw_stages["ptx"])
        if raw.get("ptxas_version"):
            tools["ptxas"] = str(raw["ptxas_version"])
        if raw.get("sass_note"):
            tools["sass"] = str(raw["sass_note"])
    else:
        text = raw_stages.get("amdgcn", "")
        metrics.update(_amd_metrics(text))
        opcodes = amdgcn_opcodes(text)
        keys = _key_counts("hip", text)
        tools["isa"] = "AMDGCN"
    metrics["instructions"] = sum(opcodes.values())
    if "shared" in meta:
        metrics["shared"] = meta["shared"]
    if binary.get("size"):
        metrics["binary_bytes"] = binary["size"]
    return Compiled(
        kernel=kernel,
        spec=spec,
        target=target,
        status="ok",
        compile_ms=raw.get("compile_ms"),
        stages=stages,
        stage_hashes=hashes,
        code_hashes=code_hashes,
        metrics=metrics,
        opcodes=dict(opcodes),
        key_instructions=keys,
        tools=tools,
    )
