"""The release gate: policy validation, verdicts and reasons, and the CLI's exit codes."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tritonwatch.analysis.gate import evaluate, load_policy, resolve_build
from tritonwatch.cli import main
from tritonwatch.errors import InputError, NotFoundError, UsageError
from tritonwatch.store import Store
from tritonwatch.testing import make_run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gate.toml"


def _res(op: str, dtype: str, level: float, seed: int, **kw: Any) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    r = {
        "operator": op,
        "provider": "triton",
        "shape": {"M": 1024, "N": 1024},
        "dtype": dtype,
        "metric": "time",
        "unit": "ms",
        "samples": (level * (1 + 0.005 * rng.standard_normal(30))).tolist(),
    }
    r.update(kw)
    if r.get("status") in ("error", "skipped"):
        r.pop("samples")
    return r


@pytest.fixture
def gate_db(sqlite_url: str) -> str:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    base = [
        _res("matmul", "fp16", 1.0, 1),
        _res("matmul", "bf16", 1.0, 2),
        _res("attention", "bf16", 2.0, 3),
        _res("softmax", "fp16", 0.5, 4),
        _res("layer_norm", "fp16", 0.3, 5),
    ]
    good = [
        _res("matmul", "fp16", 1.01, 11),
        _res("matmul", "bf16", 0.95, 12),
        _res("attention", "bf16", 2.0, 13),
        _res("softmax", "fp16", 0.5, 14),
        _res("layer_norm", "fp16", 0.3, 15),
    ]
    bad = [
        _res("matmul", "fp16", 1.10, 21),  # 10% slower
        _res("matmul", "bf16", 1.0, 22, correct=False),  # wrong
        _res("softmax", "fp16", 0.5, 24, status="error", error="OOM"),  # failed
        _res("layer_norm", "fp16", 0.3, 25),
    ]  # attention is missing
    with Store.open(sqlite_url) as st:
        st.runs.add(
            make_run(
                results=base, triton="3.8.0", commit="aaaa1111bbbb", started_at=t0, machine="h100-a"
            )
        )
        st.runs.add(
            make_run(
                results=good,
                triton="3.9.0",
                commit="cccc2222dddd",
                started_at=t0 + timedelta(days=1),
                machine="h100-a",
            )
        )
        st.runs.add(
            make_run(
                results=bad,
                triton="3.10.0",
                commit="eeee3333ffff",
                started_at=t0 + timedelta(days=2),
                machine="h100-a",
            )
        )
    return sqlite_url


def _policy(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gate.toml"
    p.write_text(text, encoding="utf-8")
    return p


def _gate(db: str, policy: Path, base: str, cand: str, *extra: str) -> Any:
    return CliRunner().invoke(
        main,
        [
            "gate",
            "--policy",
            str(policy),
            "--baseline",
            base,
            "--candidate",
            cand,
            "--db",
            db,
            *extra,
        ],
    )


def test_example_policy_is_valid(tmp_path: Path, gate_db: str) -> None:
    pol = load_policy(EXAMPLE)
    assert pol.block[0].operator == "matmul" and pol.block[0].threshold == 0.03
    res = _gate(gate_db, EXAMPLE, "3.8.0", "3.9.0")
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output


def test_failures_name_their_reason(tmp_path: Path, gate_db: str) -> None:
    out = tmp_path / "summary.md"
    res = _gate(gate_db, EXAMPLE, "3.8.0", "3.10.0", "--format", "markdown", "-o", str(out))
    assert res.exit_code == 1
    md = out.read_text()
    assert md == res.output and "FAIL" in md
    with Store.open(gate_db) as st:
        result = evaluate(st, load_policy(EXAMPLE), "3.8.0", "3.10.0")
    reasons = {(c.operator, c.dtype): c.reason for c in result.cases}
    assert reasons[("matmul", "fp16")] == "slower"
    assert reasons[("matmul", "bf16")] == "incorrect"
    assert reasons[("attention", "bf16")] == "missing"
    assert reasons[("softmax", "fp16")] == "failed"
    assert "layer_norm" not in {c.operator for c in result.cases}  # not blocking
    slow = next(c for c in result.cases if c.reason == "slower")
    assert slow.ratio == pytest.approx(1.10, abs=0.01) and slow.p is not None and slow.p < 0.05


def test_threshold_and_coverage(tmp_path: Path, gate_db: str) -> None:
    loose = _policy(
        tmp_path, '[[block]]\noperator = "matmul"\ndtypes = ["fp16"]\nthreshold = 0.2\n'
    )
    assert _gate(gate_db, loose, "3.8.0", "3.10.0").exit_code == 0
    nodata = _policy(tmp_path, '[[block]]\noperator = "matmul"\ngpus = ["*MI300X*"]\n')
    res = _gate(gate_db, nodata, "3.8.0", "3.9.0")
    assert res.exit_code == 1 and "no data" in res.output
    off = _policy(tmp_path, '[gate]\nrequire_coverage = false\n[[block]]\noperator = "gemm"\n')
    assert _gate(gate_db, off, "3.8.0", "3.9.0").exit_code == 0


def test_builds_by_version_commit_and_run(gate_db: str) -> None:
    with Store.open(gate_db) as st:
        run = st.runs.find(limit=1)[0]  # newest: 3.10.0
        assert [r.uuid for r in resolve_build(st, "3.10.0")] == [run.uuid]
        assert [r.uuid for r in resolve_build(st, "eeee3333")] == [run.uuid]
        assert [r.uuid for r in resolve_build(st, run.uuid[:8])] == [run.uuid]
        assert [r.uuid for r in resolve_build(st, "commit:eeee")] == [run.uuid]
        with pytest.raises(NotFoundError):
            resolve_build(st, "9.9.9")
        with pytest.raises(UsageError):
            resolve_build(st, "version:")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[block]]\noperator = 'matmul'\nthreshhold = 0.1\n", "threshhold"),
        ("[[block]]\noperator = 'matmul'\nthreshold = 'five'\n", "block.0.threshold"),
        ("[[block]]\noperator = 'matmul'\nthreshold = -1\n", "block.0.threshold"),
        ("[gate]\nthreshold = 0.05\n", "block"),
        ("[[block]]\ndtypes = ['fp16']\n", "operator"),
        ("[[block]\noperator = 'matmul'\n", "not valid TOML"),
    ],
)
def test_policy_errors_name_the_problem(
    tmp_path: Path, gate_db: str, text: str, needle: str
) -> None:
    p = _policy(tmp_path, text)
    with pytest.raises(InputError, match=needle):
        load_policy(p)
    res = _gate(gate_db, p, "3.8.0", "3.9.0")
    assert res.exit_code == 2
    out = res.output.strip()
    assert out.startswith("error: ") and str(p) in out and "Traceback" not in out


def test_usage_errors_exit_2(tmp_path: Path, gate_db: str) -> None:
    shutil.copy(EXAMPLE, tmp_path / "g.toml")
    res = _gate(gate_db, tmp_path / "g.toml", "3.8.0", "7.7.7")
    assert res.exit_code == 2 and "no run matches build '7.7.7'" in res.output
    res = _gate(gate_db, tmp_path / "missing.toml", "3.8.0", "3.9.0")
    assert res.exit_code == 2 and res.output.startswith("error: ")
    res = _gate(f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "g.toml", "3.8.0", "3.9.0")
    assert res.exit_code == 2 and res.output.startswith("error: ")
