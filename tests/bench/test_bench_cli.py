"""`tritonwatch run`, `list` and `calibrate` through the CLI (one real worker run, on the CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from support.probes import needs, needs_interpreter

from tritonwatch.cli import main
from tritonwatch.store import Store

pytestmark = needs("torch", "triton")


@pytest.mark.slow
@needs_interpreter()
def test_run_stores_one_cpu_run(sqlite_url: str) -> None:
    res = CliRunner().invoke(
        main,
        [
            "run",
            "--suite",
            "smoke",
            "-k",
            "vector_add[N=4099]",
            "--provider",
            "torch,triton",
            "--dtype",
            "fp32",
            "--device",
            "cpu",
            "--label",
            "cli-test",
            "--seed",
            "7",
            "--db",
            sqlite_url,
        ],
        env={"COLUMNS": "100"},
    )
    assert res.exit_code == 0, res.output
    assert "stored as run" in res.output
    # Read in a 100-column terminal: whole case names, words for what happened, no column
    # that is empty on a CPU (issue 14, items 2 and 7).
    assert max(len(line) for line in res.output.splitlines()) <= 100
    assert "vector_add N=4099" in res.output and "…" not in res.output
    assert "% peak" not in res.output.split("no % of peak")[0]
    assert "1 checked (correct under the Triton interpreter, not timed)" in res.output
    with Store.open(sqlite_url) as st:
        (summary,) = st.runs.find()
        assert summary.device == "cpu" and summary.label == "cli-test" and summary.gpu_model is None
        run = st.runs.get(summary.uuid)
    by = {(r.provider, r.metric): r for r in run.results}
    t = by[("torch", "time")]
    assert t.status == "ok" and t.unit == "ms" and t.samples is not None and len(t.samples) >= 10
    assert t.extra["timer"] == "wall" and t.extra["max_error"] < 1e-6 and "compile_ms" in t.extra
    assert by[("torch", "tflops")].value > 0 and by[("torch", "gbps")].value > 0
    assert ("torch", "pct_peak") not in by  # no peaks for a CPU
    tri = by[("triton", "time")]
    assert tri.status == "skipped" and tri.correct is True and "interpreter" in (tri.error or "")
    assert run.info["seed"] == 7 and run.build_info["triton"]["version"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provider", "cublas"], "unknown provider 'cublas'; valid:"),
        (["--dtype", "fp64"], "unknown dtype 'fp64'; valid:"),
        (["--suite", "weekly"], "unknown suite 'weekly'"),
        (["-k", "no-such-case"], "no case of suite 'smoke' matches"),
        (["--gpus", "a,b"], "--gpus 'a,b'"),
        (["--device", "cuda"], "--device cuda but torch sees no GPU"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, sqlite_url: str) -> None:
    res = CliRunner().invoke(main, ["run", "--device", "cpu", *args, "--db", sqlite_url])
    assert res.exit_code != 0
    assert message in res.output and "Traceback" not in res.output
    assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) == 1


def test_bad_suite_file_names_the_line(tmp_path: Path, sqlite_url: str) -> None:
    p = tmp_path / "s.toml"
    p.write_text('[[cases]]\noperator = "matmul"\n[[cases]]\noperator = "nope"\n')
    res = CliRunner().invoke(
        main, ["run", "--suite", str(p), "--device", "cpu", "--db", sqlite_url]
    )
    assert res.exit_code != 0 and f"{p}:3: unknown operator 'nope'" in res.output


def test_list_shows_availability_and_reasons() -> None:
    res = CliRunner().invoke(main, ["list", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "triton/persistent" in res.output and "fp8 e4m3 needs a GPU" in res.output
    assert "cases in suite 'smoke' can run here" in res.output


def test_calibrate_without_gpu_says_so(sqlite_url: str) -> None:
    res = CliRunner().invoke(main, ["calibrate", "--device", "cpu", "--db", sqlite_url])
    assert res.exit_code != 0 and "calibrate measures a GPU" in res.output
