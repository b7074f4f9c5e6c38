"""What to compile: kernel specialisations declared next to the kernels, and where they come from.

A kernel file (the suite's ``tritonwatch/ops/kernels/*.py``, a user's ``--kernels FILE``, or a
module named by an entry point in the ``tritonwatch`` group) imports only ``triton``,
``triton.language`` and the standard library, and declares a module-level ``COMPILE_SPECS`` list
of plain dicts, one per specialisation::

    COMPILE_SPECS = [
        {"name": "add_fp32_b1024",            # stable name of the specialisation
         "kernel": "add_kernel",              # the @triton.jit function in this file
         "signature": {"x_ptr": "*fp32", "y_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32",
                       "BLOCK": "constexpr"},
         "constexprs": {"BLOCK": 1024},
         "divisibility": ["x_ptr", "y_ptr", "out_ptr", "n"],   # multiples of 16 (optional)
         "num_warps": 4, "num_stages": 3,                      # optional (stages: per target)
         "options": {"num_ctas": 1},                           # more compile options (optional)
         "targets": ["sm90", "sm100"]},                        # only these targets (optional)
    ]

One dict per autotune config: write the configs out (a loop in the file is fine). Plain dicts keep
the file importable where tritonwatch is not installed; :class:`CompileSpec` is the validated form.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import hashlib
import importlib
import importlib.util
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from .capture import read_spec_file
from .kernels import expand, inspect_kernel, validate

#: Entry points here name a module whose file declares COMPILE_SPECS. A group of its own because
#: the ``tritonwatch`` plugin group calls ``register(registry)`` on every entry it holds.
ENTRY_POINT_GROUP = "tritonwatch.kernels"
_KNOWN_KEYS = {
    "name",
    "kernel",
    "signature",
    "constexprs",
    "divisibility",
    "num_warps",
    "num_stages",
    "options",
    "targets",
    "requires",
    "triton_before",
    "args",
    "configs",
    "file",
    "as_launched",
}
#: Hardware features a spec may require, and the targets that have them.
FEATURES = {
    "fp8": lambda t: (
        (t.startswith("sm") and int(t[2:].rstrip("a")) >= 89)
        or t in ("gfx942", "gfx950")
        or t.startswith("gfx12")
    ),
}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"3.9.0+git1234"`` -> ``(3, 9, 0)``; enough to order Triton releases."""
    parts = []
    for p in re.split(r"[.+-]", version):
        if not p.isdigit():
            break
        parts.append(int(p))
    return tuple(parts)


