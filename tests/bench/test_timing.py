"""Timers and the adaptive stopping rule, with the shipped FakeTimer."""

from __future__ import annotations

import numpy as np
import pytest

from tritonwatch.bench.timing import (
    FakeTimer,
    WallTimer,
    ci_width,
    measure,
    median_ci,
    median_ci_rows,
)


def test_quiet_kernel_stops_on_the_ci_target() -> None:
    t = FakeTimer(median=0.5, cv=0.001, seed=1)
    m = measure(lambda: None, t, budget_ms=10_000, target_ci=0.005)
    assert m.stop == "ci" and len(m.samples) >= 10 and m.ci_width <= 0.005
    assert t.calls == len(m.samples)


def test_noisy_kernel_stops_on_the_budget_with_every_sample_kept() -> None:
    t = FakeTimer(median=1.0, cv=0.2, seed=2)
    m = measure(lambda: None, t, budget_ms=50, target_ci=0.001)
    assert m.stop == "budget" and m.ci_width > 0.001
    assert 45 <= sum(m.samples) <= 50 + 3 * max(m.samples) * 10  # the budget is honoured per batch
    assert len(m.samples) == t.calls


def test_at_least_ten_samples_even_past_the_budget() -> None:
    m = measure(lambda: None, FakeTimer([5.0, 5.1]), budget_ms=1, target_ci=0.5)
    assert len(m.samples) == 10


def test_ci_matches_the_store() -> None:
    x = np.random.default_rng(0).lognormal(0, 0.1, 101)
    med, lo, hi = median_ci(x.tolist())
    smed, slo, shi = median_ci_rows(x[None, :])
    assert (med, lo, hi) == (smed[0], slo[0], shi[0])
    assert ci_width([1.0] * 20) == 0.0


def test_scripted_samples_are_returned_in_order() -> None:
    assert FakeTimer([1.0, 2.0, 3.0]).sample(lambda: None, 4) == [1.0, 2.0, 3.0, 1.0]


def test_wall_timer_measures_real_work() -> None:
    def work() -> float:
        return float(sum(i * i for i in range(20_000)))

    m = measure(work, WallTimer(), budget_ms=30, target_ci=0.01)
    assert len(m.samples) >= 10 and all(s > 0 for s in m.samples) and m.timer == "wall"


@pytest.mark.parametrize("bad", [[], [float("nan")]])
def test_ci_width_is_infinite_without_data(bad: list[float]) -> None:
    assert ci_width(bad) == float("inf")


def test_a_narrow_ci_does_not_stop_sampling_before_min_time() -> None:
    from tritonwatch.bench.timing import FakeTimer, measure

    # Identical 1 ms samples: the CI is zero after the first 10; only min_time keeps sampling.
    quick = measure(lambda: None, FakeTimer([1.0]), budget_ms=1000, target_ci=0.005)
    assert quick.stop == "ci" and len(quick.samples) == 10
    m = measure(lambda: None, FakeTimer([1.0]), budget_ms=1000, target_ci=0.005, min_time_ms=50)
    assert m.stop == "ci" and m.elapsed_ms >= 50 and len(m.samples) >= 50


def test_the_flush_buffer_moves_to_a_new_place_of_the_same_size() -> None:
    # A/B moves it once per block (Worker.refresh): a buffer made once per worker would give
    # each process a lasting offset. The new one is made while the old still holds its place.
    torch = pytest.importorskip("torch")
    from tritonwatch.bench.timing import EventTimer

    timer = EventTimer(0, device="cpu", hold=False)  # the buffer logic, without a GPU
    before = timer.cache.data_ptr()
    size = timer.cache.numel() * timer.cache.element_size()
    timer.move_flush()
    assert timer.cache.data_ptr() != before
    assert timer.cache.numel() * timer.cache.element_size() == size == timer.flush_bytes
    assert timer.cache.dtype == torch.int32
