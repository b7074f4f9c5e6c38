"""`tritonwatch capture`: a command's Triton launches become specs (under the interpreter on
this CPU), as Triton specialises them, deduplicated; blast compiles them with no hand-written
signature."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.probes import needs, needs_interpreter

from tritonwatch.cli import main
from tritonwatch.codegen import blast
from tritonwatch.codegen.capture import capture

pytestmark = needs("torch", "triton")
LAUNCH = Path(__file__).resolve().parent / "data" / "launch_sample.py"


def _by_n(specs: list[dict]) -> dict[object, dict]:
    return {s["constexprs"].get("n", s["signature"]["n"]): s for s in specs}


def test_capture_records_each_specialisation_as_triton_makes_it(tmp_path: Path) -> None:
    r = capture([sys.executable, str(LAUNCH)], tmp_path / "specs.json", interpret=True)
    assert r.returncode == 0 and not r.errors, r.errors
    doc = json.loads((tmp_path / "specs.json").read_text())
    assert doc["format"] == "tritonwatch.specs/1" and len(doc["specs"]) == 3  # 4 launches
    by = {(s["divisibility"] and tuple(s["divisibility"]), s["num_warps"]): s for s in doc["specs"]}
    aligned = by[(("out_ptr", "x_ptr"), 4)]
    assert aligned["signature"]["n"] == "i32" and aligned["constexprs"] == {"BLOCK": 256}
    # n == 1 becomes a constant; x[1:] is not 16-byte aligned; num_warps as launched
    one = by[(("out_ptr",), 2)]
    assert one["signature"]["n"] == "constexpr" and one["constexprs"]["n"] == 1
    # 4096 is a multiple of 16: divisible
    big = by[(("n", "out_ptr", "x_ptr"), 4)]
    assert big["constexprs"] == {"BLOCK": 128}
    for s in doc["specs"]:  # a kernel in a script's sys.path folder: named by its file
        assert s["kernel"] == "scale_kernel" and s["file"].endswith("kernels_sample.py")
        assert s["as_launched"] is True

    report = blast("current", "current", targets="sm90", kernel_files=[tmp_path / "specs.json"])
    assert report.summary.total == 3 and report.summary.changed == 0
    assert all(row.a.status == "ok" for row in report.rows), [r.a.error_line for r in report.rows]


def test_cli_capture_keeps_the_command_exit_code(tmp_path: Path) -> None:
    out = tmp_path / "specs.json"
    res = CliRunner().invoke(
        main, ["capture", "-o", str(out), "--interpret", "--", sys.executable, str(LAUNCH), "3"]
    )
    assert res.exit_code == 3
    assert "Captured 3 specialisations of 1 kernel" in res.output
    assert "exited with code 3" in res.output
    assert len(json.loads(out.read_text())["specs"]) == 3


def test_capture_of_a_missing_command_is_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["capture", "-o", str(tmp_path / "s.json"), "--", "no-such-cmd"])
    assert res.exit_code != 0 and "command not found: no-such-cmd" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("bad", [{"specs": 3}, "not json"])
def test_a_broken_spec_file_is_refused_in_one_line(tmp_path: Path, bad: object) -> None:
    p = tmp_path / "specs.json"
    p.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    res = CliRunner().invoke(
        main, ["blast", "--a", "current", "--b", "current", "--kernels", str(p)]
    )
    assert res.exit_code != 0 and "spec file" in res.output and "Traceback" not in res.output


@pytest.mark.slow
@needs_interpreter()
def test_the_suite_records_its_own_specialisations_through_capture(tmp_path: Path) -> None:
    """`tritonwatch run` on a CPU runs the suite's kernels under the interpreter, so capturing
    it records the specialisations the suite really launches (here vector_add's two shapes:
    N=16384 divisible by 16, N=4099 not)."""
    out = tmp_path / "suite.json"
    run = ["run", "--suite", "smoke", "--device", "cpu", "--provider", "triton"]
    run += ["--dtype", "fp32", "-k", "vector_add*", "--budget-ms", "5"]
    run += ["--db", f"sqlite:///{tmp_path / 'r.db'}"]
    r = capture([sys.executable, "-m", "tritonwatch", *run], out)
    assert r.returncode == 0 and not r.errors, r.errors
    assert [k.rsplit(":", 1)[-1] for k in r.kernels] == ["add_kernel"]
    assert sorted("n_elements" in s["divisibility"] for s in r.specs) == [False, True]
    # The launch chose no num_stages: each target compiles with its own (3 NVIDIA, 2 AMD).
    assert all("num_stages" not in s for s in r.specs)
    report = blast("current", "current", targets="sm90", kernel_files=[out])
    assert report.summary.headline == "No change in 2 specialisations."


def test_an_autotuned_kernel_is_captured_per_config_under_the_interpreter(tmp_path: Path) -> None:
    """With no GPU, Triton's autotuner fails before launching anything (it cannot time configs);
    capture records each config it would time, heuristics applied, and blast compiles them as
    launched (not expanded again)."""
    launch = LAUNCH.parent / "launch_tuned.py"
    r = capture([sys.executable, str(launch)], tmp_path / "t.json", interpret=True)
    assert r.returncode == 1  # the command's own failure: no driver to time configs on
    assert not r.errors, r.errors
    got = sorted((s["constexprs"]["BLOCK"], s["num_warps"], s["num_stages"]) for s in r.specs)
    assert got == [(64, 2, 2), (128, 4, 3)]
    assert all(s["constexprs"]["EVEN"] is True for s in r.specs)  # 1024 % BLOCK == 0
    # num_ctas=1 from the config is Triton's default: not recorded as a choice
    assert [s.get("options") for s in r.specs if s["constexprs"]["BLOCK"] == 64] == [None]
    assert [
        s.get("options", {}).get("maxnreg") for s in r.specs if s["constexprs"]["BLOCK"] == 128
    ] == [128]
    report = blast("current", "current", targets="sm90", kernel_files=[tmp_path / "t.json"])
    assert report.summary.headline == "No change in 2 specialisations."
