"""Normalise compiler artifacts so that only real code changes remain between two builds.

Each stage has its own noise: MLIR carries ``loc(...)`` debug locations and ``#loc`` aliases;
LLVM IR carries ``!dbg`` attachments, debug metadata and module identifiers; PTX and AMDGCN carry
``.loc``/``.file`` directives, debug sections and comments (tool banners, block labels); SASS
carries addresses and encodings. All of them can carry file paths and content hashes. The
functions here strip that noise; the compile worker has already pinned line info (off) and FP
fusion (on) identically on both sides, and the ptxas version is recorded beside the artifacts.

Pure functions, no I/O: ``normalize(stage, text) -> text``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from . import canonical

#: Stages in pipeline order; the first one whose normalised text differs is "where it changed".
STAGE_ORDER = ("ttir", "ttgir", "llir", "ptx", "amdgcn", "sass", "cubin", "hsaco")
STAGE_LABELS = {
    "ttir": "TTIR",
    "ttgir": "TTGIR",
    "llir": "LLIR",
    "ptx": "PTX",
    "amdgcn": "AMDGCN",
    "sass": "SASS",
    "cubin": "CUBIN",
    "hsaco": "HSACO",
}


def changed_stages(hashes_a: Mapping[str, str], hashes_b: Mapping[str, str]) -> list[str]:
    """The stages whose normalised text differs between two builds, in compile order.

    A stage only one side has counts as changed; the first entry is the "first changed stage"
    that blast reports and alerts name.
    """
    order = [s for s in STAGE_ORDER if s in hashes_a or s in hashes_b]
    return [s for s in order if hashes_a.get(s) != hashes_b.get(s)]


# Patterns start with a literal "/" so the regex engine can skip ahead (a look-behind here made
# normalising a large LLVM module 100x slower); the look-behind is checked in _path instead.
_PATH = re.compile(r"/[\w.+\-@]+(?:/[\w.+\-@]+)+/?")
_HASH = re.compile(
    r"(?<![0-9a-fA-F])[0-9a-fA-F]{32,}(?![0-9a-fA-F])|(?<![A-Z2-7])[A-Z2-7]{52}(?![A-Z2-7])"
)
_HEX = str.maketrans(dict.fromkeys("0123456789abcdefABCDEF", "h"))
_B32 = str.maketrans(dict.fromkeys("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "b"))
_SPACES = re.compile(r"[ \t]+")


def _path(m: re.Match[str]) -> str:
    i = m.start()
    if i > 0 and (m.string[i - 1].isalnum() or m.string[i - 1] in "_."):
        return m.group(0)  # "a/b/c" inside a word is not a path
    return "<path>"


def _has_hash(text: str) -> bool:
    # str.translate + substring search run in C; the hash regex only runs when a run exists.
    return "h" * 32 in text.translate(_HEX) or "b" * 52 in text.translate(_B32)


def _common(text: str) -> str:
    text = _PATH.sub(_path, text)
    return _HASH.sub("<hash>", text) if _has_hash(text) else text


def _strip_loc_calls(line: str) -> str:
    """Remove every ``loc(...)`` (nested parentheses included) from one MLIR line."""
    out: list[str] = []
    i = 0
    while True:
        j = line.find("loc(", i)
        if j < 0 or (j > 0 and (line[j - 1].isalnum() or line[j - 1] in "_#.")):
            if j < 0:
                out.append(line[i:])
                break
            out.append(line[i : j + 4])
            i = j + 4
            continue
        out.append(line[i:j])
        depth, k = 0, j + 3
        while k < len(line):
            if line[k] == "(":
                depth += 1
            elif line[k] == ")":
                depth -= 1
                if depth == 0:
                    break
            elif line[k] == '"':  # skip quoted file names that may contain parentheses
                k = line.find('"', k + 1)
                if k < 0:
                    k = len(line)
            k += 1
        i = k + 1
    return "".join(out).rstrip()


def normalize_mlir(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("#loc"):
            continue
        line = _strip_loc_calls(line)
        lines.append(line)
    return _common("\n".join(lines))


_DBG_ATTACH = re.compile(r",?\s*!dbg !\d+")
_LLIR_DROP = re.compile(
    r"^(?:; ModuleID.*|source_filename.*|\s*#dbg_\w+\(.*|\s*call void @llvm\.dbg\..*|"
    r"!llvm\.dbg\.cu.*|!\d+ = .*(?:!DI|Debug Info).*)\n?",
    re.MULTILINE,
)


def normalize_llir(text: str) -> str:
    text = _LLIR_DROP.sub("", text)
    if "!dbg" in text:
        text = _DBG_ATTACH.sub("", text)
    return _common(text)


def _strip_debug_sections(lines: list[str]) -> list[str]:
    out, skipping = [], False
    for line in lines:
        s = line.strip()
        if s.startswith(".section"):
            skipping = ".debug" in s
            if skipping:
                continue
        elif skipping and (s.startswith((".text", ".amdgpu_metadata")) or s == "}"):
            skipping = False
            if s == "}":
                continue
        if not skipping:
            out.append(line)
    return out


def normalize_ptx(text: str) -> str:
    lines = []
    for line in _strip_debug_sections(text.splitlines()):
        code = line.split("//", 1)[0].rstrip()
        s = code.strip()
        if (
            not s
            or s.startswith((".loc", ".file"))
            or re.fullmatch(r"\$L__(?:tmp|func_begin|func_end)\d+:", s)
        ):
            continue
        lines.append(code)
    return _common("\n".join(lines))


def normalize_amdgcn(text: str) -> str:
    lines = []
    for line in _strip_debug_sections(text.splitlines()):
        code = line.split(";", 1)[0].rstrip()
        s = code.strip()
        if (
            not s
            or s.startswith((".loc", ".file", ".ident"))
            or re.fullmatch(r"\.L(?:tmp|func_begin)\d+:", s)
        ):
            continue
        lines.append(code)
    return _common("\n".join(lines))


_SASS_ADDR = re.compile(r"/\*[0-9a-f]{4,}\*/")
_SASS_ENC = re.compile(r"/\*\s*0x[0-9a-f]{16}\s*\*/")


def normalize_sass(text: str) -> str:
    lines = []
    for line in text.splitlines():
        s = _SASS_ENC.sub("", _SASS_ADDR.sub("", line)).strip()
        if (
            not s
            or s.startswith(
                (
                    "Fatbin",
                    "=====",
                    "code for",
                    "arch =",
                    "host =",
                    "compile_size",
                    ".headerflags",
                    "Resource usage:",
                    "Common:",
                    "GLOBAL:",
                    "REG:",
                )
            )
            or (s.startswith("Function ") and s.endswith(":"))
        ):  # -res-usage lines are metrics
            continue
        lines.append(_SPACES.sub(" ", s))
    return _common("\n".join(lines))


_BY_STAGE = {
    "ttir": normalize_mlir,
    "ttgir": normalize_mlir,
    "llir": normalize_llir,
    "ptx": normalize_ptx,
    "amdgcn": normalize_amdgcn,
    "sass": normalize_sass,
}


#: Lines that name the target or toolchain rather than code: module attributes, data layouts,
#: target triples, ISA versions. Between releases they change for every kernel.
_HEADER = re.compile(
    r"^\s*(?:module attributes|target datalayout|target triple|\.version|\.target|"
    r"\.amdgcn_target|amdhsa\.target:|\.amdhsa_code_object_version|\.elftype)\b"
)


def strip_header(text: str) -> str:
    """The text without its header lines (see ``_HEADER``): what is left is code."""
    return "\n".join(ln for ln in text.splitlines() if not _HEADER.match(ln))


def normalize(stage: str, text: str) -> str:
    """The normalised text of one stage (unknown stages get only paths and hashes masked), IR
    stages with readable canonical names (see :mod:`.canonical`)."""
    fn = _BY_STAGE.get(stage, _common)
    return canonical.readable(stage, fn(text).strip()).strip() + "\n"


def code_text(stage: str, text: str) -> str:
    """What decides whether a normalised stage changed: its strict canonical form (value names
    reduced to numbers), so printer renumbering and name hints are not changes."""
    return canonical.strict(stage, text)


def stage_hash(text: str, stage: str | None = None) -> str:
    """The hash of a normalised stage; with ``stage``, of its strict canonical form."""
    if stage is not None:
        text = code_text(stage, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
