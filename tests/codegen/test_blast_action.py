"""The reusable blast action (deploy/github-actions/blast) and the example Triton-fork workflow:
they parse, use only inputs they declare and real CLI options, and the action's own blast
command line, run on a real change, writes the PR comment, the HTML and the JSON."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from support.probes import needs

from tritonwatch.cli import main
from tritonwatch.report.blast_markdown import MARKER

yaml = pytest.importorskip("yaml")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "github-actions"
ACTION = DEPLOY / "blast" / "action.yml"
WORKFLOW = DEPLOY / "triton-pr-blast.yml"
KERNELS = Path(__file__).resolve().parent / "kernels_sample.py"


def _action() -> dict[str, Any]:
    return yaml.safe_load(ACTION.read_text())


def _scripts(doc: dict[str, Any]) -> list[str]:
    return [s["run"] for s in doc["runs"]["steps"] if "run" in s]


def _tritonwatch_lines(script: str) -> list[str]:
    joined = script.replace("\\\n", " ")
    return [ln.strip() for ln in joined.splitlines() if ln.strip().startswith("tritonwatch ")]


def _command(words: list[str]) -> tuple[click.Command, list[str]]:
    cmd: click.Command = main
    rest = words[1:]
    while isinstance(cmd, click.Group) and rest and rest[0] in cmd.commands:
        cmd = cmd.commands[rest.pop(0)]
    return cmd, rest


def _options(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params for o in getattr(p, "opts", [])}


def test_action_is_composite_and_uses_only_declared_inputs() -> None:
    doc = _action()
    assert doc["runs"]["using"] == "composite"
    text = ACTION.read_text()
    used = set(re.findall(r"inputs\.([\w-]+)", text))
    assert used and used <= set(doc["inputs"]), used - set(doc["inputs"])
    for step in doc["runs"]["steps"]:
        if "run" in step:
            assert step["shell"] == "bash"  # composite run steps must name their shell
    uses = [s["uses"] for s in doc["runs"]["steps"] if "uses" in s]
    assert any(u.startswith("actions/github-script") for u in uses)
    assert any(u.startswith("actions/upload-artifact") for u in uses)


def test_every_tritonwatch_command_in_the_action_is_real() -> None:
    lines = [ln for s in _scripts(_action()) for ln in _tritonwatch_lines(s)]
    assert any(ln.startswith("tritonwatch blast") for ln in lines)
    assert any(ln.startswith("tritonwatch env create") for ln in lines)
    for ln in lines:
        cmd, rest = _command(shlex.split(ln.replace("$", "X")))
        for w in rest:
            if w.startswith("-") and w != "-":
                assert w.split("=")[0] in _options(cmd), f"{ln}: unknown option {w}"
    # options the script adds through the args array
    blast = main.commands["blast"]  # type: ignore[attr-defined]
    for opt in re.findall(r"args\+=\((--[\w-]+)", ACTION.read_text()):
        assert opt in _options(blast), opt


def test_example_workflow_runs_on_pull_requests_and_may_only_comment() -> None:
    wf = yaml.safe_load(WORKFLOW.read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in on
    assert wf["permissions"] == {"contents": "read", "pull-requests": "write"}
    steps = wf["jobs"]["blast"]["steps"]
    action = next(s for s in steps if "deploy/github-actions/blast" in s.get("uses", ""))
    assert set(action["with"]) <= set(_action()["inputs"])
    assert {"base-wheel", "pr-wheel"} <= set(action["with"])


@pytest.mark.slow
@needs("torch", "triton")
def test_the_action_blast_line_writes_comment_html_and_json(
    tmp_path: Path, fake_envs: dict[str, Path]
) -> None:
    """The action's own command line (variables filled in), on a real change: the PR comment
    leads with the marker and the summary, links the run, and shows where the code changed."""
    ((script, line),) = [
        (s, ln) for s in _scripts(_action()) for ln in _tritonwatch_lines(s) if " blast " in ln
    ]
    url = "https://github.com/o/triton/actions/runs/7"
    fill = {
        "$TARGETS": "sm90",
        "$out": str(tmp_path),
        "$RUN_URL": url,
    }
    for k, v in fill.items():
        line = line.replace(f'"{k}', f'"{v}').replace(k, v)
    words = shlex.split(line)
    i = words.index("${args[@]}")  # the script's array: the suite, a user's file, --fail-on
    words[i : i + 1] = ["--kernels", str(KERNELS), "--fail-on", "new-failures"]
    words[words.index("--a") + 1] = "current"  # the env names the install step created
    words[words.index("--b") + 1] = str(fake_envs["stages2"])
    assert "args=(--kernels suite)" in script  # the suite is left out here: it takes minutes
    res = CliRunner().invoke(main, words[1:])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "comment.md").read_text()
    lines = md.splitlines()
    assert lines[0] == MARKER
    assert lines[3] == "**1 of 3 specialisations changed; the first difference is at TTIR in 1.**"
    assert url in md and "| pipelined_kernel / pipelined_fp16 | sm90 | TTIR |" in md
    assert "pipelined_fp16 on sm90: TTIR diff</summary>" in md and "```diff" in md
    html = (tmp_path / "blast.html").read_text()
    assert html.startswith("<!doctype html>") and "pipelined_fp16" in html
    doc = json.loads((tmp_path / "blast.json").read_text())
    row = next(r for r in doc["results"] if r["status"] == "changed")
    assert row["diffs"]["TTIR"].startswith("--- A/TTIR")
