"""The GPU path's choices, checked on a CPU: what a provider leaves behind, timer choice, sticky
timer hints, interpreter availability."""

from __future__ import annotations

import gc
import weakref

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

from tritonwatch import plugins  # noqa: E402
from tritonwatch.bench.spec import Case, DeviceInfo  # noqa: E402

CPU = DeviceInfo("cpu", "cpu", interpreter=True)


def test_device_desc_matmul_keeps_no_tensor_alive_after_its_case() -> None:
    # Triton keeps the allocator globally; one that captured the inputs held them for the rest
    # of the worker's life (the next cases ran with that memory gone).
    reg = plugins.load()
    op = reg.operator("matmul")
    case = Case("matmul", "triton", "device_desc", {"M": 64, "N": 48, "K": 80}, "fp16")
    inputs = op.make_inputs(case.shape, case.dtype, "cpu", 0)
    ref = weakref.ref(inputs["a"])
    prepared = reg.provider("matmul", "triton/device_desc").prepare(inputs, case, CPU)
    del inputs, prepared
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize(
    ("triton", "numpy", "broken"),
    [((3, 6), (2, 4), True), ((3, 6), (2, 3), False), ((3, 7), (2, 4), False)],
)
def test_triton_36_interpreter_with_numpy_24_is_a_reason_not_53_failures(
    triton: tuple[int, int], numpy: tuple[int, int], broken: bool
) -> None:
    from tritonwatch.bench.registry import interpreter_problem

    why = interpreter_problem(triton, numpy)
    assert (why is not None) == broken
    if why:
        assert "numpy<2.4" in why and "3.6" in why


def test_the_reason_lists_triton_cases_as_unavailable_on_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tritonwatch.bench import registry as r

    monkeypatch.setattr(r, "_version", {"triton": (3, 6), "numpy": (2, 4)}.get)
    plan = r.expand(plugins.load(), r.load_suite("smoke"), CPU, patterns=["softmax"])
    assert plan.cases and all(c.provider != "triton" for c in plan.cases)
    assert any(c.provider == "triton" and "numpy<2.4" in why for c, why in plan.skipped)


def test_amd_flush_covers_the_infinity_cache() -> None:
    from types import SimpleNamespace

    from tritonwatch.bench.timing import cache_bytes

    mi300 = SimpleNamespace(L2_cache_size=4 << 20, gcnArchName="gfx942:sramecc+:xnack-")
    h100 = SimpleNamespace(L2_cache_size=50 << 20)
    assert cache_bytes(mi300) == 256 << 20 and cache_bytes(h100) == 50 << 20


def test_timer_choice_is_made_from_device_time_and_sticks() -> None:
    from tritonwatch.bench.timing import GRAPH_THRESHOLD_MS, choose_timer

    assert choose_timer(GRAPH_THRESHOLD_MS / 2) == "graph"
    assert choose_timer(GRAPH_THRESHOLD_MS * 2) == "event"
    # A kernel that drifted across the threshold keeps the timer its history was measured with.
    assert choose_timer(GRAPH_THRESHOLD_MS * 2, previous="graph") == "graph"
    assert choose_timer(GRAPH_THRESHOLD_MS / 2, previous="event") == "event"
    assert choose_timer(GRAPH_THRESHOLD_MS / 2, previous="wall") == "graph"  # a CPU run's: no


def test_timer_hints_travel_to_the_worker_in_the_cases_file() -> None:
    from tritonwatch.bench.spec import dump_cases, load_cases, load_timer_hints

    a = Case("softmax", "triton", "", {"M": 4096, "N": 4096}, "fp16")
    b = Case("softmax", "torch", "", {"M": 4096, "N": 4096}, "fp16")
    text = dump_cases([a, b], {a.id: "graph"})
    assert load_cases(text) == [a, b] and load_timer_hints(text) == {a.id: "graph"}


def _gpu_run(machine: str, timer: str, case: Case) -> object:
    import uuid
    from datetime import UTC, datetime

    from tritonwatch.runformat import FORMAT, parse_run

    return parse_run(
        {
            "format": FORMAT,
            "run": {"id": str(uuid.uuid4()), "started_at": datetime.now(UTC).isoformat(),
                    "device": "cuda"},
            "machine": {"name": machine, "device": "cuda", "gpu_model": "NVIDIA H200"},
            "build": {"triton": {"version": "3.6.0"}},
            "results": [
                {**case.to_json(), "metric": "time", "unit": "ms", "samples": [0.01] * 10,
                 "extra": {"timer": timer}}
            ],
        }
    )  # fmt: skip


def test_the_runner_reuses_the_timer_this_machine_used_last(sqlite_url: str) -> None:
    from tritonwatch import settings
    from tritonwatch.bench.runner import previous_timers
    from tritonwatch.store import Store

    gpu = DeviceInfo("cuda", "sm90", "NVIDIA H200", (9, 0), 132)
    # M, N, K: the store keeps shapes with sorted keys, the case in its operator's order.
    case = Case("matmul", "triton", "pointers", {"M": 16, "N": 8192, "K": 8192}, "fp16")
    other = Case("softmax", "torch", "", {"M": 4096, "N": 4096}, "fp16")
    with Store.open(sqlite_url) as st:
        st.runs.add(_gpu_run("box-a", "graph", case))
        st.runs.add(_gpu_run("box-b", "event", case))  # another machine's choice is not ours
        with settings.scope(machine_name="box-a"):
            assert previous_timers(st, gpu, [case, other]) == {case.id: "graph"}
            assert previous_timers(st, CPU, [case]) == {}  # CPU runs time with the wall clock
        with settings.scope(machine_name="box-c"):
            assert previous_timers(st, gpu, [case]) == {}
