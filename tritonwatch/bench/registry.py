"""Name -> operator and providers; rejects duplicates; expands a suite into cases and says which
cannot run here and why.

Worker side: imports only the stdlib. Operators get here through :mod:`tritonwatch.plugins`,
the built-in suite exactly like a third-party package.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BenchError, InputError, UsageError
from .spec import DTYPES, Case, DeviceInfo, Operator, Provider

SUITES = ("smoke", "nightly")
# The interpreter runs a kernel in numpy one program at a time: beyond ~1e8 FLOPs or bytes a
# single case takes minutes, so bigger Triton cases are skipped on CPU with this reason.
INTERPRETER_MAX_WORK = 1e8


@functools.cache  # asked once per Triton case while planning; the answer cannot change
def _version(dist: str) -> tuple[int, ...] | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version(dist)
    except PackageNotFoundError:
        return None
    return tuple(int(x) for x in re.findall(r"\d+", text)[:2])


def interpreter_problem(
    triton: tuple[int, ...] | None = None, numpy: tuple[int, ...] | None = None
) -> str | None:
    """Why the installed Triton's interpreter cannot run kernels here (None if it can).

    Triton 3.6's interpreter converts 1-element arrays with ``int()``, which numpy 2.4 refuses
    ("only 0-dimensional arrays can be converted to Python scalars"); Triton 3.7 fixed it.
    """
    triton = triton or _version("triton")
    numpy = numpy or _version("numpy")
    if triton and numpy and triton < (3, 7) and numpy >= (2, 4):
        t, n = ".".join(map(str, triton)), ".".join(map(str, numpy))
        return (
            f"Triton {t}'s interpreter fails with numpy {n} (fixed in Triton 3.7); "
            "pip install 'numpy<2.4' to check Triton kernels on this CPU"
        )
    return None


class Registry:
    """Operators and their providers, by name."""

    def __init__(self) -> None:
        self.operators: dict[str, Operator] = {}
        self.providers: dict[str, dict[str, Provider]] = {}
        self.origin: dict[str, str] = {}
        # Whoever is registering right now (set by plugins.load), so errors name the culprit.
        self.current_plugin = "(direct)"

    def add_operator(self, op: Operator) -> None:
        if op.name in self.operators:
            raise BenchError(
                f"operator {op.name!r} registered twice (by "
                f"{self.origin[op.name]} and {self.current_plugin}); rename one"
            )
        bad = [d for d in op.dtypes if d not in DTYPES]
        if bad:
            raise BenchError(
                f"operator {op.name!r} uses unknown dtype(s) {bad}; known: {list(DTYPES)}"
            )
        self.operators[op.name] = op
        self.providers.setdefault(op.name, {})
        self.origin[op.name] = self.current_plugin

    def add_provider(self, p: Provider) -> None:
        if p.operator not in self.operators:
            raise BenchError(
                f"provider {p.key!r} is for unknown operator {p.operator!r}; "
                "register the operator first"
            )
        provs = self.providers[p.operator]
        if p.key in provs:
            raise BenchError(f"provider {p.key!r} of {p.operator!r} registered twice")
        provs[p.key] = p

    def operator(self, name: str) -> Operator:
        try:
            return self.operators[name]
        except KeyError:
            raise UsageError(
                f"unknown operator {name!r}; valid: {', '.join(sorted(self.operators))}"
            ) from None

    def provider(self, operator: str, key: str) -> Provider:
        provs = self.providers.get(operator, {})
        try:
            return provs[key]
        except KeyError:
            raise UsageError(
                f"unknown provider {key!r} for {operator}; valid: {', '.join(provs)}"
            ) from None

    def provider_names(self) -> list[str]:
        """Every name ``--provider`` accepts: provider names and ``name/variant`` keys."""
        names: set[str] = set()
        for provs in self.providers.values():
            for p in provs.values():
                names.update((p.name, p.key))
        return sorted(names)

    def why_not(self, case: Case, device: DeviceInfo) -> str | None:
        """None if the case can run on ``device``, else the reason it cannot."""
        p = self.provider(case.operator, case.provider_key)
        if p.dtypes is not None and case.dtype not in p.dtypes:
            return f"{p.key} does not support {case.dtype}"
        return p.available(device, case.dtype)


@dataclass(frozen=True)
class SuiteEntry:
    """One ``[[cases]]`` table of a suite file (or one operator of a built-in suite)."""

    operator: str
    shapes: list[dict[str, int]] | str
    providers: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    line: int | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    entries: list[SuiteEntry] | None  # None: every operator with the named built-in shape set
    path: str | None = None
    builtin: str = "smoke"


@dataclass
class Plan:
    """The cases to run, and those that cannot run here with the reason."""

    cases: list[Case] = field(default_factory=list)
    skipped: list[tuple[Case, str]] = field(default_factory=list)


def load_suite(name: str) -> Suite:
    """A built-in suite (``smoke``/``nightly``) or a suite TOML file."""
    if name in SUITES:
        return Suite(name=name, entries=None, builtin=name)
    path = Path(name)
    if not path.suffix == ".toml":
        raise UsageError(f"unknown suite {name!r}; use smoke, nightly or a FILE.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read suite file ({e.strerror})", path=name) from None
    return parse_suite(text, name)


def _line_of_tables(text: str) -> list[int]:
    return [
        i + 1 for i, ln in enumerate(text.splitlines()) if re.match(r"\s*\[\[\s*cases\s*\]\]", ln)
    ]


def parse_suite(text: str, path: str) -> Suite:
    """Parse a suite file; every error names the file and line.

    Format::

        [suite]
        name = "mine"            # optional; defaults to the file name
        shapes = "smoke"         # built-in shape set for entries that give none

        [[cases]]
        operator = "matmul"
        providers = ["triton", "torch"]   # optional: all
        dtypes = ["fp16"]                 # optional: the operator's dtypes
        shapes = [{M = 256, N = 256, K = 256}]   # or "smoke" / "nightly"
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise InputError(
            f"not valid TOML: {e}", path=path, line=int(m.group(1)) if m else None
        ) from None
    lines = _line_of_tables(text)
    head = data.get("suite", {})
    unknown_top = sorted(set(data) - {"suite", "cases"})
    if unknown_top:
        raise InputError(
            f"unknown table(s) {unknown_top}; expected [suite] and [[cases]]", path=path, line=1
        )
    default_shapes = head.get("shapes", "smoke")
    if default_shapes not in SUITES:
        raise InputError(f"suite.shapes must be one of {list(SUITES)}", path=path, line=1)
    entries = []
    tables = data.get("cases", [])
    if not isinstance(tables, list) or not tables:
        raise InputError("a suite file needs at least one [[cases]] table", path=path, line=1)
    for i, t in enumerate(tables):
        line = lines[i] if i < len(lines) else None
        extra = sorted(set(t) - {"operator", "providers", "dtypes", "shapes"})
        if extra:
            raise InputError(
                f"unknown key(s) {extra} in [[cases]]; expected operator, providers, "
                "dtypes, shapes",
                path=path,
                line=line,
            )
        if not isinstance(t.get("operator"), str):
            raise InputError('[[cases]] needs operator = "NAME"', path=path, line=line)
        shapes = t.get("shapes", default_shapes)
        if isinstance(shapes, str):
            if shapes not in SUITES:
                raise InputError(
                    f"shapes = {shapes!r}: use {list(SUITES)} or a list of tables",
                    path=path,
                    line=line,
                )
        elif not (
            isinstance(shapes, list)
            and all(
                isinstance(s, dict) and s and all(isinstance(v, int) and v > 0 for v in s.values())
                for s in shapes
            )
        ):
            raise InputError(
                "shapes must be a list of tables of positive integers, e.g. "
                "[{M = 128, N = 128, K = 128}]",
                path=path,
                line=line,
            )
        for key in ("providers", "dtypes"):
            v = t.get(key)
            if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                raise InputError(f"{key} must be a list of strings", path=path, line=line)
        entries.append(
            SuiteEntry(
                operator=t["operator"],
                shapes=shapes,
                providers=tuple(t["providers"]) if t.get("providers") else None,
                dtypes=tuple(t["dtypes"]) if t.get("dtypes") else None,
                line=line,
            )
        )
    return Suite(
        name=head.get("name", Path(path).stem), entries=entries, path=path, builtin=default_shapes
    )


