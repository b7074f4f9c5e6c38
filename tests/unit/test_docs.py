"""Docs that cannot drift: the CLI and settings references are generated and checked."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_generated_references_are_current() -> None:
    gen = runpy.run_path(str(ROOT / "scripts" / "gen-docs"))
    for rel, make in gen["FILES"].items():
        assert (ROOT / rel).read_text(encoding="utf-8") == make(), (
            f"{rel} is stale: run `python scripts/gen-docs`")


def test_readme_names_real_commands() -> None:
    from tritonwatch.cli import main

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for line in readme.splitlines():
        if line.startswith("tritonwatch ") and not line.startswith("tritonwatch is"):
            assert line.split()[1] in main.commands, line


def _bash_blocks(text: str) -> list[str]:
    blocks, inside, cur = [], False, []
    for line in text.splitlines():
        if line.strip() == "```bash":
            inside, cur = True, []
        elif line.strip() == "```" and inside:
            inside = False
            blocks.append("\n".join(cur).strip())
        elif inside:
            cur.append(line)
    return blocks


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install_and_run, test_command = _bash_blocks(readme)[:2]
    assert "pytest" in test_command and "tritonwatch run" in install_and_run
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci_lines[-1] == test_command
