"""The content-addressed compile cache: a worker result is kept under the hash of its inputs.

The key covers everything that decides the compiled code and what the worker reports: the worker
protocol version, the environment's Triton build (version, commit, a hash of its installed files,
the Python), the spec (kernel, signature, constexprs, hints, options), the target and the hash of
the kernel file's source. The analysed form (normalised stages, metrics) is kept too, under a
key that also covers the analysing code, so a warm run neither compiles nor re-normalises. Results are gzip-compressed JSON files in ``cache_dir``, written
atomically so parallel runs can share one cache. Transient failures (a worker that crashed or
timed out) are never cached.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .. import settings
from .compiler import WORKER_VERSION

_HERE = Path(__file__).resolve().parent


def analysis_version() -> str:
    """Changes whenever the code that normalises and measures artifacts changes."""
    h = hashlib.sha256()
    for name in ("normalize.py", "metrics.py"):
        h.update((_HERE / name).read_bytes())
    return h.hexdigest()[:16]


def cache_key(
    fingerprint: dict[str, Any], spec_key: dict[str, Any], target: str, source_hash: str
) -> str:
    body = {
        "worker": WORKER_VERSION,
        "env": fingerprint,
        "spec": spec_key,
        "target": target,
        "source": source_hash,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class CompileCache:
    """Raw worker results by key, under ``root`` (default: the ``cache_dir`` setting)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root if root is not None else settings.get("cache_dir")).expanduser()
        self._analysis = analysis_version()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json.gz"

    def analysis_key(self, key: str) -> str:
        """Where the analysed form of result ``key`` lives (it depends on the analysing code)."""
        return hashlib.sha256(f"{key}:{self._analysis}".encode()).hexdigest()

    def has(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> dict[str, Any] | None:
        p = self._path(key)
        try:
            with gzip.open(p, "rt", encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, EOFError, json.JSONDecodeError):
            p.unlink(missing_ok=True)  # a torn or corrupt entry is recompiled
            return None

    def put(self, key: str, result: dict[str, Any]) -> None:
        if result.get("transient"):
            return
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        try:
            with (
                os.fdopen(fd, "wb") as raw,
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=3) as f,
            ):
                f.write(json.dumps(result).encode("utf-8"))
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
