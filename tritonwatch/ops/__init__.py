"""The built-in suite: one module per operator family, registered like any plugin.

``register`` is the ``builtin`` entry point of the ``tritonwatch`` group (pyproject.toml).
Kernels live in ``ops/kernels/<family>.py`` and import only triton and the stdlib.
"""

from __future__ import annotations

from ..bench.registry import Registry


def register(registry: Registry) -> None:
    """Add every built-in operator family and its providers to ``registry``."""
    from . import attention, bandwidth, cross_entropy, matmul, moe

    for family in (bandwidth, matmul, attention, moe, cross_entropy):
        family.register(registry)
