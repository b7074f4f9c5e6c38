"""Timers and the adaptive stopping rule (DESIGN §4).

A :class:`Timer` turns "call ``fn`` once" into one sample in milliseconds, ``batch`` samples at a
time. :class:`EventTimer` uses device events with an L2 flush outside the timed region,
:class:`GraphTimer` replays a captured graph of many calls for kernels too short for events,
:class:`WallTimer` times CPU work, and :class:`FakeTimer` returns scripted samples for tests.
:func:`measure` keeps sampling until the 95% CI of the median is narrow enough or the budget is
spent. Worker side: imports only the stdlib, numpy and torch (lazily).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

MIN_SAMPLES = 10
MAX_SAMPLES = 10_000
GRAPH_THRESHOLD_MS = 0.01  # below ~10 us per call, event overhead dominates: use a graph
TIMERS = ("event", "graph")


class Timer(Protocol):
    """Measures ``fn`` ``batch`` times; returns one time in ms per sample."""

    name: str

    def sample(self, fn: Callable[[], Any], batch: int) -> list[float]: ...

    def clock_ms(self) -> float:
        """A monotonic clock for the budget (fake timers advance it by their samples)."""
        ...


def median_ci(samples: Sequence[float], level_z: float = 1.96) -> tuple[float, float, float]:
    """Median and distribution-free 95% CI of the median.

    Parameters
    ----------
    samples : sequence of float
        Raw samples, any order.
    level_z : float
        Normal quantile of the confidence level (1.96 for 95%).

    Returns
    -------
    (median, low, high) : tuple of float
        The CI bounds are the order statistics at ranks ``n/2 -/+ z sqrt(n)/2`` (normal
        approximation to the binomial), the same rule the Store uses, so what the runner stops on
        is what the database shows.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    lo, hi = ci_ranks(n, level_z)
    return float(np.median(x)), float(x[lo]), float(x[hi])


def ci_ranks(n: int, level_z: float = 1.96) -> tuple[int, int]:
    """The 0-based ranks of the CI bounds of the median of ``n`` sorted samples."""
    half = level_z * math.sqrt(n) / 2
    lo = int(max(0, math.floor(n / 2 - half)))
    hi = int(min(n - 1, math.ceil(n / 2 + half) - 1))
    return lo, hi


