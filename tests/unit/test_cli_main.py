"""The command line: help for every command, and one clear line for every kind of bad input."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tritonwatch.cli import main
from tritonwatch.runformat import dump_run
from tritonwatch.store.schema import SCHEMA_VERSION
from tritonwatch.testing import make_run


def _all_commands(cmd: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            out += _all_commands(sub, (*path, name))
    return out


DESIGN_COMMANDS = {
    "run",
    "list",
    "calibrate",
    "compare",
    "db",
    "import",
    "export",
    "runs",
    "show",
    "detect",
    "alerts",
    "alert",
    "notify",
    "gate",
    "env",
    "blast",
    "serve",
    "push",
    "nightly",
    "token",
}


def test_every_design_command_is_listed() -> None:
    assert set(main.commands) >= DESIGN_COMMANDS


@pytest.mark.parametrize("path", _all_commands(main), ids=lambda p: " ".join(p) or "tritonwatch")
def test_help_of_every_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    # a real sentence of help, not an empty docstring
    assert len(result.output.split("\n\n")[1].strip()) > 20


def _fails_cleanly(args: list[str], expect: str) -> str:
    result = CliRunner().invoke(main, args)
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code != 0, out
    assert "Traceback" not in out
    lines = [line for line in out.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: "), out
    assert expect in out, out
    return out


def test_import_reports_the_bad_line(tmp_path: Path) -> None:
    good = json.dumps(dump_run(make_run()))
    path = tmp_path / "cut.jsonl"
    path.write_text(good + "\n" + good[:40])
    db = f"sqlite:///{tmp_path / 'tw.db'}"
    _fails_cleanly(["import", "--db", db, str(path)], "cut.jsonl:2: not valid JSON")
    assert CliRunner().invoke(main, ["runs", "--db", db, "--format", "json"]).output.strip() == "[]"


def test_import_missing_file(tmp_path: Path) -> None:
    _fails_cleanly(["import", str(tmp_path / "nope.jsonl")], "no such file")


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        ("mysql://x@localhost/db", "unsupported database"),
        ("postgresql://nobody@127.0.0.1:1/none", "cannot connect"),
        ("nonsense", "cannot read database URL"),
    ],
)
def test_bad_database_urls(url: str, expect: str) -> None:
    _fails_cleanly(["runs", "--db", url], expect)


def test_foreign_and_newer_databases(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    _fails_cleanly(["runs", "--db", f"sqlite:///{other}"], "not a tritonwatch database")
    newer = tmp_path / "newer.db"
    db = f"sqlite:///{newer}"
    assert CliRunner().invoke(main, ["db", "upgrade", "--db", db]).exit_code == 0
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0042'")
    _fails_cleanly(["runs", "--db", db], "newer than this tritonwatch")


def test_read_only_location(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    _fails_cleanly(["db", "upgrade", "--db", f"sqlite:///{tmp_path}/f/tw.db"], "cannot create")


def test_unknown_export_format_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["export", "--format", "xml"])
    assert result.exit_code == 2 and "xml" in result.output and "jsonl" in result.output


def test_show_unknown_run(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["db", "upgrade", "--db", f"sqlite:///{tmp_path / 'tw.db'}"])
    _fails_cleanly(
        ["show", "abcdef12", "--db", f"sqlite:///{tmp_path / 'tw.db'}"], "no run 'abcdef12'"
    )


def test_import_runs_show_export_through_the_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'tw.db'}"
    path = tmp_path / "runs.jsonl"
    runs = [make_run(seed=i, label=f"night{i}") for i in range(2)]
    path.write_text("".join(json.dumps(dump_run(r)) + "\n" for r in runs))
    result = runner.invoke(main, ["import", "--db", db, str(path)])
    assert result.exit_code == 0 and "imported 2 run(s) with 6 result(s)" in result.output
    listed = json.loads(runner.invoke(main, ["runs", "--db", db, "--format", "json"]).output)
    assert {r["label"] for r in listed} == {"night0", "night1"}
    shown = runner.invoke(main, ["show", listed[0]["id"][:8], "--db", db])
    assert shown.exit_code == 0 and "matmul" in shown.output and "±" in shown.output
    out = tmp_path / "out.jsonl"
    assert runner.invoke(main, ["export", "--db", db, "-o", str(out)]).exit_code == 0
    assert len(out.read_text().splitlines()) == 2
    info = json.loads(runner.invoke(main, ["db", "info", "--db", db, "--format", "json"]).output)
    assert info["counts"]["runs"] == 2 and info["schema_version"] == SCHEMA_VERSION


def test_rich_markup_in_names_is_printed_literally(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'tw.db'}"
    run = make_run(
        results=[
            {
                "operator": "[bold red]evil[/]",
                "provider": "p",
                "shape": {"n": 1},
                "dtype": "fp16",
                "metric": "time",
                "unit": "ms",
                "value": 1.0,
            }
        ]
    )
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(dump_run(run)) + "\n")
    CliRunner().invoke(main, ["import", "--db", db, str(path)])
    out = CliRunner().invoke(main, ["show", str(run.run.id)[:8], "--db", db]).output
    assert "[bold red]evil[/]" in out


def test_db_upgrade_migrates_an_older_database(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    shutil.copyfile(Path(__file__).resolve().parents[1] / "fixtures" / "schema-1.db", old)
    db = f"sqlite:///{old}"
    _fails_cleanly(["runs", "--db", db], "run `tritonwatch db upgrade`")
    out = CliRunner().invoke(main, ["db", "upgrade", "--db", db])
    assert out.exit_code == 0
    assert out.output.splitlines() == [
        f"migrating schema version 1 -> {SCHEMA_VERSION} (one transaction; keep it running)",
        f"schema version 1 -> {SCHEMA_VERSION}",
    ]
    listed = CliRunner().invoke(main, ["runs", "--db", db, "--format", "json"])
    assert listed.exit_code == 0 and len(json.loads(listed.output)) == 4


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "--since", "yesterday"],
        ["export", "--until", "yesterday"],
        ["detect", "--since", "yesterday"],
        ["notify", "--since", "yesterday"],
    ],
)
def test_every_date_option_parses_the_same_way(args: list[str], tmp_path: Path) -> None:
    opt = args[1]
    _fails_cleanly(
        [*args, "--db", f"sqlite:///{tmp_path / 'tw.db'}"],
        f"{opt} 'yesterday' is not a date; use ISO 8601 like 2026-11-01",
    )


def test_a_date_option_takes_naive_times_as_utc() -> None:
    from datetime import UTC, datetime

    from tritonwatch.cli.options import DATE

    assert DATE.convert("2026-11-01", None, None) == datetime(2026, 11, 1, tzinfo=UTC)
    assert DATE.convert("2026-11-01T12:00Z", None, None) == datetime(2026, 11, 1, 12, tzinfo=UTC)


def test_no_help_text_shows_a_doubled_percent_sign() -> None:
    # click prints help verbatim: "95%% CI" reached users and docs/cli.md as written.
    import click
    from click.testing import CliRunner

    from tritonwatch.cli import main

    def walk(cmd: click.Command, path: list[str]) -> list[list[str]]:
        out = [path]
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                out += walk(sub, [*path, name])
        return out

    for path in walk(main, []):
        r = CliRunner().invoke(main, [*path, "--help"])
        assert r.exit_code == 0 and "%%" not in r.output, path


@pytest.mark.parametrize(
    "argv",
    [["runs"], ["show", "abcd"], ["export"], ["alerts"], ["db", "info"], ["token", "list"],
     ["notify"]],
)  # fmt: skip
def test_a_read_of_a_mistyped_db_says_so_and_creates_nothing(
    tmp_path: Path, argv: list[str]
) -> None:
    from click.testing import CliRunner

    from tritonwatch.cli import main

    typo = tmp_path / "typo" / "tw.db"
    r = CliRunner().invoke(main, [*argv, "--db", f"sqlite:///{typo}"])
    assert r.exit_code != 0 and "no database at" in r.output and "check --db" in r.output
    assert r.output.strip().count("\n") == 0  # one line, no traceback
    assert not typo.exists() and not typo.parent.exists()


def test_version_is_quick_because_it_imports_no_command() -> None:
    """`tritonwatch --version` loads no command module (no database, web or numpy stack), so it
    answers at once on first use (issue 14, item 11)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tritonwatch.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('sqlalchemy', 'rich', 'numpy', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "tritonwatch, version " + __import__("tritonwatch").__version__,
        "[]",
    ]


def test_every_command_a_module_defines_is_listed() -> None:
    """The lazy command table must name every command: one left out is unreachable (capture
    was, after the table was introduced beside it)."""
    import importlib

    from tritonwatch.cli import _COMMANDS

    for module in set(_COMMANDS.values()):
        mod = importlib.import_module(f"tritonwatch.cli.{module}")
        for command in mod.COMMANDS:
            assert _COMMANDS.get(command.name or "") == module, command.name
