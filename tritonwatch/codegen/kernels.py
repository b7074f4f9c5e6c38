"""The kernel behind a spec: unwrapped from ``@triton.autotune``/``@triton.heuristics``, checked
against its real signature, and expanded to the specialisations it stands for.

A spec names a ``@triton.jit`` function, possibly under autotune and heuristics wrappers. An
autotuned kernel expands to one specialisation per config (``"configs": [0, 2]`` selects some);
heuristics are evaluated on the spec's constexprs plus the example values of runtime arguments in
``"args"``, as Triton evaluates them at launch. Every name in the spec is checked against the
kernel before anything is compiled, and a wrong one is refused with the valid names listed.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError


@dataclass(frozen=True)
class KernelInfo:
    """What a kernel accepts, read from the ``JITFunction`` under its wrappers."""

    name: str
    arg_names: tuple[str, ...]
    constexprs: frozenset[str]  # parameters annotated tl.constexpr
    defaults: dict[str, Any]  # parameter defaults
    configs: tuple[Any, ...] | None = None  # autotune configs (triton.Config), outermost first
    heuristics: tuple[tuple[str, Any], ...] = ()  # (name, fn(args)) in evaluation order
    wrappers: tuple[str, ...] = field(default=())

    @property
    def runtime_args(self) -> list[str]:
        return [a for a in self.arg_names if a not in self.constexprs]


def inspect_kernel(obj: Any, where: str, file: str) -> KernelInfo:
    """Unwrap ``obj`` down to its ``JITFunction``; a non-kernel is an InputError."""
    try:
        from triton.runtime.jit import JITFunction
    except ImportError:  # pragma: no cover - tritonwatch's own Python has no Triton
        raise InputError(
            f"{where}: cannot check the kernel: triton is not importable here"
        ) from None
    configs = None
    heuristics: list[tuple[str, Any]] = []
    wrappers: list[str] = []
    for _ in range(16):
        if isinstance(obj, JITFunction):
            break
        cls = type(obj).__name__
        if hasattr(obj, "configs") and hasattr(obj, "fn"):
            wrappers.append("autotune")
            if configs is None:
                configs = tuple(obj.configs)
        elif isinstance(getattr(obj, "values", None), dict) and hasattr(obj, "fn"):
            wrappers.append("heuristics")
            heuristics.extend(obj.values.items())
        elif not hasattr(obj, "fn"):
            raise InputError(
                f"{where}: {cls} is not a @triton.jit function (nor autotune/heuristics around one)",
                path=file,
            )
        obj = obj.fn
    else:
        raise InputError(f"{where}: too many wrappers around the kernel", path=file)
    params = list(obj.params)
    defaults = {}
    for name, p in inspect.signature(obj.fn).parameters.items():
        if p.default is not p.empty:
            defaults[name] = getattr(p.default, "value", p.default)  # tl.constexpr(2) -> 2
    return KernelInfo(
        name=obj.__name__,
        arg_names=tuple(obj.arg_names),
        constexprs=frozenset(p.name for p in params if p.is_constexpr),
        defaults=defaults,
        configs=configs,
        heuristics=tuple(heuristics),
        wrappers=tuple(wrappers),
    )


def _names(names: Any) -> str:
    return ", ".join(names) or "(none)"


def _config_label(cfg: Any) -> str:
    parts = [f"{k}={v}" for k, v in cfg.kwargs.items()]
    parts += [f"w{cfg.num_warps}", f"s{cfg.num_stages}"]
    if getattr(cfg, "num_ctas", 1) not in (1, None):
        parts.append(f"ctas{cfg.num_ctas}")
    if getattr(cfg, "maxnreg", None):
        parts.append(f"maxnreg{cfg.maxnreg}")
    return ",".join(parts)


def expand(d: dict[str, Any], info: KernelInfo, where: str, file: str) -> list[dict[str, Any]]:
    """The spec dicts ``d`` stands for: one per selected autotune config (one if none), with
    heuristics and parameter defaults filled into ``constexprs``."""
    consts = dict(d.get("constexprs") or {})
    bad = sorted(set(consts) - set(info.arg_names))
    if bad:
        raise InputError(
            f"{where}: constexprs name(s) {_names(bad)} that {info.name} does not take; "
            f"its constexpr parameters: {_names(sorted(info.constexprs))}",
            path=file,
        )
    args = d.get("args") or {}
    if not isinstance(args, dict):
        raise InputError(f"{where}: 'args' must map argument names to example values", path=file)
    bad = sorted(set(args) - set(info.arg_names))
    if bad:
        raise InputError(
            f"{where}: args name(s) {_names(bad)} that {info.name} does not take; "
            f"it takes: {_names(info.arg_names)}",
            path=file,
        )
    selected = d.get("configs")
    variants: list[tuple[str | None, dict[str, Any]]] = [(None, {})]
    launched = bool(d.get("as_launched"))  # captured: constexprs and options are complete
    if launched and selected is not None:
        raise InputError(f"{where}: 'configs' and 'as_launched' exclude each other", path=file)
    if info.configs is not None and not launched:
        idx = list(range(len(info.configs))) if selected is None else list(selected)
        wrong = [i for i in idx if not isinstance(i, int) or not 0 <= i < len(info.configs)]
        if wrong:
            raise InputError(
                f"{where}: 'configs' must list indices 0..{len(info.configs) - 1} of "
                f"{info.name}'s {len(info.configs)} autotune configs; got {wrong}",
                path=file,
            )
        variants = []
        for i in idx:
            cfg = info.configs[i]
            over = sorted(set(cfg.kwargs) & set(consts))
            if over:
                raise InputError(
                    f"{where}: {_names(over)} are set by {info.name}'s autotune configs; "
                    "drop them from 'constexprs' (select configs with 'configs': [indices])",
                    path=file,
                )
            opts: dict[str, Any] = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
            extra = {}
            if getattr(cfg, "num_ctas", 1) not in (1, None):
                extra["num_ctas"] = cfg.num_ctas
            if getattr(cfg, "maxnreg", None):
                extra["maxnreg"] = cfg.maxnreg
            variants.append(
                (_config_label(cfg), {"kw": dict(cfg.kwargs), "opts": opts, "extra": extra})
            )
    elif selected is not None:
        raise InputError(f"{where}: 'configs' given but {info.name} is not autotuned", path=file)
    out = []
    for label, v in variants:
        c = {**consts, **v.get("kw", {})}
        for name, fn in () if launched else info.heuristics:
            if name in c:  # the spec (or the config) sets it: Triton's heuristic would override
                continue  # it at launch, but a spec that names a value means that value
            try:
                c[name] = fn({**info.defaults, **args, **c})
            except KeyError as e:
                raise InputError(
                    f"{where}: the @triton.heuristics value of {name} reads argument {e.args[0]!r}; "
                    f"give an example value in 'args' (e.g. \"args\": {{{e.args[0]!r}: 4096}}) or "
                    f"the value of {name} in 'constexprs'",
                    path=file,
                ) from None
            except Exception as e:  # noqa: BLE001 - a user's lambda can raise anything
                raise InputError(
                    f"{where}: the @triton.heuristics value of {name} failed: "
                    f"{type(e).__name__}: {e}; give {name} in 'constexprs'",
                    path=file,
                ) from None
        for name in info.constexprs:
            if name not in c and name in info.defaults:
                c[name] = info.defaults[name]
        c = {k: _plain(v) for k, v in c.items()}
        new = {**d, "constexprs": c}
        new.pop("configs", None)
        new.pop("args", None)
        sig = dict(d.get("signature") or {})
        for name in info.arg_names:  # constexpr parameters need no type: add them
            if name in info.constexprs and name not in sig:
                sig[name] = "constexpr"
        new["signature"] = {a: sig[a] for a in info.arg_names if a in sig} | {
            a: t for a, t in sig.items() if a not in info.arg_names
        }
        if label is not None:
            new.update(v["opts"])
            new["options"] = {**(d.get("options") or {}), **v["extra"]}
            new["name"] = f"{d.get('name') or info.name}[{label}]"
        out.append(new)
    return out


def _plain(v: Any) -> Any:
    """A constexpr value as JSON: tl.constexpr unwrapped, numpy-like scalars to Python."""
    v = getattr(v, "value", v)
    if hasattr(v, "item") and not isinstance(v, (int, float, bool, str)):
        v = v.item()
    return v


_VALID_TYPES: frozenset[str] | None = None


def valid_types() -> frozenset[str]:
    global _VALID_TYPES
    if _VALID_TYPES is None:
        try:
            from triton._utils import type_canonicalisation_dict

            base = set(type_canonicalisation_dict.values())
        except ImportError:  # pragma: no cover - older layouts
            base = {"i1", "i8", "i16", "i32", "i64", "u1", "u8", "u16", "u32", "u64",
                    "fp16", "bf16", "fp32", "fp64", "fp8e4nv", "fp8e5"}  # fmt: skip
        _VALID_TYPES = frozenset(base)
    return _VALID_TYPES


def _type_ok(t: str) -> bool:
    if t == "constexpr" or t.startswith(("tensordesc", "nvTmaDesc")):
        return True
    core = t[2:] if t.startswith("*k") else t[1:] if t.startswith("*") else t
    return core in valid_types()


def _option_names() -> set[str] | None:
    names: set[str] = set()
    for mod, cls in (
        ("triton.backends.nvidia.compiler", "CUDAOptions"),
        ("triton.backends.amd.compiler", "HIPOptions"),
    ):
        try:
            m = __import__(mod, fromlist=[cls])
            names |= {f.name for f in dataclasses.fields(getattr(m, cls))}
        except Exception:  # noqa: BLE001 - a backend missing here: check with the others
            continue
    return names or None


def validate(d: dict[str, Any], info: KernelInfo, where: str, file: str) -> None:
    """Refuse names and types the kernel does not know, listing the valid ones."""
    sig = d.get("signature") or {}
    unknown = [a for a in sig if a not in info.arg_names]
    if unknown:
        raise InputError(
            f"{where}: signature names argument(s) {_names(unknown)} that {info.name} does not "
            f"take; it takes: {_names(info.arg_names)}",
            path=file,
        )
    missing = [a for a in info.arg_names if a not in sig]
    if missing:
        raise InputError(
            f"{where}: signature lacks argument(s) {_names(missing)} of {info.name} "
            "(runtime arguments need a type such as *fp16 or i32; an argument Triton "
            'specialises to a constant, None or 1, is "constexpr" with its value in constexprs)',
            path=file,
        )
    bad_types = sorted({t for t in sig.values() if not _type_ok(t)})
    if bad_types:
        types = sorted(valid_types())
        raise InputError(
            f"{where}: unknown type(s) {_names(bad_types)}; use constexpr, one of "
            f"{_names(types)}, or a pointer to one (*fp16, *kfp16 for const)",
            path=file,
        )
    for a, t in sig.items():
        if a in info.constexprs and t != "constexpr":
            raise InputError(
                f"{where}: {a} is a tl.constexpr parameter of {info.name}; type it "
                '"constexpr" and give its value in constexprs',
                path=file,
            )
    consts = d.get("constexprs") or {}
    need = [a for a, t in sig.items() if t == "constexpr" and a not in consts]
    if need:
        raise InputError(
            f"{where}: constexpr argument(s) {_names(need)} need a value in 'constexprs'",
            path=file,
        )
    stray = [a for a in consts if sig.get(a) != "constexpr"]
    if stray:
        raise InputError(
            f"{where}: constexprs give {_names(stray)}, typed {_names(sig[a] for a in stray)} "
            'in the signature; a constant argument must be typed "constexpr"',
            path=file,
        )
    div = [
        a
        for a in d.get("divisibility") or ()
        if a not in info.runtime_args or sig.get(a) == "constexpr"
    ]
    if div:
        raise InputError(
            f"{where}: divisibility names {_names(div)}, not runtime argument(s) of "
            f"{info.name}; valid: {_names(a for a in info.runtime_args if sig.get(a) != 'constexpr')}",
            path=file,
        )
    opts = d.get("options") or {}
    known = _option_names()
    if known is not None:
        bad = sorted(set(opts) - known)
        if bad:
            raise InputError(
                f"{where}: unknown compile option(s) {_names(bad)}; valid: {_names(sorted(known))}",
                path=file,
            )
    try:
        json.dumps(consts)
    except TypeError:
        raise InputError(
            f"{where}: constexprs must be JSON values (numbers, strings, booleans, null)", path=file
        ) from None
