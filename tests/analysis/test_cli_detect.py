"""The detect, alerts, alert and notify commands, through the CLI, on generated histories."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tritonwatch.cli import main
from tritonwatch.store import Store
from tritonwatch.testing import history_runs, make_histories, write_jsonl


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _error_line(result: Any) -> str:
    assert result.exit_code != 0
    out = result.output.strip()
    assert out.startswith("error: ") and "\n" not in out and "Traceback" not in out, out
    return out


@pytest.fixture(scope="module")
def history() -> Any:
    return make_histories(
        24,
        36,
        step_fraction=0.4,
        noise_levels=(0.005,),
        step_sizes=(0.10, 0.25),
        samples_per_night=6,
        outlier_rate=0.0,
        min_after=6,
        seed=21,
    )


@pytest.fixture
def detected(tmp_path: Path, sqlite_url: str, history: Any) -> str:
    docs = history_runs(history)
    write_jsonl(docs, tmp_path / "h.jsonl")
    assert _run("import", str(tmp_path / "h.jsonl"), "--db", sqlite_url).exit_code == 0
    res = _run("detect", "--db", sqlite_url)
    assert res.exit_code == 0, res.output
    return sqlite_url


def test_detect_finds_planted_steps_and_is_idempotent(detected: str, history: Any) -> None:
    with Store.open(detected) as st:
        rows = st.alerts.find()
        first_ids = sorted(a.id for a in rows)
        assert len(rows) == len(history.truth)
        assert all(a.direction == "regression" if a.ratio > 1 else "improvement" for a in rows)
        for a in rows:
            assert a.q is not None and a.q <= 0.05 and a.ci and a.ci[0] <= a.ratio <= a.ci[1]
            # the last good and first bad builds are the nightly commits around the step
            assert a.last_good_build["triton_commit"] != a.first_bad_build["triton_commit"]
            assert "triton commit" in a.details["changes"]
            assert a.details["p_samples"] is not None  # raw samples were used
    again = _run("detect", "--db", detected)
    assert again.exit_code == 0 and " 0 new" in again.output
    with Store.open(detected) as st:
        assert sorted(a.id for a in st.alerts.find()) == first_ids


def test_detect_after_more_nights_updates_instead_of_duplicating(
    tmp_path: Path, sqlite_url: str, history: Any
) -> None:
    docs = history_runs(history)
    write_jsonl(docs[:30], tmp_path / "a.jsonl")
    write_jsonl(docs[30:], tmp_path / "b.jsonl")
    _run("import", str(tmp_path / "a.jsonl"), "--db", sqlite_url)
    assert _run("detect", "--db", sqlite_url).exit_code == 0
    with Store.open(sqlite_url) as st:
        before = {(a.series_id, a.first_bad_run) for a in st.alerts.find()}
    _run("import", str(tmp_path / "b.jsonl"), "--db", sqlite_url)
    assert _run("detect", "--db", sqlite_url).exit_code == 0
    with Store.open(sqlite_url) as st:
        after = st.alerts.find()
    per_series: dict[int, int] = {}
    for a in after:
        per_series[a.series_id] = per_series.get(a.series_id, 0) + 1
    assert max(per_series.values()) == 1  # one alert per planted step, never two
    assert before <= {(a.series_id, a.first_bad_run) for a in after}


def test_detect_filters_and_bad_input(detected: str) -> None:
    res = _run("detect", "--db", detected, "-k", "no-such-operator")
    assert res.exit_code == 0 and "0 series tested" in res.output
    res = _run("detect", "--db", detected, "-k", "softmax*", "--machine", "gpu-a")
    assert res.exit_code == 0 and "softmax" in res.output
    _error_line(_run("detect", "--db", detected, "--since", "yesterday"))
    res = _run("detect", "--db", detected, "--since", "2100-01-01")
    assert res.exit_code == 0 and "0 change(s) filed" in res.output


def test_alerts_json_and_table(detected: str) -> None:
    res = _run("alerts", "--db", detected, "--format", "json")
    assert res.exit_code == 0
    items = json.loads(res.output)
    assert items and list(items[0]) == [
        "id",
        "status",
        "direction",
        "operator",
        "provider",
        "variant",
        "shape",
        "dtype",
        "mode",
        "metric",
        "machine",
        "last_good_run",
        "first_bad_run",
        "last_good_build",
        "first_bad_build",
        "ratio",
        "ci",
        "p",
        "q",
    ]
    assert {"triton_version", "triton_commit"} <= set(items[0]["first_bad_build"])
    severity = [max(i["ratio"], 1 / i["ratio"]) for i in items if i["direction"] == "regression"]
    assert severity == sorted(severity, reverse=True)
    table = _run("alerts", "--db", detected)
    assert table.exit_code == 0 and "most severe first" in table.output
    assert (
        json.loads(_run("alerts", "--db", detected, "--status", "fixed", "--format", "json").output)
        == []
    )
    assert "false_positive" in _error_line(_run("alerts", "--db", detected, "--status", "open"))


def test_alert_show_and_triage(detected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "ana")
    res = _run("alert", "1", "--db", detected, "--set", "acknowledged", "--note", "bisecting")
    assert res.exit_code == 0, res.output
    assert "acknowledged" in res.output and "bisecting" in res.output and "ana" in res.output
    res = _run("alert", "1", "--db", detected, "--set", "fixed", "--actor", "bo")
    with Store.open(detected) as st:
        hist = st.alerts.history(1)
        assert [e.new_status for e in hist] == ["new", "acknowledged", "fixed"]
        assert hist[-1].actor == "bo"
    assert "fixed" in _error_line(_run("alert", "1", "--db", detected, "--set", "wontfix"))
    assert "no alert 9999" in _error_line(_run("alert", "9999", "--db", detected))
    assert "--set" in _error_line(_run("alert", "1", "--db", detected, "--note", "x"))


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    answer = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).answer)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"received": [], "answer": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def test_notify_renders_grouped_by_build_change(detected: str) -> None:
    md = _run("notify", "--db", detected, "--base-url", "https://perf.example/")
    assert md.exit_code == 0
    assert md.output.count("### ") >= 2  # one section per build change
    assert "https://perf.example/alerts/" in md.output
    with Store.open(detected) as st:
        worst = st.alerts.find(status="new")[0]
    first_section = md.output.split("### ")[1]
    assert f"#{worst.id}]" in first_section  # the most severe change comes first
    for fmt in ("slack", "discord", "github-issue"):
        res = _run("notify", "--db", detected, "--format", fmt)
        assert res.exit_code == 0
        payload = json.loads(res.output)
        assert payload
    issue = json.loads(_run("notify", "--db", detected, "--format", "github-issue").output)
    assert issue["title"].startswith("Performance:") and "| alert |" in issue["body"]
    slack = json.loads(_run("notify", "--db", detected, "--format", "slack").output)
    assert slack["blocks"][0]["type"] == "header"
    none = _run("notify", "--db", detected, "--status", "fixed")
    assert none.exit_code == 0 and "no new alerts" in none.output


def test_notify_posts_to_a_webhook(detected: str, receiver: tuple[str, Any]) -> None:
    url, handler = receiver
    res = _run("notify", "--db", detected, "--format", "slack", "--webhook", url)
    assert res.exit_code == 0 and "posted" in res.output, res.output
    assert handler.received and "blocks" in handler.received[0]
    res = _run("notify", "--db", detected, "--format", "discord", "--webhook", url)
    assert res.exit_code == 0 and "embeds" in handler.received[-1]
    handler.answer = 500
    assert "500" in _error_line(_run("notify", "--db", detected, "--webhook", url))
    _error_line(_run("notify", "--db", detected, "--webhook", "ftp://example"))
    _error_line(_run("notify", "--db", detected, "--webhook", "http://127.0.0.1:9/none"))


def test_notify_since(detected: str) -> None:
    res = _run("notify", "--db", detected, "--since", "2100-01-01")
    assert res.exit_code == 0 and "no new alerts" in res.output
    res = _run("notify", "--db", detected, "--since", "2000-01-01")
    assert res.exit_code == 0 and "### " in res.output
    _error_line(_run("notify", "--db", detected, "--since", "last week"))


def test_detect_says_how_many_nights_a_fresh_change_needs(tmp_path: Path, sqlite_url: str) -> None:
    import numpy as np

    from tritonwatch.testing import Histories

    v = np.exp(0.004 * np.random.default_rng(3).standard_normal((2, 30)))
    v[0, -1] *= 1.08  # one night at a new level: not alerted yet
    h = Histories(values=v, noise=np.full(2, 0.004), step=np.zeros(2), truth=[])
    write_jsonl(history_runs(h), tmp_path / "f.jsonl")
    assert _run("import", str(tmp_path / "f.jsonl"), "--db", sqlite_url).exit_code == 0
    res = _run("detect", "--db", sqlite_url)
    assert res.exit_code == 0 and "0 change(s) filed" in res.output
    assert "1 pending (need more nights)" in res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("pending: ")]
    assert len(lines) == 1 and "M=128" in lines[0] and "+8." in lines[0]
    assert "needs 1 more night at this level" in lines[0]
