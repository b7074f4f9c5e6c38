"""Store contract for codegen rows and blast reports (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from tritonwatch.codegen.metrics import Compiled
from tritonwatch.errors import NotFoundError, UsageError
from tritonwatch.testing import make_run


def test_blast_report_round_trip(store: Any, synthetic_report: Any) -> None:
    uid = store.codegen.add_report(synthetic_report)
    (info,) = store.codegen.reports()
    assert info.uuid == uid and info.total == 4 and info.changed == 2
    assert info.headline == synthetic_report.summary.headline
    assert info.env_a == "tri38 (triton 3.8.0)" and info.targets == "sm90,gfx942"
    doc = store.codegen.report(uid[:8])
    rows = {(r["kernel"], r["target"]): r for r in doc["results"]}
    assert rows[("mm<kernel>", "sm90")]["first_changed_stage"] == "TTGIR"
    assert "TTGIR" in rows[("mm<kernel>", "sm90")]["diffs"]
    with pytest.raises(NotFoundError):
        store.codegen.report("ffffffff")
    with pytest.raises(UsageError, match="too short"):
        store.codegen.report("ab")


def test_codegen_rows_per_build_and_changes_between_builds(
    store: Any, synthetic_report: Any
) -> None:
    store.codegen.add_report(synthetic_report)
    a = store.codegen.rows(triton_version="3.8.0")
    b = store.codegen.rows(triton_version="3.9.0")
    assert len(a) == len(b) == 4
    mm_b = next(r for r in b if r.kernel == "mm<kernel>" and r.target == "sm90")
    assert mm_b.metrics["registers"] == 168 and mm_b.key_instructions["mma.sync"] == 32
    assert mm_b.opcodes == {"HMMA": 32, "LDG": 4} and mm_b.compile_ms == 130.0
    soft_b = next(r for r in b if r.kernel == "soft")
    assert soft_b.error and "broken" in soft_b.error
    changes = {(c.kernel, c.target): c for c in store.codegen.changes(a[0].build_id, b[0].build_id)}
    assert set(changes) == {("mm<kernel>", "sm90"), ("mm<kernel>", "gfx942"), ("soft", "sm90")}
    assert changes[("mm<kernel>", "sm90")].first_changed_stage == "ttgir"
    assert changes[("soft", "sm90")].error_b is not None


def test_add_codegen_joins_the_runs_build_and_replaces_rows(store: Any) -> None:
    run = make_run(triton="3.9.0", seed=3)
    store.runs.add(run)
    build = run.build.model_dump(mode="json", exclude_none=True)
    c1 = Compiled(
        kernel="k",
        spec="s",
        target="sm90",
        status="ok",
        stage_hashes={"ttir": "1"},
        metrics={"registers": 10},
    )
    bid = store.codegen.add(build, [c1])
    assert bid == store.runs.get(str(run.run.id)).summary.build_id
    c2 = Compiled(
        kernel="k",
        spec="s",
        target="sm90",
        status="ok",
        stage_hashes={"ttir": "2"},
        metrics={"registers": 12},
    )
    assert store.codegen.add(build, [c2]) == bid
    (row,) = store.codegen.rows(build_id=bid)
    assert row.metrics == {"registers": 12} and row.stage_hashes == {"ttir": "2"}
    with pytest.raises(UsageError, match="needs build"):
        store.codegen.add({"torch": {"version": "2"}}, [c1])
