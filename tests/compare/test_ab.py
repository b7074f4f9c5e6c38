"""The interleaved driver: schedule and budgets (with a fake executor), then end to end with real
worker processes: a planted slowdown is found, A/A is "same", two real Triton builds."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from comparekit import REAL_TRITON, fake_python
from support.probes import needs

from tritonwatch.bench import ab
from tritonwatch.bench.ab import ABOptions, BuildEnv, run_ab, schedule
from tritonwatch.bench.runner import Record
from tritonwatch.cli import main
from tritonwatch.errors import BenchError
from tritonwatch.store import Store


def test_schedule_alternates_who_goes_first() -> None:
    assert schedule(1) == "AB"
    assert schedule(2) == "ABBA"
    assert schedule(4) == "ABBAABBA"


class FakeExecute:
    """Stands in for runner.execute: records each call and answers with fixed timings."""

    def __init__(self, versions: dict[str, str]) -> None:
        self.calls: list[dict[str, Any]] = []
        self.versions = versions

    def __call__(self, cases: list[Any], device: Any, **kw: Any) -> Any:
        py = kw["python"]
        self.calls.append({"python": py, "order": [c.id for c in cases], **kw})
        level = 1.1 if py.endswith("b") else 1.0
        recs = [Record(c, "ok", [level] * 10, correct=True) for c in cases]
        fp = {"machine": {"name": "m"}, "build": {"triton": {"version": self.versions[py]}}}
        return recs, fp, False


def _fake_envs(monkeypatch: pytest.MonkeyPatch, versions: dict[str, str]) -> FakeExecute:
    fake = FakeExecute({"/py/a": "3.8.0", "/py/b": "3.9.0", **versions})
    monkeypatch.setattr(ab, "execute", fake)
    monkeypatch.setattr(
        ab, "resolve", lambda ref: BuildEnv(ref, f"/py/{ref}", {"a": "3.8.0", "b": "3.9.0"}[ref])
    )
    return fake


@needs("torch", "triton")
def test_rounds_interleave_with_each_side_its_own_python_and_a_split_budget(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, planted: Path
) -> None:
    fake = _fake_envs(monkeypatch, {})
    opts = ABOptions(a="a", b="b", suite=str(planted), device="cpu", rounds=4, budget_ms=400)
    with Store.open(sqlite_url) as st:
        out = run_ab(opts, st)
        stored = [st.runs.get(out.stored.run_a), st.runs.get(out.stored.run_b)]
    assert [c["python"][-1] for c in fake.calls] == list("abbaabba")
    assert all(c["budget_ms"] == pytest.approx(100.0) for c in fake.calls)
    # Both sides of a pair see the same case order; pairs are shuffled differently.
    orders = [c["order"] for c in fake.calls]
    assert orders[0] == orders[1] and orders[2] == orders[3]
    # Every round's samples are kept, in the run and in the comparison.
    assert [c.verdict for c in out.comparison.results] == ["slower", "slower"]
    assert out.comparison.results[0].a.samples.size == 40
    ra, rb = stored
    assert ra.build_info["triton"]["version"] == "3.8.0"
    assert rb.build_info["triton"]["version"] == "3.9.0"
    assert ra.info["compare"]["side"] == "A" and rb.info["compare"]["schedule"] == "ABBAABBA"
    assert ra.info["suite_version"] == rb.info["suite_version"]
    times = [r for r in rb.results if r.metric == "time"]
    assert times[0].n == 40 and times[0].extra["rounds"] == [10, 10, 10, 10]


@needs("torch", "triton")
def test_every_round_of_both_sides_uses_the_first_rounds_timer(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, planted: Path
) -> None:
    # On a GPU each worker picks event or graph timing per case; a kernel near the threshold
    # could be event-timed on one side and graph-timed on the other, and the timers' difference
    # would be reported as the builds'. The first round's choice is handed to every later round.
    fake = _fake_envs(monkeypatch, {})
    inner = fake.__call__

    def timed(cases: list[Any], device: Any, **kw: Any) -> Any:
        recs, fp, stop = inner(cases, device, **kw)
        first = len(fake.calls) == 1
        for r in recs:
            r.extra["timer"] = (kw["timers"] or {}).get(r.case.id) or (
                "graph" if first else "event"
            )
        return recs, fp, stop

    monkeypatch.setattr(ab, "execute", timed)
    opts = ABOptions(a="a", b="b", suite=str(planted), device="cpu", rounds=2, budget_ms=100)
    with Store.open(sqlite_url) as st:
        run_ab(opts, st)
    assert fake.calls[0]["timers"] == {}
    ids = set(fake.calls[0]["order"])
    for call in fake.calls[1:]:
        assert call["timers"] == dict.fromkeys(ids, "graph")


@needs("torch", "triton")
def test_a_worker_that_imports_another_triton_is_refused(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, planted: Path
) -> None:
    _fake_envs(monkeypatch, {"/py/b": "3.9.0+shadowed"})
    opts = ABOptions(a="a", b="b", suite=str(planted), device="cpu", rounds=1, budget_ms=50)
    with Store.open(sqlite_url) as st, pytest.raises(BenchError, match="imported Triton 3.9.0"):
        run_ab(opts, st)


# -- end to end, real worker processes -----------------------------------------------------------
@pytest.mark.slow
@needs("torch", "triton")
def test_planted_slowdown_is_slower_and_a_steady_provider_is_same(
    tmp_path: Path, planted: Path, quick: None, sqlite_url: str
) -> None:
    slow = fake_python(
        tmp_path, "py-slow", {"TW_PLANTED_SLOW_ALWAYS": "1", "TW_PLANTED_SLOWDOWN": "0.25"}
    )
    opts = ABOptions(a="current", b=str(slow), suite=str(planted), rounds=2)
    with Store.open(sqlite_url) as st:
        out = run_ab(opts, st)
        row = st.reports.comparison_detail(out.stored.uuid)
    by = {c.key.provider: c for c in out.comparison.results}
    assert by["planted"].verdict == "slower", by["planted"].to_json()
    assert by["planted"].ratio == pytest.approx(1.25, abs=0.08)
    assert by["steady"].verdict == "same", by["steady"].to_json()
    assert {r["verdict"] for r in row.rows} == {"slower", "same"} and row.extra == "ab"


@pytest.mark.slow
@needs("torch", "triton")
def test_a_a_is_same_everywhere(planted: Path, quick: None, sqlite_url: str) -> None:
    args = [
        "compare",
        "--a",
        "current",
        "--b",
        "current",
        "--suite",
        str(planted),
        "--format",
        "json",
        "--fail-on-regression",
        "--db",
        sqlite_url,
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [c["verdict"] for c in doc["cases"]] == ["same", "same"], doc["cases"]
    assert doc["summary"]["triton_a"] == doc["summary"]["triton_b"]
    # The default two rounds a side: the round-level test guards against process-to-process
    # offsets, which on a busy CPU are larger than the 2% threshold.
    assert doc["summary"]["schedule"] == "ABBA"
    assert all(c["p_rounds"] is not None for c in doc["cases"])


@pytest.mark.slow
def test_two_real_triton_builds_each_in_its_own_worker(
    real_env: Path, planted: Path, quick: None, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B is a venv with Triton 3.8.0 over the host's torch; the planted provider is 25% slower
    exactly when the Triton its worker imported is 3.8.0 (large, so that two rounds a side on
    a busy CPU still call it)."""
    monkeypatch.setenv("TW_PLANTED_SLOW_TRITON", REAL_TRITON)
    monkeypatch.setenv("TW_PLANTED_SLOWDOWN", "0.25")
    import triton

    assert triton.__version__ != REAL_TRITON  # the host has another Triton
    opts = ABOptions(a="current", b=str(real_env), suite=str(planted), rounds=2)
    with Store.open(sqlite_url) as st:
        out = run_ab(opts, st)
        ra, rb = st.runs.get(out.stored.run_a), st.runs.get(out.stored.run_b)
    assert ra.build_info["triton"]["version"] == triton.__version__
    assert rb.build_info["triton"]["version"] == REAL_TRITON
    assert out.env_b.triton_version == REAL_TRITON and out.schedule == "ABBA"
    by = {c.key.provider: c.verdict for c in out.comparison.results}
    assert by == {"planted": "slower", "steady": "same"}, [
        c.to_json() for c in out.comparison.results
    ]


