"""`tritonwatch push`: retries and backoff, the spool, refusals; end to end against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fleetkit import free_port, pg_counts

from tritonwatch.cli import main
from tritonwatch.errors import RemoteError, UsageError
from tritonwatch.push import PushOptions, push
from tritonwatch.store import Store
from tritonwatch.store.pushes import server_key
from tritonwatch.testing import make_run

SERVER = "http://tw.test:8000"
FAST = PushOptions(attempts=4, backoff_s=0.0)


def _local(url: str, n: int, **kw: Any) -> Store:
    st = Store.open(url)
    for i in range(n):
        st.runs.add(make_run(n_results=3, started_at=f"2026-11-0{i + 1}T00:00:00Z", **kw))
    return st


def _server(script: list[int], seen: list[dict[str, Any]]) -> httpx.MockTransport:
    """A fake server answering each request with the next status of ``script``."""

    def handle(request: httpx.Request) -> httpx.Response:
        doc = json.loads(request.content)
        seen.append({"auth": request.headers["authorization"], "run": doc["run"]["id"]})
        code = script.pop(0) if script else 201
        if code in (200, 201):
            return httpx.Response(code, json={"run": doc["run"]["id"], "created": code == 201})
        return httpx.Response(code, json={"error": f"scripted {code}"})

    return httpx.MockTransport(handle)


def test_retries_with_backoff_then_marks_runs_pushed(sqlite_url: str) -> None:
    st = _local(sqlite_url, 3)
    seen: list[dict[str, Any]] = []
    delays: list[float] = []
    opts = PushOptions(attempts=4, backoff_s=0.5, max_backoff_s=1.5)
    rep = push(
        st, SERVER, "tw_x", opts, transport=_server([503, 502, 201, 200], seen), sleep=delays.append
    )
    assert rep.complete and rep.count("created") == 2 and rep.count("existing") == 1
    assert [r.attempts for r in rep.runs] == [3, 1, 1]
    assert len(delays) == 2 and 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0
    assert all(s["auth"] == "Bearer tw_x" for s in seen)
    assert st.pushes.pending(SERVER) == [] and st.pushes.status(SERVER).pushed == 3
    # safe to re-run: nothing left to send, nothing sent
    seen.clear()
    again = push(st, SERVER + "/", "tw_x", FAST, transport=_server([], seen))
    assert again.runs == [] and seen == []
    # another server has its own spool
    assert len(st.pushes.pending("https://other.example")) == 3
    st.close()


def test_unreachable_server_leaves_the_rest_spooled(sqlite_url: str) -> None:
    st = _local(sqlite_url, 3)
    seen: list[dict[str, Any]] = []
    rep = push(
        st,
        SERVER,
        "tw_x",
        FAST,
        transport=_server([201, 503, 503, 503, 503], seen),
        sleep=lambda _s: None,
    )
    assert rep.count("created") == 1 and rep.count("failed") == 1 and rep.left == 1
    assert rep.pending == 2 and not rep.complete and "503" in (rep.stopped or "")
    assert len(st.pushes.pending(SERVER)) == 2
    st.close()


def test_refused_run_stays_spooled_and_the_others_go_on(sqlite_url: str) -> None:
    st = _local(sqlite_url, 3)
    seen: list[dict[str, Any]] = []
    rep = push(
        st, SERVER, "tw_x", FAST, transport=_server([201, 422, 201], seen), sleep=lambda _s: None
    )
    assert [r.outcome for r in rep.runs] == ["created", "refused", "created"]
    assert rep.runs[1].attempts == 1 and "scripted 422" in rep.runs[1].message
    assert [p.uuid for p in st.pushes.pending(SERVER)] == [rep.runs[1].uuid]
    st.close()


def test_a_refused_token_stops_the_push(sqlite_url: str) -> None:
    st = _local(sqlite_url, 2)
    with pytest.raises(RemoteError, match="refused the token"):
        push(st, SERVER, "tw_bad", FAST, transport=_server([401], []), sleep=lambda _s: None)
    assert len(st.pushes.pending(SERVER)) == 2
    with pytest.raises(UsageError, match="needs a token"):
        push(st, SERVER, "", FAST)
    st.close()


def test_an_answer_that_does_not_name_the_run_is_not_acceptance(sqlite_url: str) -> None:
    st = _local(sqlite_url, 1)
    transport = httpx.MockTransport(lambda r: httpx.Response(200, text="<html>proxy</html>"))
    rep = push(st, SERVER, "tw_x", FAST, transport=transport, sleep=lambda _s: None)
    assert rep.count("failed") == 1 and len(st.pushes.pending(SERVER)) == 1
    st.close()


def test_server_urls_are_canonical_and_never_carry_credentials() -> None:
    assert server_key("HTTP://Host:8000/") == "http://host:8000"
    for bad in ("ftp://x", "host:8000", "https://user:tw_x@host"):
        with pytest.raises(UsageError):
            server_key(bad)


def test_push_cli_reports_usage_errors_on_one_line(sqlite_url: str) -> None:
    res = CliRunner().invoke(main, ["push", "--db", sqlite_url, "--server", SERVER])
    assert res.exit_code == 2 and res.output.startswith("error: pushing needs a token")
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["push", "--db", sqlite_url, "--token", "x"])
    assert res.exit_code == 2 and "no server" in res.output


def _cli(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tritonwatch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        **kw,
    )


@pytest.mark.postgres
def test_push_end_to_end_server_down_at_first(
    tmp_path: Path, pg_url: str, make_server: Any
) -> None:
    local = f"sqlite:///{tmp_path / 'runner.db'}"
    _local(local, 3, machine="gpu-7").close()
    with Store.open(pg_url) as central:
        token = central.access.create_token("acme", "gpu-7", scopes=("upload",)).token
    srv = make_server(pg_url)
    srv.port = free_port()
    env = {"TRITONWATCH_TOKEN": token}
    proc = _cli(
        "push", "--db", local, "--server", srv.url, "--retries", "40", "--backoff", "0.2", env=env
    )
    time.sleep(1.5)  # the push is retrying against a closed port
    assert proc.poll() is None
    srv.start()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "3 sent, 0 already there, 0 still spooled" in out
    c = pg_counts(pg_url)
    assert c["runs"] == 3 and c["results"] == 9 and c["dup_uuids"] == 0 and c["partial"] == 0
    with Store.open(pg_url) as central:
        assert {r.machine for r in central.runs.find(limit=None)} == {"acme/gpu-7"}
    # re-running sends nothing; a new local run goes alone
    again = _cli("push", "--db", local, "--server", srv.url, env=env)
    out2 = again.communicate(timeout=60)[0]
    assert again.returncode == 0 and "0 sent, 0 already there, 0 still spooled" in out2
    with Store.open(local) as st:
        st.runs.add(make_run(n_results=2, machine="gpu-7", started_at="2026-11-09T00:00:00Z"))
    third = _cli("push", "--db", local, "--server", srv.url, env=env)
    out3 = third.communicate(timeout=60)[0]
    assert third.returncode == 0 and "1 sent, 0 already there" in out3
    assert pg_counts(pg_url)["runs"] == 4