def median_ci_rows(
    samples: np.ndarray, level_z: float = 1.96
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`median_ci` of each row of a 2-D array of equal-length rows, in one numpy call.

    The store computes every stored result's median and CI with it, so what the runner stops on
    is what the database shows.
    """
    n = samples.shape[1]
    srt = np.sort(samples, axis=1)
    med = (srt[:, (n - 1) // 2] + srt[:, n // 2]) / 2  # np.median's value, without re-partitioning
    lo, hi = ci_ranks(n, level_z)
    return med, srt[:, lo], srt[:, hi]


def ci_width(samples: Sequence[float]) -> float:
    """Relative width ``(high - low) / median`` of the median's 95% CI (inf if undefined)."""
    med, lo, hi = median_ci(samples)
    if not med or not math.isfinite(med):
        return math.inf
    return (hi - lo) / abs(med)


# AMD CDNA3/4 put a 256 MB Infinity Cache (MALL) behind the L2 that torch reports (4 MB per XCD):
# a flush sized from the L2 alone leaves inputs cached there.
_MALL_BYTES = {"gfx942": 256 << 20, "gfx950": 256 << 20}


def cache_bytes(props: Any) -> int:
    """The last-level cache a flush must cover, from ``torch.cuda.get_device_properties``."""
    l2 = int(getattr(props, "L2_cache_size", 0) or 50 << 20)
    arch = str(getattr(props, "gcnArchName", "") or "").split(":")[0]
    return max(l2, _MALL_BYTES.get(arch, 0))


def choose_timer(device_ms: float, previous: str | None = None) -> str:
    """The GPU timer for a case: ``graph`` for kernels under GRAPH_THRESHOLD_MS, else ``event``.

    ``device_ms`` is the median of a batch of :class:`EventTimer` samples: device time, with the
    launch hidden behind the L2 flush, not host time (which adds launch and synchronisation). ``previous`` is the timer this case
    used before (recorded with its results): when given it wins, so a kernel near the threshold
    does not switch timers from night to night; the two timers measure different things (a cold
    L2 per call, or warm inside a replay) and a switch would look like a change of speed.
    """
    if previous in TIMERS:
        return str(previous)
    return "graph" if device_ms < GRAPH_THRESHOLD_MS else "event"


@dataclass
class Measurement:
    """Every sample (ms) of one case, and why sampling stopped."""

    samples: list[float]
    timer: str
    stop: str  # "ci" (target reached), "budget", "max_samples"
    ci_width: float
    elapsed_ms: float
    batch: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def measure(
    fn: Callable[[], Any],
    timer: Timer,
    *,
    budget_ms: float,
    target_ci: float,
    min_samples: int = MIN_SAMPLES,
    max_samples: int = MAX_SAMPLES,
    min_time_ms: float = 0.0,
) -> Measurement:
    """Sample ``fn`` until the median's 95% CI is within ``target_ci`` or ``budget_ms`` is spent.

    At least ``min_samples`` samples are always taken, even past the budget. Batches grow
    geometrically (10, 10, 20, 40, ...) so the CI is checked often early and cheaply later.
    A narrow CI does not stop sampling before ``min_time_ms`` has passed: samples from a few
    milliseconds share one clock and power state, and their CI says nothing about the next.
    """
    samples: list[float] = []
    start = timer.clock_ms()
    batch = min_samples
    stop = "budget"
    while True:
        samples += timer.sample(fn, batch)
        width = ci_width(samples)
        elapsed = timer.clock_ms() - start
        if len(samples) >= min_samples and width <= target_ci and elapsed >= min_time_ms:
            stop = "ci"
            break
        if len(samples) >= max_samples:
            stop = "max_samples"
            break
        if elapsed >= budget_ms and len(samples) >= min_samples:
            break
        per = max(elapsed / len(samples), 1e-6)
        left = max(budget_ms - elapsed, 0.0)
        batch = int(
            min(max(len(samples) // 2, min_samples), max(1, left / per), max_samples - len(samples))
        )
        batch = max(batch, 1 if len(samples) >= min_samples else min_samples - len(samples))
    return Measurement(
        samples=samples,
        timer=timer.name,
        stop=stop,
        ci_width=width,
        elapsed_ms=timer.clock_ms() - start,
    )


class WallTimer:
    """``time.perf_counter_ns`` around each call; ``sync`` (if given) waits for the device."""

    name = "wall"

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self._sync = sync or (lambda: None)

    def clock_ms(self) -> float:
        return time.perf_counter_ns() / 1e6

    def sample(self, fn: Callable[[], Any], batch: int) -> list[float]:
        out = []
        for _ in range(batch):
            self._sync()
            t0 = time.perf_counter_ns()
            fn()
            self._sync()
            out.append((time.perf_counter_ns() - t0) / 1e6)
        return out


class EventTimer:
    """Device events around each call, L2 flushed before each call outside the timed region.

    The flush writes a buffer of at least twice the device's L2 so no input stays cached; events
    are created once and reused; the host synchronizes once per batch, not per sample.

    Launch gaps: events time the device from ``start`` to ``end``, so if the host has not yet
    launched ``fn`` when the device reaches ``start``, the launch latency is counted as kernel
    time. For a kernel shorter than its launch (a Triton launch costs tens of microseconds of
    Python) that inflates every sample. So each batch begins with a hold: a device-side sleep
    long enough for the host to enqueue the whole batch behind it (nvbench does the same with a
    blocking kernel). The timer checks that the hold outlasted the enqueueing (an event after the
    sleep has not completed when the host is done); when it did not, ``hold_misses`` counts the
    batch and the next hold is longer.
    """

    name = "event"
    MAX_HOLD_MS = 200.0

    def __init__(self, l2_bytes: int, device: Any = None, hold: bool = True) -> None:
        import torch

        self.torch = torch
        size = max(2 * int(l2_bytes), 64 << 20)
        self.flush_bytes = size
        self.cache = torch.empty(size // 4, dtype=torch.int32, device=device or "cuda")
        self._events: list[tuple[Any, Any]] = []
        self.hold = hold and hasattr(torch.cuda, "_sleep")
        self.hold_ms = 1.0
        self.batches = 0
        self.hold_misses = 0
        self._cycles_per_ms: float | None = None
        self._gate: Any = torch.cuda.Event() if self.hold else None

    def clock_ms(self) -> float:
        return time.perf_counter_ns() / 1e6

    def move_flush(self) -> None:
        """Put the flush buffer somewhere else in device memory (A/B: once per block).

        The flush leaves the L2 full of the buffer's dirty lines, which the timed kernel's own
        traffic writes back to memory; where the buffer lies then shapes that traffic. A buffer
        made once per worker would give each worker process a lasting offset of its own, so
        A/B moves it with the inputs (``Worker.refresh``). The new buffer is made before the old
        one is freed, so the allocator cannot hand back the same place.
        """
        self.cache = self.torch.empty_like(self.cache)  # the old one is freed on assignment

    def _pairs(self, n: int) -> list[tuple[Any, Any]]:
        ev = self.torch.cuda.Event
        while len(self._events) < n:
            self._events.append((ev(enable_timing=True), ev(enable_timing=True)))
        return self._events[:n]

    def _sleep_cycles_per_ms(self) -> float:
        """GPU clock cycles per millisecond of ``torch.cuda._sleep``, measured once."""
        if self._cycles_per_ms is None:
            torch = self.torch
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            cycles = 2_000_000
            torch.cuda._sleep(cycles)  # the first call may load the kernel
            start.record()
            torch.cuda._sleep(cycles)
            end.record()
            torch.cuda.synchronize()
            self._cycles_per_ms = cycles / max(start.elapsed_time(end), 1e-3)
        return self._cycles_per_ms

    def sample(self, fn: Callable[[], Any], batch: int) -> list[float]:
        pairs = self._pairs(batch)
        for _attempt in range(3):
            if self.hold:
                self.torch.cuda._sleep(int(self.hold_ms * self._sleep_cycles_per_ms()))
                self._gate.record()
            t0 = time.perf_counter()
            for start, end in pairs:
                self.cache.zero_()
                start.record()
                fn()
                end.record()
            enqueue_ms = (time.perf_counter() - t0) * 1e3
            self.batches += 1
            missed = False
            if self.hold:
                # Did the device run past the hold while the host was still enqueueing?
                missed = bool(self._gate.query())
                # Size the next hold for a batch twice this one (batches grow geometrically).
                self.hold_ms = min(max(1.0, 3.0 * enqueue_ms), self.MAX_HOLD_MS)
            self.torch.cuda.synchronize()
            if not missed:
                break
            self.hold_misses += 1  # those samples may hold launch gaps: take the batch again
        return [s.elapsed_time(e) for s, e in pairs]


class GraphTimer:
    """Replays a captured CUDA graph of ``calls`` calls; one sample = replay time / calls.

    For kernels of a few microseconds, launch overhead and event resolution swamp the kernel;
    a graph removes the launches and amortises the events. The L2 is flushed before each replay
    (outside the timed region); inside one replay the inputs stay cached, which matches how such
    tiny kernels run in a model.
    """

    name = "graph"

    def __init__(
        self,
        fn: Callable[[], Any],
        l2_bytes: int,
        est_ms: float,
        target_replay_ms: float = 1.0,
        events: EventTimer | None = None,
    ) -> None:
        import torch

        self.torch = torch
        self.calls = int(min(1000, max(10, target_replay_ms / max(est_ms, 1e-4))))
        self.events = events or EventTimer(l2_bytes)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn()  # warm on the capture stream (allocator, lazy init)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            for _ in range(self.calls):
                fn()
        torch.cuda.synchronize()

    def clock_ms(self) -> float:
        return time.perf_counter_ns() / 1e6

    def sample(self, fn: Callable[[], Any], batch: int) -> list[float]:
        replays = self.events.sample(self.graph.replay, batch)
        return [t / self.calls for t in replays]


class FakeTimer:
    """Scripted samples for tests: ``fn`` is called (so side effects happen) but not timed.

    ``samples`` are returned in order and cycled; or pass ``median`` and ``cv`` for seeded
    log-normal noise. The clock advances by each sample so budgets behave as on a real device.
    """

    name = "fake"

    def __init__(
        self,
        samples: Sequence[float] | None = None,
        *,
        median: float = 1.0,
        cv: float = 0.01,
        seed: int = 0,
        call: bool = True,
    ) -> None:
        self._script = list(samples) if samples else None
        self._rng = np.random.default_rng(seed)
        self._median, self._cv = median, cv
        self._i = 0
        self._clock = 0.0
        self._call = call
        self.calls = 0

    def clock_ms(self) -> float:
        return self._clock

    def _next(self) -> float:
        if self._script is not None:
            v = self._script[self._i % len(self._script)]
        else:
            v = float(self._median * math.exp(self._cv * self._rng.standard_normal()))
        self._i += 1
        return float(v)

    def sample(self, fn: Callable[[], Any], batch: int) -> list[float]:
        out = []
        for _ in range(batch):
            if self._call:
                fn()
                self.calls += 1
            v = self._next()
            self._clock += v
            out.append(v)
        return out