@dataclass(frozen=True)
class CompileSpec:
    """One specialisation of one kernel: everything ``triton.compile`` needs except the target."""

    name: str
    kernel: str
    file: str
    signature: dict[str, str]
    constexprs: dict[str, Any] = field(default_factory=dict)
    divisibility: tuple[str, ...] = ()
    num_warps: int = 4
    num_stages: int | None = None  # None: the target's own default (3 on NVIDIA, 2 on AMD)
    options: dict[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] | None = None
    requires: tuple[str, ...] = ()
    triton_before: str | None = None

    @classmethod
    def from_dict(
        cls, d: Any, *, file: str, index: int = 0, check_values: bool = True
    ) -> CompileSpec:
        """Validate one entry of a ``COMPILE_SPECS`` list; errors name the file and the entry."""
        where = f"COMPILE_SPECS[{index}]"
        if not isinstance(d, dict):
            raise InputError(f"{where} is a {type(d).__name__}, expected a dict", path=file)
        unknown = sorted(set(d) - _KNOWN_KEYS)
        if unknown:
            raise InputError(
                f"{where} has unknown key(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(_KNOWN_KEYS))}",
                path=file,
            )
        for key in ("kernel", "signature"):
            if key not in d:
                raise InputError(f"{where} needs {key!r}", path=file)
        sig = d["signature"]
        if not isinstance(sig, dict) or not all(isinstance(v, str) for v in sig.values()):
            raise InputError(
                f"{where}: signature must map argument names to type strings", path=file
            )
        consts = dict(d.get("constexprs") or {})
        missing = [k for k, v in sig.items() if v == "constexpr" and k not in consts]
        if missing and check_values:
            raise InputError(
                f"{where}: constexpr argument(s) {', '.join(missing)} need a value in 'constexprs'",
                path=file,
            )
        targets = d.get("targets")
        if targets is not None:
            targets = tuple(parse_targets(",".join(targets)))
        try:
            json.dumps(consts)
        except TypeError:
            raise InputError(
                f"{where}: constexprs must be JSON values (numbers, strings, booleans)", path=file
            ) from None
        requires = d.get("requires") or ()
        requires = (requires,) if isinstance(requires, str) else tuple(requires)
        bad = [f for f in requires if f not in FEATURES]
        if bad:
            raise InputError(
                f"{where}: unknown required feature(s) {', '.join(bad)}; known: "
                f"{', '.join(sorted(FEATURES))}",
                path=file,
            )
        before = d.get("triton_before")
        if before is not None and not version_tuple(str(before)):
            raise InputError(f"{where}: triton_before must be a version like '3.9'", path=file)
        name = str(d.get("name") or _default_name(d))
        kernel = str(d["kernel"])
        if ":" in kernel:  # module:name -- the worker imports the module by name
            file, kernel = kernel.split(":", 1)
        elif d.get("file"):  # a captured kernel defined in a script: its file
            file = str(Path(str(d["file"])).resolve())
        else:
            file = str(Path(file).resolve())
        return cls(
            name=name,
            kernel=kernel,
            file=file,
            signature=dict(sig),
            constexprs=consts,
            divisibility=tuple(d.get("divisibility") or ()),
            num_warps=int(d.get("num_warps", 4)),
            num_stages=None if d.get("num_stages") is None else int(d["num_stages"]),
            options=dict(d.get("options") or {}),
            targets=targets,
            requires=requires,
            triton_before=None if before is None else str(before),
        )

    def compile_options(self) -> dict[str, Any]:
        """What ``triton.compile`` is given; a ``num_stages`` left out is the backend's own
        default, as for a launch that does not pass one (3 on NVIDIA, 2 on AMD)."""
        stages = {} if self.num_stages is None else {"num_stages": self.num_stages}
        return {"num_warps": self.num_warps, **stages, **self.options}

    def key(self) -> dict[str, Any]:
        """Everything that decides the compiled code, as JSON (for cache keys)."""
        return {
            "kernel": self.kernel,
            "signature": self.signature,
            "constexprs": self.constexprs,
            "divisibility": list(self.divisibility),
            "options": self.compile_options(),
        }

    def applies_to(self, target: str) -> bool:
        return self.why_not(target) is None

    def why_not(self, target: str, triton_version: str | None = None) -> str | None:
        """Why this spec is not compiled for ``target`` with that Triton, or None if it is."""
        if self.targets is not None and target not in self.targets:
            return f"declared only for {', '.join(self.targets)}"
        for feature in self.requires:
            if not FEATURES[feature](target):
                return f"requires {feature}, which {target} lacks"
        before = self.triton_before
        if before and triton_version and version_tuple(triton_version) >= version_tuple(before):
            return f"needs triton < {before}"
        return None


def _default_name(d: dict[str, Any]) -> str:
    body = json.dumps(
        {k: d.get(k) for k in sorted(_KNOWN_KEYS - {"name"})}, sort_keys=True, default=str
    )
    kernel = str(d["kernel"]).rsplit(":", 1)[-1]
    return f"{kernel}-{hashlib.sha256(body.encode()).hexdigest()[:8]}"


#: Targets Triton's NVIDIA and AMD backends compile for. ``sm90a``/``sm100a`` compile as their
#: plain capability (Triton already emits sm_90a/sm_100a code for capability 90/100).
KNOWN_TARGETS = (
    "sm70", "sm75", "sm80", "sm86", "sm87", "sm89", "sm90", "sm90a", "sm100", "sm100a",
    "sm101", "sm103", "sm110", "sm120", "sm120a", "sm121",
    "gfx90a", "gfx908", "gfx940", "gfx941", "gfx942", "gfx950",
    "gfx1030", "gfx1100", "gfx1101", "gfx1102", "gfx1150", "gfx1151", "gfx1200", "gfx1201",
    "gfx1250",
)  # fmt: skip


