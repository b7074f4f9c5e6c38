"""A/B on a GPU: a build's workers autotune a case once (bench.tuning); skipped without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (torch.cuda)"),
]


def test_the_second_worker_of_a_build_times_the_first_ones_autotuned_choice(
    tmp_path: Path,
) -> None:
    from tritonwatch import plugins
    from tritonwatch.bench.live import LiveWorker
    from tritonwatch.bench.pool import gpu_slot
    from tritonwatch.bench.runner import RunOptions, plan, worker_argv

    opts = RunOptions(suite="smoke", patterns=["matmul[M=128"], dtypes=["fp16"], device="cuda")
    _, device, p = plan(opts, plugins.load(()))
    i = next(k for k, c in enumerate(p.cases) if c.provider_key == "triton/pointers")
    tuned = tmp_path / "tuning-A"
    argv = [*worker_argv(device, 100.0, 0.01, 0, ()), "--tuning-dir", str(tuned)]
    slot = (None, gpu_slot(0)[1])
    with LiveWorker(argv, slot, p.cases, str(tmp_path), 600) as first:
        first.start()
        one = first.ask("prepare", i)
    assert one["status"] == "ok" and one["extra"]["config"].get("autotuned"), one
    files = {f: f.stat().st_mtime_ns for f in tuned.rglob("*.autotune.json")}
    assert files, "the first worker's autotuning results are in the build's folder"
    with LiveWorker(argv, slot, p.cases, str(tmp_path), 600) as second:
        second.start()
        two = second.ask("prepare", i)
    assert two["status"] == "ok"
    assert two["extra"]["config"] == one["extra"]["config"]
    assert {f: f.stat().st_mtime_ns for f in tuned.rglob("*.autotune.json")} == files
