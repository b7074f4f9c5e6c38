"""The compile worker: a child process that compiles kernel specs with one Python's Triton.

It is launched BY FILE PATH with the Python of a build environment, which has only Python and
Triton installed, so this file imports nothing but the standard library (and Triton, inside the
functions that need it) and never imports tritonwatch. Talk is JSON:

``python compiler.py probe``
    prints one JSON object describing the environment (Triton version, install folder, a build
    hash, the NVIDIA tools shipped in the wheel and their versions). Triton is not imported.
``python compiler.py keys``
    reads ``{"kernels": [{"id": ..., "file": ..., "kernel": ...}]}`` on stdin and prints one JSON
    object ``{"keys": {id: {"key": ...} | {"error": ...}}}``: each kernel's dependency key, which
    is Triton's own cache key of the @jit function (its source and the source of every jit
    function it calls, constexpr globals) plus the values of the other globals it reads.
``python compiler.py compile``
    reads one JSON task per line on stdin and prints one JSON line per event on stdout:
    ``{"event": "start", "id": ...}`` before a task, ``{"event": "result", "id": ..., "result":
    {...}}`` after it, and ``{"event": "done"}`` at the end of input. A task that fails records
    its error; the rest continue. The worker lives for many tasks, so imports are paid once. Anything else Triton or its tools print goes to stderr.

Compilation is pinned so two environments differ only by their Triton: no line info, FP fusion
on, a private Triton cache, always compile, and no inherited ``TRITON_*`` switches (the parent
builds the child's environment).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

WORKER_VERSION = 5  # bump when what a task returns changes, so cached results are not reused
MAX_ERROR = 4000


# -- probe (no Triton import: fast, and works when Triton is broken) -----------------------------
_versions: dict[str, str | None] = {}


def _tool_version(path: str) -> str | None:
    if path not in _versions:
        _versions[path] = _run_version(path)
    return _versions[path]


def _run_version(path: str) -> str | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release [\d.]+, V([\d.]+)", out)
    if m:
        return m.group(1)
    lines = out.strip().splitlines()
    return lines[-1] if lines else None


def _build_hash(root: str) -> str:
    """A hash of every file's name, size and mtime: changes with any rebuild or local edit."""
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".so", ".bc")) or folder.endswith("bin"):
                p = os.path.join(folder, name)
                st = os.stat(p)
                h.update(f"{os.path.relpath(p, root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def probe() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.executable,
        "python_version": ".".join(map(str, sys.version_info[:3])),
        "worker_version": WORKER_VERSION,
    }
    from importlib import metadata

    # What else this Python sees (found, not imported: the probe stays fast).
    for pkg in ("torch", "tritonwatch"):
        try:
            found = importlib.util.find_spec(pkg) is not None
        except (ImportError, ValueError):
            found = False
        try:
            info[pkg] = metadata.version(pkg) if found else None
        except metadata.PackageNotFoundError:
            info[pkg] = "unknown version" if found else None
    spec = importlib.util.find_spec("triton")
    if spec is None or not spec.submodule_search_locations:
        info["error"] = "no-triton"
        return info
    root = list(spec.submodule_search_locations)[0]

    try:
        version = metadata.version("triton")
    except metadata.PackageNotFoundError:
        with open(os.path.join(root, "__init__.py"), encoding="utf-8") as f:
            m = re.search(r'__version__\s*=\s*["\']([^"\']+)', f.read())
        version = m.group(1) if m else "unknown"
    commit = None
    m = re.search(r"\+git([0-9a-f]{7,40})", version)
    if m:
        commit = m.group(1)
    tools: dict[str, Any] = {}
    nv_bin = os.path.join(root, "backends", "nvidia", "bin")
    for name in ("ptxas", "ptxas-blackwell", "cuobjdump", "nvdisasm"):
        p = os.path.join(nv_bin, name)
        if os.path.isfile(p):
            tools[name] = {"path": p, "version": _tool_version(p)}
    info.update(
        triton_version=version,
        triton_commit=commit,
        triton_path=root,
        build_hash=_build_hash(root),
        backends=sorted(
            d
            for d in os.listdir(os.path.join(root, "backends"))
            if os.path.isfile(os.path.join(root, "backends", d, "compiler.py"))
        ),
        tools=tools,
    )
    return info


