"""What happened to each result is said in words: ok, checked (correct, not timed), not
available here (why), incorrect, error. Only incorrect and error are failures (issue 14, item 2)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from click.testing import CliRunner
from webseed import Site

from tritonwatch.cli import main
from tritonwatch.store import Store


def cpu_smoke_run(*, interrupted: bool = False, broken: bool = False) -> dict[str, Any]:
    """A clean CPU smoke run: torch timed, Triton checked under the interpreter, fp8 not here."""
    base = {"operator": "softmax", "shape": {"M": 64, "N": 1024}, "metric": "time", "unit": "ms"}
    results: list[dict[str, Any]] = [
        {**base, "provider": "torch", "dtype": "fp16", "samples": [0.07, 0.071, 0.07]},
        {
            **base,
            "provider": "triton",
            "dtype": "fp16",
            "status": "skipped",
            "correct": True,
            "error": "not timed: Triton interpreter on CPU checks correctness only",
        },
        {
            **base,
            "provider": "triton",
            "dtype": "fp8e4m3",
            "status": "skipped",
            "error": "fp8 e4m3 needs a GPU with fp8 (sm89+, gfx942, gfx950)",
        },
    ]
    if broken:
        results.append(
            {**base, "provider": "triton", "dtype": "bf16", "status": "incorrect", "correct": False}
        )
    run: dict[str, Any] = {"id": str(uuid.uuid4()), "started_at": "2026-11-27T10:00:00Z"}
    if interrupted:
        run["interrupted"] = True
    return {
        "format": "tritonwatch.run/1",
        "run": run,
        "machine": {"name": "laptop"},
        "build": {"triton": {"version": "3.9.0"}},
        "results": results,
    }


def add(store: Store, doc: dict[str, Any]) -> str:
    from tritonwatch.runformat import parse_run

    return store.runs.add(parse_run(doc)).uuid


def test_store_counts_only_incorrect_and_error_as_failed(sqlite_url: str) -> None:
    with Store.open(sqlite_url) as st:
        clean = add(st, cpu_smoke_run())
        broken = add(st, cpu_smoke_run(broken=True, interrupted=True))
        got = {r.uuid: r for r in st.runs.find()}
    assert got[clean].n_failed == 0
    assert got[clean].outcomes == {"ok": 1, "checked": 1, "not available": 1}
    assert not got[clean].interrupted
    assert got[broken].n_failed == 1 and got[broken].outcomes["incorrect"] == 1
    assert got[broken].interrupted


def test_runs_and_show_say_checked_and_not_available(sqlite_url: str) -> None:
    with Store.open(sqlite_url) as st:
        uid = add(st, cpu_smoke_run(interrupted=True))
    env = {"COLUMNS": "100"}
    out = " ".join(CliRunner().invoke(main, ["runs", "--db", sqlite_url], env=env).output.split())
    assert "1 ok, 1 checked, 1" in out and "not available" in out and "interrupted" in out
    assert "SKIPPED" not in out.upper() and "FAILED" not in out
    out = CliRunner().invoke(main, ["show", uid[:8], "--db", sqlite_url], env=env).output
    assert "SKIPPED" not in out and "0 failed" in out and "INTERRUPTED" in out
    assert re.search(r"checked\s*\n", out) and "not available (1)" in out
    assert "(1) fp8 e4m3 needs a GPU with fp8" in out


def test_pages_show_no_failure_for_a_clean_cpu_run(site: Site) -> None:
    uid = add(site.store, cpu_smoke_run(interrupted=True))
    for path in ("/", "/runs"):
        html = site.client.get(path).text
        row = html[html.index(uid[:8]) :]
        row = row[: row.index("</tr>")]
        assert "1 checked" in row and "1 not available" in row and "interrupted" in row
        assert 'class="badge error"' not in row and 'class="num bad"' not in row
    html = site.client.get(f"/runs/{uid}").text
    assert html.count('<tr class="bad">') == 0 and 'class="badge checked"' in html
    assert "fp8 e4m3 needs a GPU with fp8" in html  # why it is not available, on the page
    assert "skipped" not in html and "interrupted" in html


def test_pages_mark_incorrect_results_as_failures(site: Site) -> None:
    uid = add(site.store, cpu_smoke_run(broken=True))
    html = site.client.get(f"/runs/{uid}").text
    assert html.count('<tr class="bad">') == 1
    assert 'class="badge incorrect"' in site.client.get("/runs").text
