"""Fair use of one server by several organisations: an upload budget per organisation.

Each organisation has a token bucket of upload bytes: it holds up to ``max_upload_mb`` (so a
run of the largest allowed size always fits once the bucket is full) and refills at
``org_upload_mb_per_s``. An upload whose declared size the bucket cannot cover is answered 429
with ``Retry-After`` (the seconds until it can), before its body is read; ``tritonwatch push``
waits that long and retries. A body without ``Content-Length`` is charged once read, and the
debt delays the organisation's next upload. Buckets live in the server process (one per
replica), in the event loop's thread, so they need no lock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class OrgBudget:
    """Upload bytes per organisation: ``capacity`` bytes at most, refilled at ``rate`` bytes/s."""

    capacity: float
    rate: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _bucket(self, org: str) -> _Bucket:
        now = self.clock()
        b = self._buckets.get(org)
        if b is None:
            b = self._buckets[org] = _Bucket(self.capacity, now)
        else:
            b.tokens = min(self.capacity, b.tokens + (now - b.at) * self.rate)
            b.at = now
        return b

    def wait_s(self, org: str, cost: float) -> float:
        """Seconds until ``org`` may send ``cost`` bytes (0: now; nothing is taken)."""
        if self.rate <= 0:
            return 0.0
        b = self._bucket(org)
        need = min(cost, self.capacity) - b.tokens
        return 0.0 if need <= 0 else need / self.rate

    def take(self, org: str, cost: float) -> None:
        """Charge ``cost`` bytes to ``org`` (the bucket may go into debt)."""
        if self.rate > 0:
            self._bucket(org).tokens -= cost

    @staticmethod
    def retry_after(wait_s: float) -> str:
        """``Retry-After`` for a wait: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait_s)))
