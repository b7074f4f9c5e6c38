"""`tritonwatch env create|list` and `tritonwatch blast` through the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.probes import needs

from tritonwatch import settings
from tritonwatch.cli import main
from tritonwatch.store import Store

pytestmark = needs("torch", "triton")


KERNELS = str(Path(__file__).resolve().parent / "kernels_sample.py")


def _one_line_error(result: object, needle: str) -> None:
    assert result.exit_code != 0  # type: ignore[attr-defined]
    out = result.output  # type: ignore[attr-defined]
    assert out.startswith("error: ") and needle in out, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1


@pytest.mark.slow
def test_blast_writes_a_report_and_stores_it(tmp_path: Path, sqlite_url: str) -> None:
    out = tmp_path / "blast.json"
    r = CliRunner().invoke(
        main,
        [
            "blast",
            "--a",
            "current",
            "--b",
            sys.executable,
            "--kernels",
            KERNELS,
            "-k",
            "scale",
            "--targets",
            "gfx942",
            "--format",
            "json",
            "-o",
            str(out),
            "--db",
            sqlite_url,
            "--jobs",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "No change in 1 specialisation." in r.output
    doc = json.loads(out.read_text())
    (row,) = doc["results"]
    assert (row["kernel"], row["spec"], row["target"]) == ("scale_kernel", "scale_fp32", "gfx942")
    assert row["first_changed_stage"] is None and row["a"]["metrics"]["vgprs"] > 0
    with Store.open(sqlite_url) as st:
        (info,) = st.codegen.reports()
        assert info.uuid == doc["uuid"]
    table = CliRunner().invoke(
        main,
        [
            "blast",
            "--a",
            "current",
            "--b",
            "current",
            "--kernels",
            KERNELS,
            "-k",
            "scale",
            "--targets",
            "gfx942",
            "--no-store",
        ],
    )
    assert table.exit_code == 0 and "No change in 1 specialisation." in table.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--targets", "sm90,h100"], "unknown target 'h100'"),
        (["--targets", "sm91"], "unknown target 'sm91'; did you mean sm90"),
        (["--fail-on", "spils"], "unknown --fail-on condition 'spils'"),
        (["--b", "no-such-env"], "no environment 'no-such-env'"),
        (["--kernels", "/no/such/file.py"], "no such kernel file"),
        (["-k", "zzz-nothing"], "no kernel specs match"),
        (["-o", "/no/such/folder/report.html"], "does not exist"),
        (["--db", "mysql://x@y/z"], "unsupported database"),
    ],
)
def test_blast_bad_input_is_one_line(args: list[str], needle: str) -> None:
    base = {"--a": "current", "--b": "current", "--kernels": KERNELS, "--targets": "gfx942"}
    extra = dict(zip(args[::2], args[1::2], strict=True))
    argv = ["blast"]
    for k, v in {**base, **extra}.items():
        argv += [k, v]
    _one_line_error(CliRunner().invoke(main, argv), needle)


def test_blast_env_without_triton(tmp_path: Path) -> None:
    fake = tmp_path / "py-no-triton"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    fake.chmod(0o755)
    r = CliRunner().invoke(
        main,
        ["blast", "--a", "current", "--b", str(fake), "--kernels", KERNELS, "--targets", "gfx942"],
    )
    _one_line_error(r, "has no Triton")


def test_env_list_and_create_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(main, ["env", "list"])
    assert empty.exit_code == 0 and "no environments in" in empty.output
    # an environment folder whose python is this interpreter (the host's Triton); a wrapper, not
    # a symlink: a symlinked venv python outside its venv folder is the base Python
    folder = Path(settings.get("envs_dir")) / "host"
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (folder / "bin" / "python").chmod(0o755)
    listed = runner.invoke(main, ["env", "list"])
    assert listed.exit_code == 0 and "host" in listed.output
    import torch
    import triton

    assert triton.__version__ in listed.output
    # In 100 columns the path (what --a/--b take) folds over lines instead of ending in "…".
    narrow = runner.invoke(main, ["env", "list"], env={"COLUMNS": "100"})
    assert "…" not in narrow.output, narrow.output
    assert max(len(line) for line in narrow.output.splitlines()) <= 100
    wide = runner.invoke(main, ["env", "list"], terminal_width=250)
    assert "torch" in wide.output and torch.__version__ in wide.output, wide.output
    from tritonwatch import __version__

    assert __version__ in wide.output
    broken = Path(settings.get("envs_dir")) / "broken" / "bin"
    broken.mkdir(parents=True)
    (broken / "python").write_text("#!/bin/sh\necho 'boom' >&2\nexit 3\n")
    (broken / "python").chmod(0o755)
    listed = runner.invoke(main, ["env", "list"], terminal_width=200)
    assert listed.exit_code == 0 and "broken" in listed.output and "cannot run" in listed.output
    _one_line_error(
        runner.invoke(main, ["env", "create", "host", "--triton", "3.8.0"]), "already exists"
    )
    _one_line_error(
        runner.invoke(main, ["env", "create", "bad name!", "--triton", "3.8.0"]),
        "bad environment name",
    )
    _one_line_error(
        runner.invoke(main, ["env", "create", "x", "--triton", "latest please"]),
        "neither a version",
    )
    _one_line_error(
        runner.invoke(main, ["env", "create", "x", "--triton", "/no/such.whl"]), "no wheel file"
    )
    _one_line_error(runner.invoke(main, ["env", "remove", "nope"]), "environments there: ")
    gone = runner.invoke(main, ["env", "remove", "host"])
    assert gone.exit_code == 0 and "removed host" in gone.output and not folder.exists()
    _one_line_error(runner.invoke(main, ["env", "remove", "host"]), "no environment 'host'")


@pytest.mark.slow
def test_fail_on_new_failures_sets_the_exit_code(tmp_path: Path, sqlite_url: str) -> None:
    broken = tmp_path / "py-broken"
    broken.write_text(f'#!/bin/sh\nexport TW_TEST_BREAK=1\nexec {sys.executable} "$@"\n')
    broken.chmod(0o755)
    argv = ["blast", "--a", "current", "--b", str(broken), "--kernels", KERNELS]
    argv += ["-k", "breakable", "--targets", "sm_90a", "--db", sqlite_url]
    plain = CliRunner().invoke(main, argv)
    assert plain.exit_code == 0, plain.output  # a report is not a verdict unless asked for
    r = CliRunner().invoke(main, [*argv, "--fail-on", "new-failures,spills"])
    assert r.exit_code == 1, r.output
    assert "failing: 1 specialisation fails to compile only in B" in r.output
    assert "breakable_kernel/breakable_fp32 on sm90a" in r.output
    with Store.open(sqlite_url) as st:
        assert len(st.codegen.reports()) == 2  # the report is still recorded


def test_interrupted_blast_writes_the_partial_report_and_exits_130(
    tmp_path: Path, sqlite_url: str, synthetic_report: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import importlib

    blast_mod = importlib.import_module("tritonwatch.codegen.blast")  # the module, not the function

    partial = dataclasses.replace(synthetic_report, partial=True)  # type: ignore[type-var]
    monkeypatch.setattr(blast_mod, "blast", lambda *a, **k: partial)
    out = tmp_path / "r.json"
    argv = ["blast", "--a", "current", "--b", "current", "--kernels", KERNELS]
    r = CliRunner().invoke(main, [*argv, "--format", "json", "-o", str(out), "--db", sqlite_url])
    assert r.exit_code == 130, r.output
    assert "interrupted: the report above is partial (not stored)" in r.output
    assert json.loads(out.read_text())["partial"] is True
    with Store.open(sqlite_url) as st:
        assert st.codegen.reports() == []
