"""A/B: each build autotunes a case once, and every worker of that build times its choice.

With several worker pairs (``--workers``), every worker prepares every case, so an autotuned
kernel was tuned by each of a build's workers on its own: four times the tuning, and the pairs
of one build could time different configurations, which the verdict would read as noise
between pairs. Triton can keep autotuning results on disk (``TRITON_CACHE_AUTOTUNING``), in its
cache directory, where they would outlive the comparison and be reused by the next one of the
same build. So the A/B workers of one build get a cache manager of their own
(``TRITON_CACHE_MANAGER``): compiled kernels stay in the user's Triton cache as before, and only
the autotuning results go to a folder of this comparison and build, which the build's first
worker fills and the others read. Under the interpreter Triton does not autotune from disk, and a
user's own cache manager is left alone (the workers then tune as before).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import MutableMapping
from typing import Any

DIR_VAR = "TRITONWATCH_TUNING_DIR"
MANAGER = f"{__name__}:SideTuning"
_SUFFIX = ".autotune.json"  # the name Triton's autotuner gives its results


def share_tuning(environ: MutableMapping[str, str], folder: str) -> bool:
    """Set ``environ`` (the worker's, before Triton is imported) so that autotuning results
    are read from and written to ``folder``; False where the user has a cache manager."""
    own = environ.get("TRITON_CACHE_MANAGER")
    if own and own != MANAGER:
        return False
    environ["TRITON_CACHE_MANAGER"] = MANAGER
    environ["TRITON_CACHE_AUTOTUNING"] = "1"
    environ[DIR_VAR] = folder
    return True


def __getattr__(name: str) -> Any:
    """``SideTuning``, made when Triton asks for it: this module is imported by the worker
    before Triton is (to set the environment), and must not import it itself."""
    if name != "SideTuning":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _side_tuning()


@functools.cache
def _side_tuning() -> type:
    from triton.runtime.cache import FileCacheManager

    class SideTuning(FileCacheManager):  # type: ignore[misc,unused-ignore]
        """Triton's file cache, with autotuning results kept in ``$TRITONWATCH_TUNING_DIR``."""

        def __init__(self, key: str, override: bool = False, dump: bool = False) -> None:
            super().__init__(key, override=override, dump=dump)
            # A process that inherited the manager but not the folder (a library's own
            # subprocess started with a trimmed environment) keeps Triton's usual places.
            folder = os.environ.get(DIR_VAR)
            self.tuning_dir = os.path.join(folder, key) if folder else None

        def _make_path(self, filename: str) -> str:
            if self.tuning_dir and filename.endswith(_SUFFIX):
                return os.path.join(self.tuning_dir, filename)
            return str(super()._make_path(filename))

        def put(self, data: Any, filename: str, binary: bool = True) -> str:
            if not (self.tuning_dir and filename.endswith(_SUFFIX)):
                return str(super().put(data, filename, binary))
            os.makedirs(self.tuning_dir, exist_ok=True)
            path = self._make_path(filename)
            # Written beside its place and renamed: a worker reading it sees all of it or none.
            tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
            mode = "wb" if isinstance(data, bytes) else "w"
            with open(tmp, mode) as f:
                f.write(data if isinstance(data, bytes) else str(data))
            os.replace(tmp, path)
            return path

    return SideTuning
