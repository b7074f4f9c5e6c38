"""The real timers and a real run on a GPU (skipped where torch sees none)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (torch.cuda)"),
]


def _l2() -> int:
    from tritonwatch.bench.timing import cache_bytes

    return cache_bytes(torch.cuda.get_device_properties(0))


def test_event_timer_times_a_matmul_and_flushes_l2() -> None:
    from tritonwatch.bench.timing import EventTimer, measure

    a = torch.randn(4096, 4096, device="cuda", dtype=torch.float16)
    timer = EventTimer(_l2())
    assert timer.flush_bytes >= 2 * _l2()
    m = measure(lambda: a @ a, timer, budget_ms=500, target_ci=0.01)
    assert len(m.samples) >= 10 and all(s > 0 for s in m.samples)
    med = sorted(m.samples)[len(m.samples) // 2]
    tflops = 2 * 4096**3 / (med / 1e3) / 1e12
    assert 1 < tflops < 5000  # a real GPU, not a clock error


def test_graph_timer_for_tiny_kernels_beats_launch_overhead() -> None:
    from tritonwatch.bench.timing import GraphTimer, measure

    x = torch.randn(1024, device="cuda")
    y = torch.empty_like(x)
    timer = GraphTimer(lambda: torch.add(x, 1, out=y), _l2(), est_ms=0.005)
    m = measure(lambda: None, timer, budget_ms=200, target_ci=0.02)
    assert timer.calls >= 10 and 0 < sorted(m.samples)[len(m.samples) // 2] < 0.05


def test_gpu_run_of_one_family(sqlite_url: str) -> None:
    from tritonwatch.bench.runner import RunOptions, run_suite
    from tritonwatch.store import Store

    with Store.open(sqlite_url) as st:
        out = run_suite(
            RunOptions(
                suite="smoke",
                patterns=["matmul[M=128"],
                dtypes=["fp16"],
                device="cuda",
                budget_ms=100,
            ),
            st,
        )
    bad = [
        (o.record.case.id, o.record.error)
        for o in out.outcomes
        if o.record.status in ("error", "incorrect")
    ]
    assert not bad
    ok = [o for o in out.outcomes if o.record.status == "ok"]
    assert ok and all(o.record.extra["timer"] in ("event", "graph") for o in ok)
    assert out.run.run.device in ("cuda", "rocm")


def test_event_timer_holds_launch_gaps_out_of_the_samples() -> None:
    """A kernel whose launch is slower than its run: without the hold the host's 200 us count."""
    import time

    from tritonwatch.bench.timing import EventTimer, measure

    x = torch.randn(1 << 22, device="cuda")
    y = torch.empty_like(x)

    def slow_launch() -> None:
        end = time.perf_counter() + 200e-6  # Python work before the launch, as a heavy launcher
        while time.perf_counter() < end:
            pass
        torch.add(x, 1, out=y)

    held, bare = EventTimer(_l2()), EventTimer(_l2(), hold=False)
    m_held = measure(slow_launch, held, budget_ms=300, target_ci=0.01)
    m_bare = measure(slow_launch, bare, budget_ms=300, target_ci=0.01)
    med = lambda s: sorted(s)[len(s) // 2]  # noqa: E731
    assert med(m_bare.samples) > 0.15  # the gap is in the unheld samples
    assert med(m_held.samples) < 0.1  # 32 MB moved: tens of microseconds, not the launch
    assert held.batches >= 1


def test_each_ab_block_moves_the_flush_buffer_with_the_inputs() -> None:
    # The flush buffer was made once per worker: a place of its own for each process's life.
    from tritonwatch import plugins
    from tritonwatch.bench.runner import RunOptions, plan
    from tritonwatch.bench.worker import Worker

    registry = plugins.load([])
    opts = RunOptions(suite="smoke", patterns=["softmax"], providers=["torch"], device="cuda")
    _, device, p = plan(opts, registry)
    worker = Worker(device, registry, 100.0, 0.01, 1)
    rec, live = worker.prepare_case(p.cases[0])
    assert live is not None and worker._event_timer is not None, rec
    before = worker._event_timer.cache.data_ptr()
    worker.refresh(live)
    assert worker._event_timer.cache.data_ptr() != before
    assert worker.time_segment(live, 5.0)["samples"]