def parse_targets(text: str) -> list[str]:
    """``"sm80, sm_90a,gfx942"`` -> ``["sm80", "sm90a", "gfx942"]``; unknown names (a typo such
    as ``sm91``) raise UsageError listing the valid ones."""
    out = []
    for t in (p.strip().lower().replace("sm_", "sm") for p in text.split(",")):
        if not t:
            continue
        if t not in KNOWN_TARGETS:
            close = difflib.get_close_matches(t, KNOWN_TARGETS, n=2)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise UsageError(
                f"unknown target {t!r}; {hint}valid targets: {', '.join(KNOWN_TARGETS)}"
            )
        if t not in out:
            out.append(t)
    if not out:
        raise UsageError("no targets given; use e.g. --targets sm90,gfx942")
    return out


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _import_file(path: Path) -> Any:
    name = "tw_specs_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError("not a Python file", path=str(path))
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except ModuleNotFoundError as e:
        raise InputError(
            f"cannot import {e.name!r}; install it in the Python tritonwatch runs in (spec "
            "files are read there) and in each build environment, or put its folder on "
            "PYTHONPATH (the compile workers inherit it)",
            path=str(path),
        ) from None
    except Exception as e:  # noqa: BLE001 - a user's file can raise anything
        raise InputError(f"importing failed: {type(e).__name__}: {e}", path=str(path)) from None
    return mod


def load_file(path: str | Path) -> list[CompileSpec]:
    """The specs a kernel file declares in ``COMPILE_SPECS`` (the file is imported by path)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError("no such kernel file", path=str(p))
    raw: Any
    if p.suffix == ".json":  # written by `tritonwatch capture`
        mod, raw = None, read_spec_file(p.resolve())
    else:
        mod = _import_file(p.resolve())
        raw = getattr(mod, "COMPILE_SPECS", None)
    if raw is None:
        raise InputError("defines no COMPILE_SPECS list; see docs/blast.md", path=str(p))
    if not isinstance(raw, (list, tuple)):
        raise InputError("COMPILE_SPECS must be a list of dicts", path=str(p))
    specs: list[CompileSpec] = []
    for i, d in enumerate(raw):
        CompileSpec.from_dict(d, file=str(p), index=i, check_values=False)  # shape first
        where = f"COMPILE_SPECS[{i}]"
        obj = _kernel_object(mod, d, where, p)
        info = inspect_kernel(obj, where, str(p))
        for e in expand(d, info, where, str(p)):
            validate(e, info, where, str(p))
            specs.append(CompileSpec.from_dict(e, file=str(p), index=i))
    return specs


def _kernel_object(mod: Any, d: dict[str, Any], where: str, path: Path) -> Any:
    """The object a spec's ``kernel`` names: ``name`` in the file (the spec's own, or the one its
    ``file`` names), or ``module:name``."""
    ref = str(d["kernel"])
    if ":" not in ref and d.get("file"):
        kernel_file = Path(str(d["file"]))
        if not kernel_file.is_file():
            raise InputError(f"{where}: no kernel file {kernel_file}", path=str(path))
        mod, path = _import_file(kernel_file.resolve()), kernel_file
    if ":" in ref:
        module, name = ref.split(":", 1)
        try:
            owner = importlib.import_module(module)
        except ImportError as e:
            raise InputError(
                f"{where}: cannot import {module!r} ({type(e).__name__}: {e}); install it or put "
                "its folder on PYTHONPATH",
                path=str(path),
            ) from None
        except Exception as e:  # noqa: BLE001 - a library's import can raise anything
            raise InputError(
                f"{where}: importing {module!r} failed: {type(e).__name__}: {e}", path=str(path)
            ) from None
        if not hasattr(owner, name):
            raise InputError(
                f"{where}: module {module} has no kernel named {name!r}", path=str(path)
            )
        return getattr(owner, name)
    if not hasattr(mod, ref):
        raise InputError(
            f"{where} names kernel {ref!r}, which the file does not define (or import)",
            path=str(path),
        )
    return getattr(mod, ref)


def _declares_specs(path: Path) -> bool:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else ([node.target] if isinstance(node, ast.AnnAssign) else [])
        )
        if any(isinstance(t, ast.Name) and t.id == "COMPILE_SPECS" for t in targets):
            return True
    return False


def suite_files() -> list[Path]:
    """The suite's kernel files (``tritonwatch/ops/kernels/*.py``) that declare specs."""
    folder = Path(__file__).resolve().parent.parent / "ops" / "kernels"
    return sorted(p for p in folder.glob("*.py") if p.name != "__init__.py" and _declares_specs(p))


