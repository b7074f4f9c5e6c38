"""On a CPU an A/B forks each build's workers from one process that imported torch and Triton
(bench.forkserver): real processes, the planted plugin's cases."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from support.probes import needs

from tritonwatch.bench import live
from tritonwatch.bench.forkserver import ForkedProc
from tritonwatch.bench.live import Crew, WorkerLost, resolve
from tritonwatch.bench.pool import timing_argv
from tritonwatch.bench.spec import Case


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def _cases(planted: Path) -> list[Case]:
    from tritonwatch import plugins
    from tritonwatch.bench.registry import expand, load_suite
    from tritonwatch.bench.runner import probe

    return list(expand(plugins.load(()), load_suite(str(planted)), probe("cpu")).cases)


@needs("torch", "triton")
def test_a_cpu_comparison_forks_each_builds_workers_from_its_own_import(
    planted: Path, quick: None
) -> None:
    # Eight workers each importing torch took 5.6-6.3 s of a 12.9 s comparison on two cores.
    env = resolve("current")
    crew = Crew({"A": env, "B": env}, 2, "cpu", None, ())
    servers = {s: crew.servers[s].proc.pid for s in "AB"}
    assert servers["A"] != servers["B"]  # an A/A too: one import per build, as an A/B has
    pids: list[int] = []
    with crew:
        crew.configure(_cases(planted), timing_argv(100.0, 0.01, 0))
        for side, workers in crew.workers.items():
            for w in workers:
                fp = w.ready()
                assert fp["build"]["triton"]["version"] == env.triton_version
                assert isinstance(w.proc, ForkedProc) and w.proc.pid is not None
                assert _ppid(w.proc.pid) == servers[side]
                pids.append(w.proc.pid)
        assert len(set(pids)) == 4
        for w in crew.all:  # each its own process, with its own inputs
            assert w.ask("prepare", 0, warm_ms=0.0)["status"] == "ok"
            seg = w.ask("time", 0, budget_ms=3.0, fresh=True)
            assert len(seg["samples"]) >= 2, seg
            w.ask("drop", 0)
    assert all(_gone(p) for p in [*pids, *servers.values()])


@needs("torch", "triton")
def test_a_forked_worker_that_dies_is_reported_with_its_signal_and_forked_again(
    planted: Path, quick: None
) -> None:
    env = resolve("current")
    with Crew({"A": env, "B": env}, 1, "cpu", None, ()) as crew:
        crew.configure(_cases(planted), timing_argv(100.0, 0.01, 0))
        w = crew.workers["B"][0]
        w.ready()
        assert w.proc is not None and w.proc.pid is not None
        first = w.proc.pid
        os.kill(first, signal.SIGSEGV)  # a kernel that crashes its process
        with pytest.raises(WorkerLost, match=r"worker crashed \(signal 11\)"):
            w.ask("prepare", 0)
        assert not w.alive
        w.start()
        assert w.proc is not None and w.proc.pid not in (None, first)
        assert _ppid(w.proc.pid) == crew.servers["B"].proc.pid and w.starts == 2
        assert w.ask("prepare", 0)["status"] == "ok"


@needs("torch", "triton")
def test_a_crew_closed_while_its_servers_import_returns_at_once_and_leaves_nothing(
    planted: Path, quick: None
) -> None:
    # Ctrl-C before the workers are ready: nothing was forked yet, nothing may be left.
    env = resolve("current")
    crew = Crew({"A": env, "B": env}, 4, "cpu", None, ())
    servers = [s.proc.pid for s in crew.servers.values()]
    t0 = time.monotonic()
    crew.close()
    assert time.monotonic() - t0 < 3.0
    assert all(_gone(p) for p in servers)
    assert all(w.proc is None for w in crew.all)


def test_a_gpu_comparison_spawns_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process that has touched CUDA cannot be forked: --device auto on a host that shows a GPU
    # (and cuda) spawns each worker, as before.
    monkeypatch.setattr(live, "gpu_visible", lambda: True)
    slow = tmp_path / "slow-python"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    env = live.BuildEnv("slow", str(slow), "3.9.0")
    for device in ("auto", "cuda"):
        with Crew({"A": env, "B": env}, 1, device, None, ()) as crew:
            assert crew.servers == {}
            assert all(not isinstance(w.proc, ForkedProc) for w in crew.all)
