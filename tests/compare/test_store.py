"""Comparisons in the Store (SQLite and PostgreSQL), `compare --runs`, and the dashboard's view."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from tritonwatch.analysis.compare import CaseKey, Side, compare_sides
from tritonwatch.analysis.compare_runs import compare_stored_runs, mismatched_keys, save_comparison
from tritonwatch.errors import UsageError
from tritonwatch.runformat import Run, dump_run, parse_run
from tritonwatch.testing import make_run


def _results(levels: list[float], seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "operator": "matmul" if i < 2 else "softmax",
            "provider": "triton",
            "variant": "",
            "shape": {"N": 256 * (i + 1)},
            "dtype": "fp16",
            "metric": "time",
            "unit": "ms",
            "samples": (lv * np.exp(0.005 * rng.standard_normal(60))).tolist(),
        }
        for i, lv in enumerate(levels)
    ]


def _run(levels: list[float], seed: int, triton: str, **machine: Any) -> Run:
    doc = dump_run(make_run(results=_results(levels, seed), triton=triton, seed=seed))
    doc["machine"].update(machine)
    doc["run"]["suite"] = "nightly"
    return parse_run(doc)


def test_runs_are_compared_and_stored(store: Any) -> None:
    a = _run([1.0, 1.0, 0.5], 1, "3.8.0", driver="550.54")
    b = _run([1.10, 1.0, 0.4], 2, "3.9.0", driver="550.54")
    store.runs.add_many([a, b])
    cmp, saved = compare_stored_runs(store, str(a.run.id)[:8], str(b.run.id), threshold=0.02)
    assert [c.verdict for c in cmp.results] == ["slower", "same", "faster"]
    assert saved.kind == "runs" and saved.run_a == str(a.run.id)
    got = store.reports.comparison(saved.uuid[:8])
    assert got.run_a == str(a.run.id) and got.run_b == str(b.run.id)
    assert [c["verdict"] for c in got.cases] == ["slower", "same", "faster"]
    assert got.summary["slower"] == 1 and got.summary["triton_b"] == "3.9.0"
    # The dashboard's generic view reads the same row.
    detail = store.reports.comparison_detail(saved.uuid)
    assert detail.extra == "runs" and detail.rows[0]["verdict"] == "slower"
    assert {"a_median", "b_median", "ratio", "ci", "p", "verdict"} <= set(detail.rows[0])
    assert "3.8.0" in detail.label_a and "3.9.0" in detail.label_b
    assert store.reports.comparison_page()[0].uuid == saved.uuid


def test_runs_under_different_conditions_are_refused_naming_the_keys(store: Any) -> None:
    a = _run([1.0, 1.0, 1.0], 1, "3.8.0", driver="550.54")
    b = _run([1.0, 1.0, 1.0], 2, "3.9.0", driver="560.28", gpu_model="NVIDIA A100-SXM4-80GB")
    store.runs.add_many([a, b])
    ra, rb = store.runs.get(str(a.run.id)), store.runs.get(str(b.run.id))
    assert set(mismatched_keys(ra, rb)) == {"driver", "gpu_model"}
    with pytest.raises(UsageError, match="driver: '550.54' vs '560.28'.*--force") as e:
        compare_stored_runs(store, str(a.run.id), str(b.run.id), threshold=0.02)
    assert "gpu_model" in str(e.value)
    cmp, _ = compare_stored_runs(store, str(a.run.id), str(b.run.id), threshold=0.02, force=True)
    assert cmp.summary()["forced"] == ["driver", "gpu_model"]


def test_suite_version_and_shared_cases_are_checked(store: Any) -> None:
    a = _run([1.0], 1, "3.8.0")
    doc = dump_run(_run([1.0], 2, "3.9.0"))
    doc["run"]["suite_version"] = "abc"
    b = parse_run(doc)
    store.runs.add_many([a, b])
    with pytest.raises(UsageError, match="suite_version"):
        compare_stored_runs(store, str(a.run.id), str(b.run.id), threshold=0.02)
    with pytest.raises(UsageError, match="same run twice"):
        compare_stored_runs(store, str(a.run.id), str(a.run.id), threshold=0.02)


def test_an_ab_comparison_is_saved_with_both_runs_in_one_go(store: Any) -> None:
    a, b = _run([1.0], 1, "3.8.0"), _run([1.0], 2, "3.9.0")
    key = CaseKey.of("matmul", "triton", "", {"N": 256}, "fp16")
    cmp = compare_sides(
        [(key, Side("ok", (np.ones(10),)), Side("ok", (np.full(10, np.nan),)))],
        threshold=0.02,
        label_a="A (triton 3.8.0)",
        label_b="B (triton 3.9.0)",
        meta={"schedule": "ABBA"},
    )
    saved = save_comparison(store, cmp, a, b, kind="ab")
    assert {r.uuid for r in store.runs.find()} == {str(a.run.id), str(b.run.id)}
    got = store.reports.comparison(str(saved.id))
    assert got.kind == "ab" and got.summary["schedule"] == "ABBA"
    assert got.cases[0]["verdict"] == "failed" and got.cases[0]["b_median"] is None


def test_the_dashboard_shows_a_stored_comparison(sqlite_url: str) -> None:
    import warnings

    with warnings.catch_warnings():  # starlette's TestClient warns about httpx at import time
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from tritonwatch.store import Store
    from tritonwatch.web.app import create_app

    with Store.open(sqlite_url) as st:
        a, b = _run([1.0, 1.0], 1, "3.8.0"), _run([1.2, 1.0], 2, "3.9.0")
        st.runs.add_many([a, b])
        _, saved = compare_stored_runs(st, str(a.run.id), str(b.run.id), threshold=0.02)
    with TestClient(create_app(sqlite_url)) as client:
        page = client.get(f"/compare/{saved.uuid}")
        assert page.status_code == 200
        for text in ("slower", "A median", "Verdict", "N=256", "triton 3.9.0"):
            assert text in page.text, text
        assert "a_median" not in page.text
        assert re.search(r"\+\d+\.\d% \[[+-]\d+\.\d, [+-]\d+\.\d\]", page.text)
        api = client.get(f"/api/v1/comparisons/{saved.uuid[:8]}").json()
        assert [r["verdict"] for r in api["items"]] == ["slower", "same"]
        assert client.get(f"/api/v1/comparisons/{saved.uuid}?format=csv").status_code == 200


def test_an_all_digit_uuid_prefix_is_a_prefix_not_an_id(store: Any) -> None:
    a = _run([1.0, 1.0, 0.5], 1, "3.8.0", driver="550.54")
    b = _run([1.0, 1.0, 0.5], 2, "3.9.0", driver="550.54")
    store.runs.add_many([a, b])
    _, saved = compare_stored_runs(store, str(a.run.id), str(b.run.id), threshold=0.02)
    from sqlalchemy import update

    from tritonwatch.store import schema

    digits = "17138651-0000-4000-8000-000000000000"
    with store.engine.begin() as conn:
        conn.execute(update(schema.comparisons).values(uuid=digits))
    assert store.reports.comparison("17138651").uuid == digits
    assert store.reports.comparison(str(saved.id)).uuid == digits  # a plain id still works
