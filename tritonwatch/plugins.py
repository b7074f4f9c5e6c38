"""Plugins: the ``tritonwatch`` entry-point group adds operators and providers.

A plugin's entry point names a function ``register(registry)`` that calls
``registry.add_operator`` / ``registry.add_provider``. The built-in suite registers the same way
(``builtin = "tritonwatch.ops:register"`` in pyproject.toml). Plugins load in :func:`load`, never
at import time, so importing tritonwatch stays cheap and a broken plugin cannot break it.
Worker side: imports only the stdlib.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from .bench.registry import Registry
from .errors import BenchError, TritonwatchError

GROUP = "tritonwatch"
BUILTIN = "tritonwatch.ops:register"


def _resolve(spec: str) -> Callable[[Registry], Any]:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise BenchError(f"plugin {spec!r} must be written module:function")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise BenchError(f"cannot load plugin {spec!r}: {e}") from None
    return obj  # type: ignore[no-any-return,unused-ignore]


def load(extra: Sequence[str] = ()) -> Registry:
    """A registry filled by every installed plugin (entry points) plus ``extra`` specs.

    ``extra`` (``module:function``) lets the runner hand the same plugins to its workers
    explicitly, and lets tests register fake operators without installing a package.
    """
    registry = Registry()
    found: list[tuple[str, Callable[[], Callable[[Registry], Any]]]] = []
    eps = sorted(entry_points(group=GROUP), key=lambda e: (e.name != "builtin", e.name))
    if not any(ep.name == "builtin" for ep in eps):
        # Run from a source tree that was never pip-installed (PYTHONPATH=checkout, as on a GPU
        # machine without a registry): the built-in suite has no entry point to come from.
        found.append((f"builtin ({BUILTIN})", lambda: _resolve(BUILTIN)))
    for ep in eps:
        found.append((f"{ep.name} ({ep.value})", ep.load))
    for spec in extra:
        found.append((spec, lambda s=spec: _resolve(s)))  # type: ignore[misc]
    seen: set[str] = set()
    for name, loader in found:
        if name in seen:
            continue
        seen.add(name)
        registry.current_plugin = name
        try:
            register = loader()
            register(registry)
        except TritonwatchError:
            raise
        except Exception as e:  # noqa: BLE001 - a plugin's bug is reported, with its name
            raise BenchError(f"plugin {name} failed to register: {type(e).__name__}: {e}") from None
    registry.current_plugin = "(direct)"
    return registry
