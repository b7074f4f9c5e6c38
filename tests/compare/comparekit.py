"""Helpers for compare tests (imported by name: tests are not a package)."""

from __future__ import annotations

from support.fakepy import fake_python

__all__ = ["REAL_TRITON", "fake_python"]

REAL_TRITON = "3.8.0"  # the second Triton of the slow tests (the host has another)
