"""`tritonwatch compare` on the command line: options, --runs, output files, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support.probes import needs

from tritonwatch.cli import main
from tritonwatch.cli.compare import parse_threshold
from tritonwatch.runformat import dump_run, parse_run
from tritonwatch.store import Store
from tritonwatch.testing import make_run


def _invoke(args: list[str]) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, args)
    return r.exit_code, r.stdout, r.stderr


def _fails(args: list[str], expect: str) -> None:
    code, out, err = _invoke(args)
    assert code != 0 and "Traceback" not in out + err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert lines[-1].startswith("error: ") and expect in lines[-1], err


def _stored_pair(url: str, slow: float, driver_b: str = "550.54") -> tuple[str, str]:
    rng = np.random.default_rng(0)
    runs = []
    for factor, triton, driver in ((1.0, "3.8.0", "550.54"), (slow, "3.9.0", driver_b)):
        samples = (factor * np.exp(0.003 * rng.standard_normal(50))).tolist()
        res = [
            {
                "operator": "matmul",
                "provider": "triton",
                "shape": {"N": 1},
                "dtype": "fp16",
                "metric": "time",
                "unit": "ms",
                "samples": samples,
            },
        ]
        doc = dump_run(make_run(results=res, triton=triton, seed=int(factor * 100)))
        doc["machine"]["driver"] = driver
        runs.append(parse_run(doc))
    with Store.open(url) as st:
        st.runs.add_many(runs)
    return str(runs[0].run.id), str(runs[1].run.id)


@pytest.mark.parametrize(
    ("text", "value"), [("2%", 0.02), ("0.5%", 0.005), ("0.03", 0.03), (None, None)]
)
def test_threshold_is_a_percentage_or_a_fraction(text: str | None, value: float | None) -> None:
    assert parse_threshold(text) == (pytest.approx(value) if value is not None else None)


@needs("torch", "triton")
def test_bad_options_fail_in_one_line(sqlite_url: str) -> None:
    _fails(["compare", "--db", sqlite_url, "--a", "current"], "give --a ENV and --b ENV")
    _fails(
        ["compare", "--db", sqlite_url, "--a", "x", "--b", "y", "--runs", "ab12", "cd34"],
        "either --a/--b",
    )
    _fails(
        ["compare", "--db", sqlite_url, "--a", "current", "--b", "current", "--threshold", "2"],
        "write 2% or 0.02",
    )
    _fails(
        ["compare", "--db", sqlite_url, "--a", "current", "--b", "current", "--threshold", "x"],
        "percentage",
    )
    _fails(
        ["compare", "--db", sqlite_url, "--a", "current", "--b", "no-such-env"],
        "no environment 'no-such-env'",
    )
    _fails(
        ["compare", "--db", sqlite_url, "--a", "current", "--b", "current", "--blocks", "2"],
        "at least 4 blocks",
    )
    _fails(
        ["compare", "--db", sqlite_url, "--a", "current", "--b", "current", "--budget", "ten"],
        "write a time like 90s",
    )
    _fails(["compare", "--db", sqlite_url, "--runs", "abcd1234", "ef567890"], "no run 'abcd1234'")


def test_runs_json_and_fail_on_regression(sqlite_url: str) -> None:
    a, b = _stored_pair(sqlite_url, 1.10)
    code, out, err = _invoke(
        [
            "compare",
            "--db",
            sqlite_url,
            "--runs",
            a[:8],
            b[:8],
            "--format",
            "json",
            "--fail-on-regression",
        ]
    )
    assert code == 1, err
    doc = json.loads(out)
    assert doc["cases"][0]["verdict"] == "slower" and doc["run_a"] == a and doc["run_b"] == b
    assert doc["cases"][0]["ratio"] == pytest.approx(1.10, rel=0.01)
    assert "stored comparison" in err
    # Without the flag the same result exits 0; with a 20% threshold it is "same".
    code, out, _ = _invoke(
        [
            "compare",
            "--db",
            sqlite_url,
            "--runs",
            a,
            b,
            "--format",
            "json",
            "--threshold",
            "20%",
            "--fail-on-regression",
        ]
    )
    assert code == 0 and json.loads(out)["cases"][0]["verdict"] == "same"


def test_runs_refused_when_the_driver_differs_unless_forced(
    sqlite_url: str, tmp_path: Path
) -> None:
    a, b = _stored_pair(sqlite_url, 1.0, driver_b="560.28")
    _fails(["compare", "--db", sqlite_url, "--runs", a, b], "driver: '550.54' vs '560.28'")
    out_file = tmp_path / "comment.md"
    code, _, err = _invoke(
        [
            "compare",
            "--db",
            sqlite_url,
            "--runs",
            a,
            b,
            "--force",
            "--format",
            "markdown",
            "-o",
            str(out_file),
        ]
    )
    assert code == 0, err
    md = out_file.read_text()
    assert md.startswith("## tritonwatch compare") and "0 slower" in md
    code, out, _ = _invoke(["compare", "--db", sqlite_url, "--runs", a, b, "--force"])
    assert code == 0 and "matmul N=1" in out and "same" in out
