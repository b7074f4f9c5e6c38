"""A user with a tritonbench history: `tritonwatch import` the folder, `tritonwatch detect`."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tritonwatch.cli import main
from tritonwatch.store import Store

NIGHTLY = (
    Path(__file__).parent.parent
    / "fixtures"
    / "interop"
    / "tritonbench"
    / "nightly_result_A-h100.json"
)
SLOWED = "triton_tutorial_matmul"


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _history(root: Path, nights: int = 30, step_at: int = 20) -> None:
    """Nightly result.json folders as tritonbench's CI keeps them, with a 12% slowdown of one
    provider from night ``step_at`` on; file times run backwards (copied in reverse order)."""
    base = json.loads(NIGHTLY.read_text())
    rng = random.Random(5)
    for night in range(nights):
        doc = json.loads(json.dumps(base))
        date = f"202508{night + 1:02d}020312"
        doc["env"]["benchmark_date"] = date
        doc["env"]["triton_commit"] = f"{night:04d}" + "c" * 36
        for key, value in doc["metrics"].items():
            if not isinstance(value, (int, float, str)) or key.endswith("-pass"):
                continue
            try:
                v = float(value) * rng.uniform(0.995, 1.005)
            except ValueError:
                continue
            if night >= step_at and f"-{SLOWED}]" in key:
                v = v * 1.12 if key.endswith("_latency") else v / 1.12
            doc["metrics"][key] = str(v) if isinstance(value, str) else v
        folder = root / f"run-{date}"
        folder.mkdir(parents=True)
        path = folder / "result.json"
        path.write_text(json.dumps(doc, indent=4))
        t = 2_000_000_000 - night * 86400
        os.utime(path, (t, t))


def test_tritonbench_history_to_alerts_in_two_commands(tmp_path: Path, sqlite_url: str) -> None:
    _history(tmp_path / "nightly")
    res = _run("import", str(tmp_path / "nightly"), "--db", sqlite_url)
    assert res.exit_code == 0, res.output
    assert "imported 30 run(s)" in res.output
    res = _run("detect", "--db", sqlite_url)
    assert res.exit_code == 0, res.output
    with Store.open(sqlite_url) as st:
        alerts = st.alerts.find()
        assert alerts, res.output
        assert all(a.direction == "regression" for a in alerts)  # a tflops drop is no gain
        assert {a.provider for a in alerts} == {SLOWED}
        assert {"tflops", "latency"} <= {a.metric for a in alerts}
        assert {a.first_bad_build["triton_commit"][:4] for a in alerts} == {"0020"}


def test_import_reports_what_it_skipped_and_bad_input_is_one_line(
    tmp_path: Path, sqlite_url: str
) -> None:
    gemm = NIGHTLY.parent / "tb_gemm.json"
    res = _run(
        "import",
        str(gemm),
        "--db",
        sqlite_url,
        "--machine",
        "h100-01",
        "--date",
        "2025-08-14T02:00",
    )
    assert res.exit_code == 0, res.output
    assert "57 item(s) read, 44 result(s) stored" in res.output
    assert "10 not stored: x_average row" in res.output
    assert "3 not stored: no value: the backend failed" in res.output
    with Store.open(sqlite_url) as st:
        (run,) = st.runs.find()
        assert (run.machine, run.started_at.isoformat()) == ("h100-01", "2025-08-14T02:00:00+00:00")
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    res = CliRunner().invoke(main, ["import", str(bad), "--db", sqlite_url])
    assert res.exit_code != 0
    out = res.output.strip()
    assert out.startswith("error: ") and "\n" not in out and "cannot tell the format" in out


def test_import_dtype_option_names_a_per_op_files_precision(sqlite_url: str) -> None:
    path = NIGHTLY.parent / "tb_layer_norm_bwd_cpu_real.json"
    res = _run("import", str(path), "--device", "cpu", "--dtype", "bf16", "--db", sqlite_url)
    assert res.exit_code == 0, res.output
    assert "--dtype" not in res.output  # no warning: the option named it
    with Store.open(sqlite_url) as store:
        (summary,) = store.runs.find()
        assert {r.dtype for r in store.runs.get(summary.uuid).results} == {"bf16"}


def test_import_refuses_a_dtype_too_long_in_one_line(sqlite_url: str) -> None:
    path = NIGHTLY.parent / "tb_layer_norm_bwd_cpu_real.json"
    res = CliRunner().invoke(main, ["import", str(path), "--dtype", "x" * 51, "--db", sqlite_url])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == ["error: --dtype: at most 50 characters, e.g. bf16"]
