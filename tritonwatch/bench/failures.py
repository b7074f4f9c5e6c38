"""What a failure in a measuring worker means: its one-line description for the record, and
whether the device is unusable after it (the worker must then be replaced)."""

from __future__ import annotations

import os
import traceback

# Errors after which a CUDA/HIP context is unusable: the worker must be replaced.
STICKY = (
    "illegal memory access",
    "illegal instruction",
    "misaligned address",
    "unspecified launch failure",
    "device-side assert",
    "an illegal",
    "cudaerrorlaunchfailure",
    "hiperrorlaunchfailure",
    "cuda error: unknown error",
)


def is_device_error(e: BaseException) -> bool:
    """Is the device unusable after ``e`` (the worker must be replaced)?"""
    text = f"{type(e).__name__}: {e}".lower()
    return any(s in text for s in STICKY)


def describe(e: BaseException) -> str:
    """The error as the record shows it: kind, first line and where (the last three frames)."""
    kind = type(e).__name__
    if "OutOfMemory" in kind or "out of memory" in str(e).lower():
        return f"out of memory: {str(e).splitlines()[0][:300]}"
    tb = traceback.extract_tb(e.__traceback__)[-3:]
    where = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in reversed(tb))
    first = str(e).strip().splitlines()[0][:500] if str(e).strip() else ""
    return f"{kind}: {first} (at {where})"
