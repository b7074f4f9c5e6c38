"""What every importer takes (ImportOptions) and what it counts (Tally), plus stable run ids.

A tally makes an import accountable: every metric id or record read is either a stored result or
is counted under the reason it was not, so ``results in == stored + skipped``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Imported runs without their own UUID get one derived from their content, so importing the same
# file twice adds nothing and two different nights never share an id.
NAMESPACE = uuid.UUID("6f1c3c9e-5d1e-4c53-9a57-2b7f0e0c1a11")
DEVICES = ("cuda", "rocm", "xpu", "mps", "cpu")


@dataclass(frozen=True)
class ImportOptions:
    """Facts a file may not carry itself; each is optional and only fills a gap.

    ``shape_names`` names the dimensions of tritonbench's tuple inputs (``M,N,K``); ``operator``
    and ``mode`` name a tritonbench CSV's benchmark; ``dtype`` is the data type of tritonbench
    results whose benchmark name carries none (the ``--precision`` it ran with); ``machine``,
    ``device`` and ``started_at`` describe per-operator files, which record no environment.
    """

    shape_names: tuple[str, ...] | None = None
    operator: str | None = None
    mode: str | None = None
    dtype: str | None = None
    machine: str | None = None
    device: str | None = None
    started_at: datetime | None = None


@dataclass
class Tally:
    """Counts of one file: items read, results made, and every skipped item by its reason."""

    items: int = 0  # metric ids (tritonbench) or records (HUD) read
    results: int = 0  # results handed to the Store
    skipped: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] += n

    def warn(self, message: str) -> None:
        self.warnings[message] += 1

    def merge(self, other: Tally) -> None:
        self.items += other.items
        self.results += other.results
        self.skipped.update(other.skipped)
        self.warnings.update(other.warnings)


def obj(v: Any) -> dict[str, Any]:
    """``v`` if it is a JSON object, else an empty one: foreign files leave sections out."""
    return v if isinstance(v, dict) else {}


def content_id(kind: str, *parts: Any) -> str:
    """A UUID derived from ``parts`` (JSON-able), stable across imports and key orders."""
    digest = hashlib.sha256(
        json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{digest}"))


def text_id(kind: str, text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{hashlib.sha256(data).hexdigest()}"))


def parse_time(v: Any) -> datetime | None:
    """A time from epoch seconds (or milliseconds), ISO 8601, or tritonbench's %Y%m%d%H%M%S."""
    if v is None or v == "" or v == "unknown":
        return None
    if isinstance(v, str) and v.strip().isdigit():
        s = v.strip()
        if len(s) == 14:  # tritonbench's benchmark_date / commit_time: 20250814020312
            try:
                return datetime.strptime(s, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            except ValueError:
                return None
        v = int(s)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        x = float(v)
        if x > 1e11:  # milliseconds
            x /= 1000.0
        return datetime.fromtimestamp(x, UTC)
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def device_of_gpu(gpu: str | None) -> str:
    """The device kind a GPU model name implies (tritonbench records the name, not the kind)."""
    if not gpu or gpu == "unknown":
        return "cpu"
    g = gpu.lower()
    if "amd" in g or "instinct" in g or "radeon" in g or g.startswith("mi"):
        return "rocm"
    if "intel" in g:
        return "xpu"
    if g == "mps" or g.startswith("apple"):
        return "mps"
    return "cuda"
