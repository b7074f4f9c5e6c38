"""tritonwatch: continuous performance engineering for Triton GPU kernels.

The names below are the stable public API (a test pins ``__all__``); everything else may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from .errors import TritonwatchError

if TYPE_CHECKING:
    from .runformat import FORMAT, Result, Run, parse_run
    from .store import Store

# Imported on first use: the benchmark worker imports this package and must not pay for (or
# depend on) pydantic, SQLAlchemy or the web stack.
_LAZY = {"FORMAT": "runformat", "Result": "runformat", "Run": "runformat",
         "parse_run": "runformat", "Store": "store"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'tritonwatch' has no attribute {name!r}")

__all__ = [
    "FORMAT",
    "Result",
    "Run",
    "Store",
    "TritonwatchError",
    "__version__",
    "parse_run",
]
