"""The capture hook: loaded into every Python process of a captured command (by the
``sitecustomize`` that ``tritonwatch capture`` puts first on ``PYTHONPATH``).

It imports only the standard library until Triton itself is imported, then wraps the launch path
(``JITFunction.run`` on a GPU, ``InterpretedFunction.run`` under ``TRITON_INTERPRET=1``) and,
for each launch, asks Triton's own binder (``create_function_from_signature`` and
``JITFunction._pack_args``, present from Triton 3.6 to 3.9) which specialisation those arguments
make: the signature, the arguments it turns into constants (None, integers equal to 1), the ones
it marks divisible by 16, and the compile options. Each distinct specialisation is appended, one
JSON line, to ``$TRITONWATCH_CAPTURE_DIR/<pid>.jsonl``; the launch then goes on unchanged. A
failure to record is written to the same file as an error line and never breaks the command.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
from typing import Any

_OUT = os.environ.get("TRITONWATCH_CAPTURE_DIR", "")
_seen: set[str] = set()
_binders: dict[Any, Any] = {}  # id(fn) -> JITFunction, ("binder", id(jf)) -> binder
_backend: list[Any] = []
_record_warmups = [False]  # set while the autotuner's configs are recorded without running
#: Options a spec sets itself, or that Triton fills in at launch: not recorded.
_SKIP_OPTIONS = {"debug", "instrumentation_mode", "fpsan_homomorphic_casts", "arch"}


def _write(record: dict[str, Any]) -> None:
    line = json.dumps(record, sort_keys=True, default=str)
    if line in _seen:
        return
    _seen.add(line)
    with open(os.path.join(_OUT, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _plain(v: Any) -> Any:
    v = getattr(v, "value", v)  # tl.constexpr
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if hasattr(v, "item"):
        try:
            return v.item()
        except Exception:  # noqa: BLE001 - not a scalar
            pass
    name = type(v).__name__
    if name == "dtype":  # tl.dtype passed as a constexpr
        return str(v)
    raise TypeError(f"a {name} constexpr cannot be written as JSON")


def _backend_for_specialising() -> Any:
    """Triton's NVIDIA backend for sm90: what Triton binds arguments with on a GPU (alignment
    and constant rules are the same on every backend; no device is needed to make one)."""
    if not _backend:
        from triton.backends.compiler import GPUTarget
        from triton.compiler.compiler import make_backend

        _backend.append(make_backend(GPUTarget("cuda", 90, 32)))
    return _backend[0]


_MISSING = object()


def _defaults(backend: Any) -> Any:
    """The backend's options when a launch passes none (``num_ctas=1`` from an autotune config
    is Triton's default, not a choice worth recording)."""
    if len(_backend) < 2:
        _backend.append(backend.parse_options({}))
    return _backend[1]


def _jit_function(fn: Any, kwargs: dict[str, Any]) -> Any:
    from triton.runtime.jit import JITFunction

    if isinstance(fn, JITFunction):
        return fn
    # An InterpretedFunction: make the JITFunction Triton would have made for the same function
    # (with the same do_not_specialize lists), to bind arguments the way a GPU launch does.
    key = id(fn)
    jf = _binders.get(key)
    if jf is None:
        jf = _binders[key] = JITFunction(fn.fn, **kwargs)
    return jf


def _binder(jf: Any, backend: Any) -> Any:
    """Triton's argument binder for ``jf`` (made once per kernel: making it runs ``exec``)."""
    key = ("binder", id(jf))
    binder = _binders.get(key)
    if binder is None:
        from triton.runtime.jit import create_function_from_signature

        binder = _binders[key] = create_function_from_signature(jf.signature, jf.params, backend)
    return binder