def _check_names(given: Iterable[str], valid: Sequence[str], what: str) -> None:
    for g in given:
        if g not in valid:
            raise UsageError(f"unknown {what} {g!r}; valid: {', '.join(valid)}")


def _provider_matches(p: Provider, wanted: Sequence[str] | None) -> bool:
    return wanted is None or p.name in wanted or p.key in wanted


def expand(
    registry: Registry,
    suite: Suite,
    device: DeviceInfo,
    *,
    providers: Sequence[str] | None = None,
    dtypes: Sequence[str] | None = None,
    patterns: Sequence[str] = (),
) -> Plan:
    """The cases of ``suite`` filtered by ``--provider``/``--dtype``/``-k``, split by availability."""
    if providers:
        _check_names(providers, registry.provider_names(), "provider")
    if dtypes:
        _check_names(dtypes, DTYPES, "dtype")
    entries = suite.entries
    if entries is None:
        entries = [SuiteEntry(op, suite.builtin) for op in registry.operators]
    plan = Plan()
    for e in entries:
        if e.operator not in registry.operators:
            where = f"{suite.path}:{e.line}: " if suite.path else ""
            raise InputError(
                f"{where}unknown operator {e.operator!r}; valid: "
                f"{', '.join(sorted(registry.operators))}"
            )
        op = registry.operators[e.operator]
        provs = list(registry.providers[op.name].values())
        if e.providers:
            valid = sorted({p.name for p in provs} | {p.key for p in provs})
            bad = [x for x in e.providers if x not in valid]
            if bad:
                where = f"{suite.path}:{e.line}: " if suite.path else ""
                raise InputError(
                    f"{where}unknown provider(s) {bad} for {op.name}; valid: {', '.join(valid)}"
                )
        shapes = op.shapes.get(e.shapes, []) if isinstance(e.shapes, str) else e.shapes
        for dt in op.dtypes:
            if (e.dtypes and dt not in e.dtypes) or (dtypes and dt not in dtypes):
                continue
            for shape in shapes:
                for p in provs:
                    if not _provider_matches(p, e.providers) or not _provider_matches(p, providers):
                        continue
                    case = Case(op.name, p.name, p.variant, dict(shape), dt, op.mode)
                    if patterns and not any(case.matches(k) for k in patterns):
                        continue
                    reason = registry.why_not(case, device)
                    if reason is None and device.interpreter and p.kind == "triton":
                        reason = interpreter_problem()
                    if reason is None and device.interpreter and p.kind == "triton":
                        work = max(op.flops(case.shape), op.bytes(case.shape, dt))
                        if work > INTERPRETER_MAX_WORK:
                            reason = (
                                f"too large for the Triton interpreter ({work:.2g} FLOPs or "
                                "bytes); it checks smoke shapes, a GPU measures these"
                            )
                    if (
                        reason is None
                        and p.kind == "inductor"
                        and not device.is_gpu
                        and not (providers and ("inductor" in providers or p.key in providers))
                    ):
                        reason = (
                            "inductor on CPU compiles C++ per shape (tens of seconds); "
                            "ask for it with --provider inductor"
                        )
                    if reason is None:
                        plan.cases.append(case)
                    else:
                        plan.skipped.append((case, reason))
    return plan


def describe(registry: Registry, device: DeviceInfo) -> list[dict[str, Any]]:
    """One row per (operator, provider): availability here, per dtype, for ``tritonwatch list``."""
    rows = []
    for op in registry.operators.values():
        for p in registry.providers[op.name].values():
            reasons = {}
            for dt in op.dtypes:
                c = Case(op.name, p.name, p.variant, {}, dt)
                reasons[dt] = registry.why_not(c, device)
            rows.append(
                {
                    "operator": op.name,
                    "family": op.family,
                    "provider": p.key,
                    "kind": p.kind,
                    "smoke": len(op.shapes.get("smoke", [])),
                    "nightly": len(op.shapes.get("nightly", [])),
                    "dtypes": reasons,
                    "description": p.description or op.description,
                }
            )
    return rows
