"""kill -9 the server during uploads and the runner during an import and a push, then recover.

After every kill: no partial run (a run row whose results are not all there), no duplicate run,
the databases open and pass their integrity checks, and re-running push delivers every run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fleetkit import pg_counts

from tritonwatch.push import PushOptions, PushReport, push
from tritonwatch.store import Store
from tritonwatch.testing import make_run, make_run_document

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N_RUNS = 10
N_RESULTS = 1000


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tritonwatch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _wait_for(what: str, cond: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _local_runs(url: str) -> None:
    with Store.open(url) as st:
        for i in range(N_RUNS):
            st.runs.add(
                make_run(
                    n_results=N_RESULTS,
                    machine="crashy",
                    seed=i,
                    started_at=f"2026-10-{i + 1:02d}T00:00:00Z",
                )
            )


def _sqlite_state(path: Path) -> dict[str, Any]:
    con = sqlite3.connect(path)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        partial = con.execute(
            "SELECT count(*) FROM runs r WHERE r.n_results <> "
            "(SELECT count(*) FROM results x WHERE x.run_id = r.id)"
        ).fetchone()[0]
        pushes = con.execute("SELECT count(*) FROM pushes").fetchone()[0]
    finally:
        con.close()
    return {"integrity": ok, "runs": runs, "partial": partial, "pushes": pushes}


def _pg_runs(url: str) -> int:
    return pg_counts(url)["runs"]


def test_kill_9_the_server_mid_upload_then_restart(
    tmp_path: Path, pg_url: str, make_server: Any
) -> None:
    local = f"sqlite:///{tmp_path / 'runner.db'}"
    _local_runs(local)
    with Store.open(pg_url) as central:
        token = central.access.create_token("acme", "crashy").token
    srv = make_server(pg_url).start()
    # The push runs in a thread here (the runner is not what is killed); same code as the CLI.
    reports: list[PushReport] = []
    st = Store.open(local)
    opts = PushOptions(attempts=2, backoff_s=0.1)
    pusher = threading.Thread(target=lambda: reports.append(push(st, srv.url, token, opts)))
    pusher.start()
    _wait_for("two runs on the server", lambda: _pg_runs(pg_url) >= 2)
    srv.kill9()
    pusher.join(120)
    assert not reports[0].complete and reports[0].stopped  # runs left in the spool
    c = pg_counts(pg_url)
    assert 2 <= c["runs"] < N_RUNS, c
    assert c["partial"] == 0 and c["dup_uuids"] == 0
    assert c["results"] == c["runs"] * N_RESULTS
    srv.start()
    again = push(st, srv.url, token, opts)
    st.close()
    assert again.complete and again.count("created") + again.count("existing") == len(again.runs)
    c = pg_counts(pg_url)
    assert c == {**c, "runs": N_RUNS, "results": N_RUNS * N_RESULTS, "partial": 0, "dup_uuids": 0}
    state = _sqlite_state(tmp_path / "runner.db")
    assert state["pushes"] == N_RUNS and state["integrity"] == "ok"


def test_kill_9_an_import_leaves_the_local_db_consistent(tmp_path: Path) -> None:
    jsonl = tmp_path / "runs.jsonl"
    with jsonl.open("w") as f:
        for i in range(N_RUNS):
            f.write(json.dumps(make_run_document(n_results=N_RESULTS, seed=i)) + "\n")
    db_path = tmp_path / "local.db"
    Store.upgrade(f"sqlite:///{db_path}")
    url = f"sqlite:///{db_path}"
    proc = _cli("import", "--db", url, str(jsonl))
    journals = [Path(str(db_path) + s) for s in ("-journal", "-wal")]
    # The import validates everything first and writes in one transaction: kill it mid-write.
    _wait_for("the import's write transaction", lambda: any(p.exists() for p in journals))
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    state = _sqlite_state(db_path)
    assert state["integrity"] == "ok" and state["partial"] == 0
    assert state["runs"] in (0, N_RUNS)
    redo = _cli("import", "--db", url, str(jsonl))
    out = redo.communicate(timeout=120)[0]
    assert redo.returncode == 0, out
    state = _sqlite_state(db_path)
    assert state["runs"] == N_RUNS and state["partial"] == 0


def test_kill_9_a_push_midway_then_push_again(
    tmp_path: Path, module_pg: str, shared_server: Any
) -> None:
    local = f"sqlite:///{tmp_path / 'runner.db'}"
    _local_runs(local)
    with Store.open(module_pg) as central:
        token = central.access.create_token("acme", "crashy").token
    srv = shared_server  # this test kills the runner, not the server
    env = {"TRITONWATCH_TOKEN": token}
    proc = _cli("push", "--db", local, "--server", srv.url, env=env)
    _wait_for("three runs on the server", lambda: _pg_runs(module_pg) >= 3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    state = _sqlite_state(tmp_path / "runner.db")
    assert state["integrity"] == "ok" and state["partial"] == 0 and state["runs"] == N_RUNS
    on_server = _pg_runs(module_pg)
    # only runs the server accepted are marked; the server may hold one not yet marked
    assert state["pushes"] <= on_server < N_RUNS
    with Store.open(local) as st:
        assert len(st.pushes.pending(srv.url)) == N_RUNS - state["pushes"]
    again = _cli("push", "--db", local, "--server", srv.url, env=env)
    out = again.communicate(timeout=120)[0]
    assert again.returncode == 0, out
    # An upload in flight when the runner died may still commit on the server afterwards, so
    # "already there" is at least what the server held at the kill, and every pending run is
    # either sent now or found there.
    m = re.search(r"(\d+) sent, (\d+) already there, 0 still spooled", out)
    assert m, out
    sent, already = int(m.group(1)), int(m.group(2))
    assert sent + already == N_RUNS - state["pushes"]
    assert already >= on_server - state["pushes"]
    c = pg_counts(module_pg)
    assert c["runs"] == N_RUNS and c["partial"] == 0 and c["dup_uuids"] == 0
    assert _sqlite_state(tmp_path / "runner.db")["pushes"] == N_RUNS


def test_kill_9_a_benchmark_run_leaves_nothing_half_written(tmp_path: Path) -> None:
    """`tritonwatch run` writes its run in one transaction at the end: killed while measuring
    (here a provider hangs), the local database has no run, passes its integrity check, and the
    next run stores normally."""
    fake = Path(__file__).parent.parent / "bench"
    suite = tmp_path / "fake.toml"
    suite.write_text('[[cases]]\noperator = "fake"\nproviders = ["good", "hang"]\n')
    db_path = tmp_path / "runner.db"
    url = f"sqlite:///{db_path}"
    Store.upgrade(url)
    env = {**os.environ, "PYTHONPATH": str(fake), "TRITONWATCH_CASE_TIMEOUT_S": "120"}
    args = [
        sys.executable,
        "-m",
        "tritonwatch",
        "run",
        "--suite",
        str(suite),
        "--device",
        "cpu",
        "--budget-ms",
        "20",
        "--seed",
        "1",
        "--plugin",
        "fakeops:register",
        "--db",
        url,
    ]
    # A session of its own, so the kill reaches the worker processes the runner started too.
    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    time.sleep(8)  # workers started; the good case is measured, the hang case is hanging
    assert proc.poll() is None, proc.communicate()[0]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    state = _sqlite_state(db_path)
    assert state == {"integrity": "ok", "runs": 0, "partial": 0, "pushes": 0}
    good = [a if a != str(suite) else str(tmp_path / "good.toml") for a in args]
    (tmp_path / "good.toml").write_text('[[cases]]\noperator = "fake"\nproviders = ["good"]\n')
    redo = subprocess.run(good, env=env, capture_output=True, text=True, timeout=180)
    assert redo.returncode == 0, redo.stdout + redo.stderr
    state = _sqlite_state(db_path)
    assert state["runs"] == 1 and state["partial"] == 0 and state["integrity"] == "ok"