def entry_point_files() -> list[Path]:
    """Kernel files named by entry points in the ``tritonwatch.kernels`` group.

    ``[project.entry-points."tritonwatch.kernels"] mylib = "mylib.triton_kernels"``: the value
    is a module whose file declares ``COMPILE_SPECS``. It is located, not imported, here (the
    compile worker imports it by path in each environment). A module that cannot be found or
    declares no specs is an error naming the entry point.
    """
    out = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        module = ep.value.split(":", 1)[0].strip()
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.origin or not found.origin.endswith(".py"):
            raise InputError(
                f"entry point {ep.name} = {ep.value!r} in group {ENTRY_POINT_GROUP}: "
                "no such Python module; fix or uninstall the package that declares it"
            )
        p = Path(found.origin)
        if not _declares_specs(p):
            raise InputError(
                f"entry point {ep.name} ({ENTRY_POINT_GROUP}) names a module that "
                "declares no COMPILE_SPECS",
                path=str(p),
            )
        out.append(p)
    return sorted(set(out))


def sample_file() -> Path:
    return Path(__file__).resolve().parent / "sample_kernels.py"


#: ``--kernels suite`` names the suite's kernel files (plus entry-point ones).
SUITE = "suite"


def default_files() -> list[Path]:
    """The suite's kernel files plus entry-point ones; the bundled samples if there are none."""
    files = suite_files() + [p for p in entry_point_files() if p not in suite_files()]
    return files or [sample_file()]


def load_specs(
    files: Iterable[str | Path] | None = None, *, pattern: str | None = None
) -> list[CompileSpec]:
    """Specs from ``files`` (default: :func:`default_files`), filtered by ``-k PATTERN``.

    ``pattern`` matches ``kernel``, spec name, or ``file-stem.spec`` as a shell glob, or as a
    substring when it has no glob characters. Two specs of one kernel file with the same name
    are an error (names must be stable and unique to compare builds).
    """
    paths: list[Path] = []
    for f in files or ["suite"]:
        if str(f) == SUITE and not Path(f).exists():  # the suite's files, beside a user's own
            paths += [p for p in default_files() if p not in paths]
        elif Path(f) not in paths:
            paths.append(Path(f))
    specs: list[CompileSpec] = []
    seen: dict[tuple[str, str], str] = {}
    for p in paths:
        for s in load_file(p):
            k = (s.kernel, s.name)
            if k in seen:
                raise InputError(
                    f"two specs named {s.name!r} for kernel {s.kernel!r}; make names unique",
                    path=str(p),
                )
            seen[k] = s.file
            specs.append(s)
    if pattern:
        specs = [s for s in specs if matches(s, pattern)]
    return specs


def matches(spec: CompileSpec, pattern: str) -> bool:
    stem = Path(spec.file).stem if Path(spec.file).is_absolute() else spec.file.rsplit(".", 1)[-1]
    names = (spec.kernel, spec.name, f"{stem}.{spec.name}")
    if any(c in pattern for c in "*?["):
        return any(fnmatch.fnmatchcase(n, pattern) for n in names)
    return any(pattern in n for n in names)


def dtype_of(spec: CompileSpec) -> str:
    """The element type of the first pointer argument (``*fp16`` -> ``fp16``), else ``-``."""
    for v in spec.signature.values():
        if v.startswith("*"):
            return v[1:]
    return "-"


__all__ = [
    "CompileSpec",
    "default_files",
    "load_file",
    "load_specs",
    "parse_targets",
    "suite_files",
]