def _record(fn: Any, jit_kwargs: dict[str, Any], args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    jf = _jit_function(fn, jit_kwargs)
    backend = _backend_for_specialising()
    bound, specialization, extra = _binder(jf, backend)(*args, **kw)
    options, signature, constexprs, attrs = jf._pack_args(backend, kw, bound, specialization, extra)
    names = [p.name for p in jf.params]
    consts: dict[str, Any] = {}
    for path, value in constexprs.items():
        if len(path) != 1:
            raise TypeError("tuple arguments are not captured")
        consts[names[path[0]]] = _plain(value)
    divisible = sorted(
        names[path[0]]
        for path, attr in attrs.items()
        if len(path) == 1 and ["tt.divisibility", 16] in [list(a) for a in attr]
    )
    defaults = _defaults(backend)
    passed = {
        k: v
        for k, v in kw.items()
        if k not in names and k not in _SKIP_OPTIONS and getattr(defaults, k, _MISSING) != v
    }
    record: dict[str, Any] = {
        "name": jf.fn.__name__,
        "module": jf.fn.__module__,
        "file": os.path.abspath(jf.fn.__code__.co_filename),
        "signature": dict(signature),
        "constexprs": consts,
        "divisibility": divisible,
        "num_warps": options.num_warps,
        # Only when the launch chose it: otherwise each target compiles with its own default
        # (3 on NVIDIA, 2 on AMD), as the launch would on that GPU.
        "num_stages": options.num_stages if "num_stages" in kw else None,
        "options": {
            k: _plain(v) for k, v in passed.items() if k not in ("num_warps", "num_stages")
        },
    }
    _write(record)


def _wrap(cls: Any) -> None:
    original = cls.run
    if getattr(original, "_tritonwatch_capture", False):
        return

    def run(self: Any, *args: Any, grid: Any, warmup: bool, **kwargs: Any) -> Any:
        if not warmup or _record_warmups[0]:
            try:
                _record(self, getattr(self, "kwargs", {}), args, dict(kwargs))
            except Exception as e:  # noqa: BLE001 - recording must never break the command
                name = getattr(getattr(self, "fn", None), "__name__", "?")
                _write({"error": f"{name}: {type(e).__name__}: {e}"[:500]})
        return original(self, *args, grid=grid, warmup=warmup, **kwargs)

    run._tritonwatch_capture = True  # type: ignore[attr-defined]
    cls.run = run


def _wrap_autotuner(cls: Any) -> None:
    """Under the interpreter, Triton's autotuner cannot time its configs without a GPU (it
    fails before launching any); record the launch of each config it would time, as tuning on a
    GPU launches them, then let it go on as it would."""
    original = cls.run
    if getattr(original, "_tritonwatch_capture", False):
        return

    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        if os.environ.get("TRITON_INTERPRET", "") in ("1", "true", "on") and not kwargs.get(
            "warmup"
        ):
            _record_configs(self, args, kwargs)
        return original(self, *args, **kwargs)

    run._tritonwatch_capture = True  # type: ignore[attr-defined]
    cls.run = run


def _record_configs(tuner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        tuner.nargs = dict(zip(tuner.arg_names, args, strict=False))
        configs = tuner.prune_configs(dict(kwargs))
    except Exception:  # noqa: BLE001 - a pruning hook that needs a GPU: every config
        configs = list(tuner.configs)
    _record_warmups[0] = True
    try:
        for cfg in configs:
            try:
                # Through the wrappers below the autotuner (heuristics), as a launch would go;
                # warmup=True: the interpreter runs nothing.
                tuner.fn.run(*args, **{**kwargs, **cfg.all_kwargs(), "warmup": True})
            except Exception as e:  # noqa: BLE001 - recording must never break the command
                _write({"error": f"autotune config {cfg}: {type(e).__name__}: {e}"[:500]})
    finally:
        _record_warmups[0] = False


_PATCH = {
    "triton.runtime.jit": "JITFunction",
    "triton.runtime.interpreter": "InterpretedFunction",
    "triton.runtime.autotuner": "Autotuner",
}


def _patch(name: str, module: Any) -> None:
    cls = getattr(module, _PATCH[name], None)
    if cls is not None:
        (_wrap_autotuner if name == "triton.runtime.autotuner" else _wrap)(cls)


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, name: str) -> None:
        self.inner = inner
        self.name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)
        _patch(self.name, module)


class _Finder(importlib.abc.MetaPathFinder):
    """Patches the launch classes right after Triton defines them (no import of Triton here)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in _PATCH:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader, name)
                return spec
        return None


def install() -> None:
    if not _OUT or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    for name in _PATCH:  # already imported (unlikely): patch in place
        if name in sys.modules:
            _patch(name, sys.modules[name])
    sys.meta_path.insert(0, _Finder())
