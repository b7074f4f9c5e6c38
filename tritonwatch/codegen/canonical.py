"""Canonical names for IR text: what two builds print differently for the same code goes.

MLIR (TTIR, TTGIR) and LLVM IR name values by printer bookkeeping, not by meaning: SSA values are
numbered or named after source variables (``%5``, ``%acc_12``), constants hoisted to the top of a
function come in any order, attribute aliases (``#blocked3``), LLVM metadata (``!12``) and
attribute groups (``#4``) are numbered in the order the printer met them, and blocks are
numbered (``^bb2``, ``7:``). Two compilers that emit the same code can differ in all of these.

Two forms, both consistent renamings (never two names to one, so no real change is hidden):

- :func:`readable`: each name keeps its stem (``%acc``, ``%c64_i32``, ``#blocked``) and gets a
  number per stem in order of first appearance within its function; runs of constants are
  sorted. Diffs are shown in this form: a renamed value shifts only the values of its own stem.
- :func:`strict`: the readable form with stems dropped too (``%v0``, ``%v1``, ...), so text that
  differs only in how values are named (source-variable name hints present or not) is equal.
  Stage hashes and "where did it first change" use this form.

Pure functions over text, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# An SSA value or block argument: %name or %N (MLIR and LLVM). LLVM's quoted names (%"a b") are
# not produced by Triton and are left alone.
_VALUE = re.compile(r"%([A-Za-z$._\-][\w$.\-]*|\d+)")
_BLOCK = re.compile(r"\^([\w$.\-]+)")
_LLVM_LABEL = re.compile(r"^([\w$.\-]+):", re.MULTILINE)
_META = re.compile(r"(?<![\w!])!(\d+)\b")
_ATTR_GROUP = re.compile(r"(?<![\w#])#(\d+)\b")
_MLIR_ALIAS_DEF = re.compile(r"^#([A-Za-z_][\w$.]*) = ", re.MULTILINE)
_STEM_SUFFIX = re.compile(r"(?:_\d+)+$")
_FUNC_START = re.compile(r"^\s*(?:tt\.func|llvm\.func|func\.func|define)\b")
_CONSTANT = re.compile(r"^\s*%[\w$.\-]+ = arith\.constant ")


def _stem(name: str) -> str:
    """``acc_12`` -> ``acc``; ``c0_i32_3`` -> ``c0_i32``; ``17`` -> ``""``."""
    if name.isdigit():
        return ""
    return _STEM_SUFFIX.sub("", name)


class _Namer:
    """Maps names to ``stem`` + per-stem counter in first-appearance order (one scope)."""

    def __init__(self, fmt: Callable[[str, int], str], *, strict: bool = False) -> None:
        self.fmt = fmt
        self.strict = strict  # one counter for all stems
        self.names: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, name: str, stem: str) -> str:
        out = self.names.get(name)
        if out is None:
            stem = "" if self.strict else stem
            k = self.counts.get(stem, 0)
            self.counts[stem] = k + 1
            out = self.names[name] = self.fmt(stem, k)
        return out


def _value_fmt(prefix: str) -> Callable[[str, int], str]:
    def fmt(stem: str, k: int) -> str:
        if not stem:
            return f"{prefix}{k}"
        return f"{prefix}{stem}" if k == 0 else f"{prefix}{stem}_{k}"

    return fmt


def _strict_fmt(prefix: str) -> Callable[[str, int], str]:
    return lambda _stem, k: f"{prefix}{k}"


def _outside_strings(line: str, fn: Callable[[str], str]) -> str:
    """Apply ``fn`` to the parts of ``line`` outside double-quoted strings (inline asm, names)."""
    if '"' not in line:
        return fn(line)
    parts = line.split('"')
    return '"'.join(fn(p) if i % 2 == 0 else p for i, p in enumerate(parts))


def _sort_constant_runs(lines: list[str]) -> list[str]:
    """Sort each run of consecutive ``arith.constant`` lines by what they define (not by name):
    constants have no operands, so their order carries no meaning."""
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:
        if _CONSTANT.match(line):
            run.append(line)
            continue
        if run:
            out += sorted(run, key=lambda ln: ln.split(" = ", 1)[1])
            run = []
        out.append(line)
    return out[:-1]


def _rename_mlir_aliases(text: str, strict: bool) -> str:
    """Name attribute aliases by what they stand for, not by the order the printer met them:
    per stem (``blocked``, ``mma``, ``shared``), in the sorted order of their definitions."""
    lines = text.splitlines()
    defs = {m.group(1): ln[m.end() :] for ln in lines if (m := _MLIR_ALIAS_DEF.match(ln))}
    if not defs:
        return text
    namer = _Namer(_strict_fmt("a") if strict else _alias_fmt, strict=strict)
    by_content = sorted(defs, key=lambda n: (re.sub(r"\d+$", "", n), defs[n]))
    mapping = {n: namer(n, re.sub(r"\d+$", "", n)) for n in by_content}
    pat = re.compile(r"#(" + "|".join(re.escape(n) for n in sorted(defs, key=len)[::-1]) + r")\b")
    renamed = [
        _outside_strings(ln, lambda p: pat.sub(lambda m: "#" + mapping[m.group(1)], p))
        for ln in lines
    ]
    head = sorted(ln for ln in renamed if _MLIR_ALIAS_DEF.match(ln))
    return "\n".join(head + [ln for ln in renamed if not _MLIR_ALIAS_DEF.match(ln)])


def _alias_fmt(stem: str, k: int) -> str:
    return stem if k == 0 else f"{stem}{k}"


class _Scope:
    """Value and block names of one function."""

    def __init__(self, strict: bool) -> None:
        self.values = _Namer(_strict_fmt("%v") if strict else _value_fmt("%"), strict=strict)
        self.blocks = _Namer(_strict_fmt("bb"), strict=True)  # numbered in both forms

    def value(self, m: re.Match[str]) -> str:
        return self.values(m.group(1), _stem(m.group(1)))

    def block(self, m: re.Match[str]) -> str:
        return "^" + self.blocks(m.group(1), _stem(m.group(1)))

    def sub(self, part: str) -> str:
        return _BLOCK.sub(self.block, _VALUE.sub(self.value, part))


def _rename_values(lines: list[str], strict: bool, *, llvm: bool) -> list[str]:
    scope = _Scope(strict)
    out = []
    for line in lines:
        if _FUNC_START.match(line):  # value and block names are local to a function
            scope = _Scope(strict)
        if llvm:
            m = _LLVM_LABEL.match(line)
            if m and not line.startswith(("define", "declare")):
                # an LLVM block label "7:" names the value %7
                out.append(scope.value(m)[1:] + ":" + line[m.end() :])
                continue
        out.append(_outside_strings(line, scope.sub))
    return out


def _strip_llvm_comment(line: str) -> str:
    if ";" not in line:
        return line
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            return line[:i].rstrip()
    return line


def _renumber(text: str, pattern: re.Pattern[str], sigil: str) -> str:
    order: dict[str, str] = {}

    def one(m: re.Match[str]) -> str:
        n = m.group(1)
        if n not in order:
            order[n] = str(len(order))
        return sigil + order[n]

    lines = [_outside_strings(ln, lambda p: pattern.sub(one, p)) for ln in text.splitlines()]
    return "\n".join(lines)


def canonical_mlir(text: str, *, strict: bool = False) -> str:
    """MLIR (TTIR/TTGIR, locations already stripped) with canonical names (see module doc)."""
    text = _rename_mlir_aliases(text, strict)
    lines = _sort_constant_runs(text.splitlines())
    return "\n".join(_rename_values(lines, strict, llvm=False))


def canonical_llir(text: str, *, strict: bool = False) -> str:
    """LLVM IR (debug info already stripped) with canonical names: values and block labels per
    function, metadata and attribute groups renumbered by first appearance, comments dropped."""
    lines = [_strip_llvm_comment(ln) for ln in text.splitlines()]
    lines = [ln for ln in lines if ln.strip() or not ln]
    text = "\n".join(_rename_values(lines, strict, llvm=True))
    text = _renumber(text, _META, "!")
    text = _renumber(text, _ATTR_GROUP, "#")
    return re.sub(r"\n{3,}", "\n\n", text)


_BY_STAGE = {"ttir": canonical_mlir, "ttgir": canonical_mlir, "llir": canonical_llir}


def readable(stage: str, text: str) -> str:
    """The readable canonical form of a normalised stage (unchanged for stages it does not know)."""
    fn = _BY_STAGE.get(stage)
    return fn(text) if fn else text


def strict(stage: str, text: str) -> str:
    """The strict canonical form (names reduced to numbers) of a readable or normalised stage."""
    fn = _BY_STAGE.get(stage)
    return fn(text, strict=True) if fn else text


# SASS registers: general (R), uniform (UR), predicate (P), uniform predicate (UP) and barrier
# (B) registers; RZ, URZ, PT and UPT are constants and keep their names.
_SASS_REG = re.compile(r"\b(UR|UP|R|P|B)(\d+)\b")


def sass_modulo_registers(text: str) -> str:
    """Normalised SASS with its registers renamed in order of first appearance (per kind): two
    texts equal here differ only in register allocation."""
    seen: dict[tuple[str, str], str] = {}
    counts: dict[str, int] = {}

    def one(m: re.Match[str]) -> str:
        key = (m.group(1), m.group(2))
        if key not in seen:
            k = counts.get(m.group(1), 0)
            counts[m.group(1)] = k + 1
            seen[key] = f"{m.group(1)}{k}"
        return seen[key]

    return _SASS_REG.sub(one, text)