# -- compiling ----------------------------------------------------------------------------------
def parse_target(name: str) -> tuple[str, int | str, int]:
    """``sm90`` -> ("cuda", 90, 32); ``gfx942`` -> ("hip", "gfx942", 64); RDNA gfx1x has 32 lanes."""
    m = re.fullmatch(r"sm_?(\d+)a?", name)
    if m:
        return "cuda", int(m.group(1)), 32
    if re.fullmatch(r"gfx[0-9a-f]+", name):
        return "hip", name, 32 if name.startswith("gfx1") else 64
    raise ValueError(f"unknown target {name!r}")


_modules: dict[str, Any] = {}


def _load_module(ref: str) -> Any:
    """A kernel module: a file imported by path (under a private name), or ``module.name``."""
    mod = _modules.get(ref)
    if mod is not None:
        return mod
    if os.path.isabs(ref):
        mod_name = "tw_kernels_" + hashlib.sha256(ref.encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(mod_name, ref)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {ref}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[mod_name]
            raise
    else:
        mod = importlib.import_module(ref)
    _modules[ref] = mod
    return mod


def _load_kernel(path: str, name: str) -> Any:
    fn = getattr(_load_module(path), name, None)
    if fn is None:
        raise LookupError(f"{path} has no kernel named {name!r}")
    return fn


def jit_function(obj: Any) -> Any:
    """The @triton.jit function under any @triton.autotune / @triton.heuristics wrappers."""
    from triton.runtime.jit import JITFunction

    for _ in range(16):
        if isinstance(obj, JITFunction):
            return obj
        inner = getattr(obj, "fn", None)
        if inner is None:
            break
        obj = inner
    raise TypeError(f"not a @triton.jit function but a {type(obj).__name__}")


def kernel_key(obj: Any) -> str:
    """What the kernel's generated code depends on, as Triton sees it.

    Triton's ``cache_key`` hashes the kernel's source, the keys of the jit functions it calls
    (transitively) and the constexpr globals they use; the other globals they read are checked
    by Triton at launch, so their values are added here.
    """
    fn = jit_function(obj)
    h = hashlib.sha256(fn.cache_key.encode())
    used = getattr(fn, "used_global_vals", {}) or {}
    for name, text in sorted((k[0], repr(v[0])) for k, v in used.items()):
        h.update(f"\n{name}={text}".encode())
    return h.hexdigest()


def serve_keys() -> int:
    request = json.loads(sys.stdin.read())
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    keys: dict[str, dict[str, str]] = {}
    for k in request["kernels"]:
        try:
            keys[k["id"]] = {"key": kernel_key(_load_kernel(k["file"], k["kernel"]))}
        except BaseException as e:  # noqa: BLE001 - a broken kernel module is that kernel's error
            if isinstance(e, KeyboardInterrupt):
                raise
            keys[k["id"]] = {"error": f"loading {k['file']}: {type(e).__name__}: {e}"[:MAX_ERROR]}
    _emit(proto, {"keys": keys})
    return 0


_RES_RE = re.compile(r"Function ([\w$.]+):\s*\n?\s*(REG:.*)")


def _parse_res_usage(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in _RES_RE.finditer(text):
        for key, val in re.findall(r"(\w+(?:\[\d+\])?):(\d+)", m.group(2)):
            out[key] = out.get(key, 0) + int(val)
    return out


def _disassemble(cubin: bytes, tools: dict[str, str]) -> tuple[str | None, dict[str, int], str]:
    """SASS text and resource usage of a cubin, with the tool used (or why none)."""
    tool = tools.get("cuobjdump")
    if not tool:
        return None, {}, "no cuobjdump in this Triton wheel; SASS not collected"
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        r = subprocess.run(
            [tool, "-res-usage", "-sass", f.name], capture_output=True, text=True, timeout=120
        )
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        return None, {}, f"cuobjdump failed: {r.stderr.strip()[:300]}"
    return r.stdout, _parse_res_usage(r.stdout), "cuobjdump -sass"


def _ptxas_for(arch: int) -> str | None:
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        return str(get_ptxas(arch).path)
    except Exception:  # noqa: BLE001 - older layouts: fall back to the wheel's bin folder
        return None


def compile_task(task: dict[str, Any], probe_info: dict[str, Any]) -> dict[str, Any]:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    try:
        backend, arch, warp = parse_target(task["target"])
    except ValueError as e:
        return {"status": "unavailable", "error": str(e)}
    if backend == "hip" and "amd" not in probe_info.get("backends", []):
        return {"status": "unavailable", "error": "this Triton has no AMD backend"}
    if backend == "cuda" and "nvidia" not in probe_info.get("backends", []):
        return {"status": "unavailable", "error": "this Triton has no NVIDIA backend"}
    try:
        fn = jit_function(_load_kernel(task["file"], task["kernel"]))
    except Exception as e:  # noqa: BLE001 - any import failure is this task's error
        return {
            "status": "error",
            "error": f"loading {task['file']}: {type(e).__name__}: {e}"[:MAX_ERROR],
        }
    sig = dict(task["signature"])
    names = list(getattr(fn, "arg_names", sig))
    attrs = {
        (names.index(a),): [["tt.divisibility", 16]]
        for a in task.get("divisibility", [])
        if a in names
    }
    options = {"enable_fp_fusion": True, **task.get("options", {})}
    target = GPUTarget(backend, arch, warp)
    out = io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out):
            src = ASTSource(
                fn, signature=sig, constexprs=dict(task.get("constexprs", {})), attrs=attrs
            )
            ck = triton.compile(src, target=target, options=options)
    except Exception as e:  # noqa: BLE001 - a failing spec is reported, the rest continue
        msg = f"{type(e).__name__}: {e}".strip()
        status = "error"
        if (
            "compatible backends" in msg
            or "Cannot find ptxas" in msg
            or "ptxas" in msg
            and "not found" in msg
        ):
            status = "unavailable"
        return {
            "status": status,
            "error": msg[:MAX_ERROR],
            "compile_ms": (time.perf_counter() - t0) * 1e3,
        }
    compile_ms = (time.perf_counter() - t0) * 1e3
    stages: dict[str, str] = {}
    binary: dict[str, Any] = {}
    for key, val in ck.asm.items():
        if key == "source":
            continue
        if isinstance(val, bytes):
            binary = {"kind": key, "sha256": hashlib.sha256(val).hexdigest(), "size": len(val)}
        elif isinstance(val, str):
            stages[key] = val
    md = ck.metadata._asdict()
    meta = {
        k: md[k]
        for k in (
            "shared",
            "num_warps",
            "num_stages",
            "num_ctas",
            "tmem_size",
            "global_scratch_size",
            "profile_scratch_size",
        )
        if k in md
    }
    result: dict[str, Any] = {
        "status": "ok",
        "compile_ms": compile_ms,
        "stages": stages,
        "binary": binary,
        "metadata": meta,
    }
    tools = {k: v["path"] for k, v in probe_info.get("tools", {}).items()}
    if backend == "cuda":
        ptxas = _ptxas_for(int(arch)) or tools.get(
            "ptxas-blackwell" if int(arch) >= 100 else "ptxas"
        )
        result["ptxas"] = ptxas
        result["ptxas_version"] = _tool_version(ptxas) if ptxas else None
        result["ptxas_log"] = out.getvalue()[-20000:]
        cubin = ck.asm.get("cubin")
        if isinstance(cubin, bytes):
            sass, res, note = _disassemble(cubin, tools)
            if sass is not None:
                stages["sass"] = sass
            result["resources"] = res
            result["sass_note"] = note
    return result


def _emit(fd: Any, obj: dict[str, Any]) -> None:
    fd.write(json.dumps(obj) + "\n")
    fd.flush()


def serve_compile() -> int:
    # Keep the protocol on the real stdout; everything else printed (Triton, MLIR) goes to stderr.
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    info = probe()
    while True:  # one task per line; the parent sends the next after this one's result
        line = sys.stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        task = json.loads(line)
        _emit(proto, {"event": "start", "id": task["id"]})
        try:
            res = compile_task(task, info)
        except Exception:  # noqa: BLE001 - a worker bug must not lose the other tasks
            res = {
                "status": "error",
                "error": "worker error: " + traceback.format_exc()[-MAX_ERROR:],
            }
        res["worker_version"] = WORKER_VERSION
        _emit(proto, {"event": "result", "id": task["id"], "result": res})
    _emit(proto, {"event": "done"})
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["probe"]:
        print(json.dumps(probe()))
        return 0
    if argv[:1] == ["keys"]:
        return serve_keys()
    if argv[:1] == ["compile"]:
        return serve_compile()
    print("usage: compiler.py probe | keys | compile  (JSON on stdin)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
