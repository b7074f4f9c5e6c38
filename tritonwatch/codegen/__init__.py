"""Blast radius, CPU only: compile kernel specs with two Triton builds and report what changed.

Public entry points: :func:`blast` (two environments -> :class:`BlastReport`),
:func:`static_metrics` (one environment -> per kernel x spec x target metrics for
``tritonwatch run --codegen``), :class:`CompileSpec` and :func:`load_specs` (what to compile),
:func:`create_env`/:func:`resolve_env` (build environments).
"""

from __future__ import annotations

from .blast import BlastReport, StaticMetrics, StaticRow, blast, static_metrics
from .envs import EnvEntry, EnvInfo, create_env, list_envs, resolve_env
from .specs import CompileSpec, load_file, load_specs

__all__ = [
    "BlastReport",
    "CompileSpec",
    "EnvEntry",
    "EnvInfo",
    "StaticMetrics",
    "StaticRow",
    "blast",
    "create_env",
    "list_envs",
    "load_file",
    "load_specs",
    "resolve_env",
    "static_metrics",
]
