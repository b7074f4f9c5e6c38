"""The arrows between tritonwatch's packages point down (docs/architecture.md).

Every ``import`` in the package is parsed (type-checking imports too); an import that goes
against the table below fails with the module, line and arrow, so a layer that starts pointing
up or sideways is caught the day it happens, not by the next reviewer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "tritonwatch"

# formats.metrics (the metric table: name, unit, direction) imports nothing and runformat reads
# it, so it belongs to the base; the rest of formats/ is an edge above the store. So does
# analysis.stats (pure numpy/scipy, imports nothing of tritonwatch): the store's overview takes
# its geometric mean from there rather than keeping a copy.
BASE = {"errors", "settings", "runformat", "naming", "version", "formats.metrics", "analysis.stats"}
# What each part may import besides itself (a part is a subpackage or a top-level module).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "naming": set(),
    "version": set(),
    "settings": {"errors"},
    "runformat": {"errors", "formats.metrics"},
    "formats.metrics": set(),
    "analysis.stats": set(),
    "formats": BASE | {"store"},
    "plugins": {"errors", "bench"},
    "testing": BASE | {"bench", "corpus"},
    "corpus": BASE,
    "codegen": BASE,
    # The parent side stores what it measured; the worker side imports no database code
    # (test_the_worker_side_imports_no_database_or_web_code), and the store sees bench.timing only.
    "bench": BASE | {"plugins", "codegen", "analysis", "ops", "store"},
    "ops": BASE | {"bench"},
    "store": BASE | {"bench.timing", "codegen"},
    "analysis": BASE | {"store"},
    "report": BASE | {"store", "analysis", "codegen"},
    "notify": BASE | {"store", "analysis", "report"},
    "push": BASE | {"store", "formats"},
    "web": BASE | {"store", "analysis", "report", "codegen", "formats"},
    "nightly": BASE | {"store", "analysis", "report", "bench", "codegen", "notify", "push"},
    "cli": BASE
    | {"store", "analysis", "report", "bench", "codegen", "ops", "plugins"}
    | {"notify", "push", "nightly", "web", "formats"},
    "__main__": {"cli"},
    "__init__": BASE | {"store", "bench", "analysis", "testing"},
}
# Modules that may not import certain siblings: routes share rules through the modules
# below them, never through each other.
FORBIDDEN_SIBLINGS = {"web.api": {"web.upload", "web.views"}, "web.views": {"web.upload"}}
# Analysis is pure: no network, no subprocesses.
NO_IO = {"analysis": {"httpx", "urllib.request", "socket", "subprocess", "smtplib"}}


def _module(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _part(dotted: list[str], *, target: bool = False) -> str:
    """The part a module belongs to; as a target, bench.timing is a part of its own (the store
    may use its median CI rule, nothing else of the harness)."""
    if len(dotted) == 1:
        return "__init__"
    name = dotted[1]
    if target and name == "bench" and len(dotted) > 2 and dotted[2] == "timing":
        return "bench.timing"
    if name == "formats" and len(dotted) > 2 and dotted[2] == "metrics":
        return "formats.metrics"
    if name == "analysis" and len(dotted) > 2 and dotted[2] == "stats":
        return "analysis.stats"
    return "version" if name == "__version__" else name


def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """(line, dotted target) of every tritonwatch import in a file, relative ones resolved."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here[:-1]
    out: list[tuple[int, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = base + (node.module.split(".") if node.module else [])
            if node.module:
                out.append((node.lineno, mod))
            else:
                out += [(node.lineno, mod + [a.name]) for a in node.names]
    return out


def _files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_every_part_is_in_the_table() -> None:
    parts = {_part(_module(p)) for p in _files()}
    assert parts - set(ALLOWED) == set(), "add the new part to ALLOWED and docs/architecture.md"


def test_imports_point_down() -> None:
    wrong = []
    for path in _files():
        here = _module(path)
        src = _part(here)
        for line, target in _imports(path):
            if target[0] != "tritonwatch":
                continue
            dst = _part(target, target=True)
            if dst == src or (src == "bench" and dst == "bench.timing"):
                continue
            allowed = ALLOWED[src]
            ok = dst in allowed or (dst == "bench.timing" and "bench" in allowed)
            if not ok:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {src} -> {dst}")
    assert wrong == []


@pytest.mark.parametrize("module, siblings", sorted(FORBIDDEN_SIBLINGS.items()))
def test_routes_do_not_import_each_other(module: str, siblings: set[str]) -> None:
    path = PACKAGE / (module.replace(".", "/") + ".py")
    got = {".".join(t[1:3]) for _, t in _imports(path) if t[0] == "tritonwatch"}
    assert got & siblings == set()


@pytest.mark.parametrize("part, banned", sorted(NO_IO.items()))
def test_analysis_does_no_io(part: str, banned: set[str]) -> None:
    wrong = []
    for path in sorted((PACKAGE / part).rglob("*.py")):
        for line, target in _imports(path):
            name = ".".join(target)
            if any(name == b or name.startswith(b + ".") for b in banned):
                wrong.append(f"{path.name}:{line}: {name}")
    assert wrong == []


def test_the_worker_side_imports_no_database_or_web_code() -> None:
    """DESIGN §1: the measuring side imports only the stdlib, numpy, torch and triton."""
    for name in ("timing", "worker"):
        for _, target in _imports(PACKAGE / "bench" / f"{name}.py"):
            assert target[:2] not in (["tritonwatch", "store"], ["tritonwatch", "web"]), target
            assert target[0] not in ("sqlalchemy", "fastapi", "httpx"), target


def test_a_store_parameter_is_typed_store() -> None:
    """``store: Any`` hides every call a reader (and mypy) should see; the Store is one class."""
    wrong = []
    for path in _files():
        rel = str(path.relative_to(PACKAGE.parent))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
                name = node.arg if isinstance(node, ast.arg) else ast.unparse(node.target)
                if name.split(".")[-1] == "store" and ast.unparse(node.annotation) == "Any":
                    wrong.append(f"{rel}:{node.lineno}")
    assert wrong == []
