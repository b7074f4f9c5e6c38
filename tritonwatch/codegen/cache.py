"""The content-addressed compile cache: a worker result is kept under the hash of its inputs.

The key covers everything that decides the compiled code and what the worker reports: the worker
protocol version, the environment's Triton build (version, commit, a hash of its installed files,
the Python), the spec (kernel, signature, constexprs, hints, options), the target and the
kernel's dependency key as the environment's Triton computes it (the source of the kernel and of
every jit function it calls, constexpr and other globals it reads; see ``compiler.kernel_key``).
The analysed form (normalised stages, metrics) is kept too, under a key that also covers the
analysing code, so a warm run neither compiles nor re-normalises. Results are gzip-compressed
JSON files in ``cache_dir``, written atomically so parallel runs can share one cache. Only
successful compiles are kept: a failure may come from the environment (a missing tool, an import
error) and must show again only while it is still true. ``prune`` keeps the cache under a size
cap (the ``cache_max_mb`` setting), dropping the least recently used entries first.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import settings
from .compiler import WORKER_VERSION

_HERE = Path(__file__).resolve().parent


def analysis_version() -> str:
    """Changes whenever the code that normalises and measures artifacts changes."""
    h = hashlib.sha256()
    for name in ("normalize.py", "canonical.py", "metrics.py"):
        h.update((_HERE / name).read_bytes())
    return h.hexdigest()[:16]


def cache_key(
    fingerprint: dict[str, Any], spec_key: dict[str, Any], target: str, kernel_key: str
) -> str:
    body = {
        "worker": WORKER_VERSION,
        "env": fingerprint,
        "spec": spec_key,
        "target": target,
        "kernel": kernel_key,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class CacheInfo:
    """What the cache holds: its folder, entries and bytes, and the size cap."""

    root: str
    entries: int
    bytes: int
    max_bytes: int
    oldest: float | None  # last use of the least recently used entry (epoch seconds)


@dataclass(frozen=True)
class PruneResult:
    removed: int
    freed_bytes: int
    left: CacheInfo


class CompileCache:
    """Raw worker results by key, under ``root`` (default: the ``cache_dir`` setting).

    ``read=False`` (``--no-cache``) serves nothing from the cache; fresh results still refresh it.
    """

    def __init__(self, root: str | Path | None = None, *, read: bool = True) -> None:
        self.root = Path(root if root is not None else settings.get("cache_dir")).expanduser()
        self.read = read
        self._analysis = analysis_version()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json.gz"

    def analysis_key(self, key: str) -> str:
        """Where the analysed form of result ``key`` lives (it depends on the analysing code)."""
        return hashlib.sha256(f"{key}:{self._analysis}".encode()).hexdigest()

    def has(self, key: str) -> bool:
        return self.read and self._path(key).is_file()

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.read:
            return None
        p = self._path(key)
        try:
            with gzip.open(p, "rt", encoding="utf-8") as f:
                got = json.load(f)
            _touch(p)
            return got
        except FileNotFoundError:
            return None
        except (OSError, EOFError, json.JSONDecodeError):
            p.unlink(missing_ok=True)  # a torn or corrupt entry is recompiled
            return None

    def put(self, key: str, result: dict[str, Any]) -> None:
        """Keep ``result`` unless it is a failure (those are never cached)."""
        if result.get("transient") or result.get("status") != "ok":
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

    def _entries(self) -> list[tuple[float, int, Path]]:
        out = []
        for p in self.root.glob("??/*.json.gz"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            out.append((st.st_mtime, st.st_size, p))
        return out

    def info(self) -> CacheInfo:
        entries = self._entries()
        return CacheInfo(
            root=str(self.root),
            entries=len(entries),
            bytes=sum(e[1] for e in entries),
            max_bytes=max_bytes(),
            oldest=min((e[0] for e in entries), default=None),
        )

    def prune(
        self, max_bytes_: int | None = None, *, older_than_days: float | None = None
    ) -> PruneResult:
        """Drop entries unused for ``older_than_days``, then the least recently used ones until
        the cache fits ``max_bytes_`` (default: the ``cache_max_mb`` setting; 0 empties it)."""
        cap = max_bytes() if max_bytes_ is None else max_bytes_
        entries = sorted(self._entries())
        total = sum(e[1] for e in entries)
        cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
        removed = freed = 0
        for mtime, size, p in entries:
            if total <= cap and (cutoff is None or mtime >= cutoff):
                continue
            p.unlink(missing_ok=True)
            total -= size
            removed += 1
            freed += size
        return PruneResult(removed, freed, self.info())


def max_bytes() -> int:
    return int(float(settings.get("cache_max_mb")) * 1024 * 1024)


def _touch(p: Path) -> None:
    """Mark an entry as used (mtime), so pruning drops the least recently used first."""
    with contextlib.suppress(OSError):
        os.utime(p)