@pytest.mark.slow
@needs("torch", "triton")
def test_an_environment_that_cannot_run_the_worker_is_named(
    tmp_path: Path, planted: Path, quick: None, sqlite_url: str
) -> None:
    """A Python with Triton but without a usable torch: one clear error, no half comparison."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "torch.py").write_text("raise ImportError('no torch in this environment')\n")
    py = fake_python(tmp_path, "py-notorch", {"PYTHONPATH": str(broken)})
    r = CliRunner().invoke(
        main,
        [
            "compare",
            "--a",
            "current",
            "--b",
            str(py),
            "--suite",
            str(planted),
            "--rounds",
            "1",
            "--db",
            sqlite_url,
        ],
    )
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "cannot run the benchmark worker" in r.stderr and "--system-site-packages" in r.stderr
    with Store.open(sqlite_url) as st:
        assert st.reports.comparison_page() == []


@needs("torch", "triton")
def test_cases_timed_by_neither_build_are_left_out(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, planted: Path
) -> None:
    """A case neither side timed (a Triton kernel under the CPU interpreter) gets no verdict."""
    fake = _fake_envs(monkeypatch, {})

    def execute(cases: list[Any], device: Any, **kw: Any) -> Any:
        recs, fp, stop = fake(cases, device, **kw)
        for r in recs:
            if r.case.provider == "steady":
                r.status, r.samples, r.error = "skipped", None, "not timed: interpreter"
        return recs, fp, stop

    monkeypatch.setattr(ab, "execute", execute)
    opts = ABOptions(a="a", b="b", suite=str(planted), device="cpu", rounds=1, budget_ms=50)
    with Store.open(sqlite_url) as st:
        out = run_ab(opts, st)
    assert [c.key.provider for c in out.comparison.results] == ["planted"]
    assert out.comparison.summary()["not_timed"] == 1
    # The title names environments; the report says what was timed in them and what was not
    # (issue 14, item 8: "triton 3.8.0 vs triton 3.9.0" while only torch was timed).
    from rich.console import Console

    from tritonwatch.report.compare import comparison_view, render_markdown, render_terminal

    scope = "timed: planted; 1 case(s) checked, not timed (not timed: interpreter)"
    buf = Console(width=200, record=True, file=io.StringIO())
    render_terminal(out.comparison, buf)
    assert scope in buf.export_text()
    assert scope in render_markdown(out.comparison)
    view = comparison_view(out.comparison.summary(), [])
    assert ("what was compared", scope) in view["summary"]


@needs("torch", "triton")
def test_a_comparison_of_nothing_timed_is_refused_and_not_stored(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, planted: Path
) -> None:
    # Triton providers on a CPU are checked, not timed: an empty table and exit 0 read as "same".
    fake = _fake_envs(monkeypatch, {})

    def execute(cases: list[Any], device: Any, **kw: Any) -> Any:
        recs, fp, stop = fake(cases, device, **kw)
        for r in recs:
            r.status, r.samples = "skipped", None
            r.error = "not timed: Triton interpreter on CPU checks correctness only (max error 0)"
        return recs, fp, stop

    monkeypatch.setattr(ab, "execute", execute)
    opts = ABOptions(a="a", b="b", suite=str(planted), device="cpu", rounds=1, budget_ms=50)
    with Store.open(sqlite_url) as st:
        with pytest.raises(BenchError, match="nothing to compare: none of the 2 case"):
            run_ab(opts, st)
        assert st.reports.comparison_page() == [] and st.runs.find() == []
