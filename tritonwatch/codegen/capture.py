"""``tritonwatch capture``: run a command and record every Triton specialisation it launches.

The command runs with a ``sitecustomize`` first on ``PYTHONPATH`` that loads
:mod:`.capture_hook` into each of its Python processes; the hook asks Triton's own binder what
each launch specialises to (on a GPU, and under ``TRITON_INTERPRET=1`` on a CPU) and writes one
JSON line per distinct specialisation. :func:`capture` gathers them, deduplicates across
processes, and writes a spec file (``tritonwatch.specs/1``) that ``blast --kernels`` and
``run --codegen`` read like a ``COMPILE_SPECS`` file, with no hand-written signature.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError

FORMAT = "tritonwatch.specs/1"
_HOOK = Path(__file__).resolve().parent / "capture_hook.py"

_SITECUSTOMIZE = """\
# Written by tritonwatch capture: load the capture hook, then any other sitecustomize.
import importlib.util as _u, sys as _s
_spec = _u.spec_from_file_location("_tritonwatch_capture_hook", {hook!r})
_m = _u.module_from_spec(_spec)
_s.modules["_tritonwatch_capture_hook"] = _m
_spec.loader.exec_module(_m)
_m.install()
_here = {here!r}
_path = list(_s.path)
_s.path[:] = [p for p in _s.path if p != _here]
_me = _s.modules.pop("sitecustomize", None)
try:
    import sitecustomize  # noqa: F401
except ImportError:
    if _me is not None:
        _s.modules["sitecustomize"] = _me  # the import system expects this module there
finally:
    _s.path[:] = _path
"""


@dataclass(frozen=True)
class CaptureResult:
    """What a capture found: the specs written, the kernels they cover, the command's exit code,
    and launches that could not be recorded (one line each)."""

    output: Path
    returncode: int
    specs: tuple[dict[str, Any], ...]
    errors: tuple[str, ...] = field(default=())

    @property
    def kernels(self) -> list[str]:
        return sorted({s["kernel"] for s in self.specs})

    @property
    def headline(self) -> str:
        n, k = len(self.specs), len(self.kernels)
        text = (
            f"Captured {n} specialisation{'s' if n != 1 else ''} of {k} "
            f"kernel{'s' if k != 1 else ''} into {self.output}."
        )
        if self.errors:
            text += f" {len(self.errors)} launch(es) could not be recorded: {self.errors[0]}"
        if self.returncode:
            text += f" The command exited with code {self.returncode}."
        return text


def _kernel_ref(rec: dict[str, Any], importable: bool) -> dict[str, Any]:
    """``module:name`` when the kernel's module can be imported by name, else name + file."""
    if importable:
        return {"kernel": f"{rec['module']}:{rec['name']}"}
    return {"kernel": rec["name"], "file": rec["file"]}


def _import_roots() -> list[Path]:
    """Where a compile worker finds modules by name: site-packages and ``PYTHONPATH``."""
    import site

    roots = [*site.getsitepackages(), site.getusersitepackages()]
    roots += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [Path(r).resolve() for r in roots]


def _importable(module: str, file: str) -> bool:
    """Whether a worker can import ``module`` by name and get ``file`` (a package's module);
    a script's kernels (``__main__``, or a folder the script put on ``sys.path``) are not."""
    if module in ("__main__", "__mp_main__") or not module:
        return False
    target = Path(file).resolve()
    rel = Path(*module.split("."))
    for root in _import_roots():
        if target in ((root / rel).with_suffix(".py"), root / rel / "__init__.py"):
            return True
    return False


def to_specs(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hook records -> spec dicts, deduplicated, in a stable order, each named
    ``kernel-<hash of what it compiles>``."""
    out: dict[str, dict[str, Any]] = {}
    importable: dict[tuple[str, str], bool] = {}
    for rec in records:
        where = (rec["module"], rec["file"])
        if where not in importable:
            importable[where] = _importable(*where)
        spec: dict[str, Any] = {
            **_kernel_ref(rec, importable[where]),
            "signature": rec["signature"],
            "constexprs": rec["constexprs"],
            "divisibility": rec["divisibility"],
            "num_warps": rec["num_warps"],
        }
        if rec.get("num_stages") is not None:
            spec["num_stages"] = rec["num_stages"]
        if rec.get("options"):
            spec["options"] = rec["options"]
        spec["as_launched"] = True
        body = json.dumps(spec, sort_keys=True)
        spec = {"name": f"{rec['name']}-{hashlib.sha256(body.encode()).hexdigest()[:8]}", **spec}
        out.setdefault(body, spec)
    return sorted(out.values(), key=lambda s: (s["kernel"], s["name"]))


def read_records(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    records, errors = [], []
    for f in sorted(folder.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if "error" in rec:
                errors.append(rec["error"])
            else:
                records.append(rec)
    return records, sorted(set(errors))


def capture(
    command: Sequence[str],
    output: str | Path,
    *,
    interpret: bool = False,
    cwd: str | Path | None = None,
) -> CaptureResult:
    """Run ``command`` and write the Triton specialisations it launched to ``output``.

    ``interpret`` sets ``TRITON_INTERPRET=1`` for the command (kernels run on the CPU under
    Triton's interpreter, and the specialisation Triton would use on a GPU is recorded). The
    spec file is written even when the command fails; its exit code is in the result.
    """
    if not command:
        raise UsageError("no command to capture; use `tritonwatch capture -o specs.json -- CMD`")
    out = Path(output)
    if out.parent and not out.parent.exists():
        raise InputError("the folder for the spec file does not exist", path=str(out))
    with tempfile.TemporaryDirectory(prefix="tw-capture-") as tmp:
        boot, records_dir = Path(tmp, "boot"), Path(tmp, "records")
        boot.mkdir()
        records_dir.mkdir()
        (boot / "sitecustomize.py").write_text(
            _SITECUSTOMIZE.format(hook=str(_HOOK), here=str(boot)), encoding="utf-8"
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(boot), env.get("PYTHONPATH")) if p)
        env["TRITONWATCH_CAPTURE_DIR"] = str(records_dir)
        if interpret:
            env["TRITON_INTERPRET"] = "1"
        try:
            rc = subprocess.run(list(command), env=env, cwd=cwd).returncode
        except FileNotFoundError:
            raise UsageError(f"command not found: {command[0]}") from None
        except KeyboardInterrupt:
            rc = 130
        records, errors = read_records(records_dir)
    specs = to_specs(records)
    doc = {"format": FORMAT, "command": list(command), "specs": specs}
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return CaptureResult(output=out, returncode=rc, specs=tuple(specs), errors=tuple(errors))


def read_spec_file(path: Path) -> list[dict[str, Any]]:
    """The spec dicts of a captured (JSON) spec file; ``file`` entries are made absolute."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"not a readable JSON spec file: {e}", path=str(path)) from None
    specs = doc.get("specs") if isinstance(doc, dict) else doc
    if not isinstance(specs, list):
        raise InputError(
            f"a JSON spec file holds {{'format': '{FORMAT}', 'specs': [...]}}", path=str(path)
        )
    out = []
    for d in specs:
        if isinstance(d, dict) and "file" in d:
            d = {**d, "file": str((path.parent / str(d["file"])).resolve())}
        out.append(d)
    return out


__all__ = ["CaptureResult", "capture", "read_spec_file", "to_specs"]
