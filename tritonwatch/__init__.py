"""tritonwatch: continuous performance engineering for Triton GPU kernels.

The names below are the stable public API (a test pins ``__all__``); everything else may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import TritonwatchError
from .runformat import FORMAT, Result, Run, parse_run
from .store import Store

__all__ = [
    "FORMAT",
    "Result",
    "Run",
    "Store",
    "TritonwatchError",
    "__version__",
    "parse_run",
]
