"""The deploy/ files and examples/nightly.toml parse, use real commands, and stay least-privilege."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest

from tritonwatch.cli import main
from tritonwatch.nightly import load_config

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
yaml = pytest.importorskip("yaml")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _check_command(line: str) -> None:
    """`tritonwatch SUB [SUB] --opt ...` names a real command and real options."""
    words = shlex.split(line.replace("$", "X"))
    assert words[0].endswith("tritonwatch"), line
    cmd: click.Command = main
    rest = words[1:]
    while isinstance(cmd, click.Group) and rest and rest[0] in cmd.commands:
        cmd = cmd.commands[rest.pop(0)]
    opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
    for w in rest:
        if w.startswith("--"):
            assert w.split("=")[0] in opts, f"{line}: unknown option {w}"


def _commands(text: str) -> list[str]:
    found = re.findall(r"(?:^|[\s\"'(;&|])((?:/\S+/)?tritonwatch (?:[a-z]+)[^\n;&|'\"]*)", text)
    return [c.strip() for c in found if not c.startswith("tritonwatch nightly benchmark")]


def test_example_config_and_configmap_load() -> None:
    cfg = load_config(ROOT / "examples" / "nightly.toml")
    assert cfg.run.suite == "nightly" and cfg.push.server and cfg.notify.format == "slack"
    cm = _docs(DEPLOY / "kubernetes" / "runner-cronjob.yaml")[0]
    tmp = ROOT / ".pytest-nightly-configmap.toml"
    try:
        tmp.write_text(cm["data"]["nightly.toml"])
        k8s = load_config(tmp)
    finally:
        tmp.unlink()
    assert k8s.push.token_file and k8s.db and k8s.db.startswith("sqlite:////spool/")


def test_github_workflow_is_scheduled_dispatchable_and_read_only() -> None:
    wf = yaml.safe_load((DEPLOY / "github-actions" / "tritonwatch-nightly.yml").read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert "schedule" in on and "workflow_dispatch" in on
    assert wf["permissions"] == {"contents": "read"}
    job = wf["jobs"]["nightly"]
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    assert job["env"]["TRITONWATCH_TOKEN"] == "${{ secrets.TRITONWATCH_TOKEN }}"
    for step in job["steps"]:
        for c in _commands(step.get("run", "")):
            _check_command(c)


def test_kubernetes_runner_has_no_inbound_path_and_server_has_probes() -> None:
    runner = {d["kind"]: d for d in _docs(DEPLOY / "kubernetes" / "runner-cronjob.yaml")}
    assert "Service" not in runner and "Ingress" not in runner
    cj = runner["CronJob"]["spec"]
    assert cj["concurrencyPolicy"] == "Forbid"
    pod = cj["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    c = pod["containers"][0]
    assert "ports" not in c and c["securityContext"]["allowPrivilegeEscalation"] is False
    _check_command(c["args"][0].split(";")[0])
    assert runner["NetworkPolicy"]["spec"]["ingress"] == []
    server = _docs(DEPLOY / "kubernetes" / "server.yaml")
    dep = next(d for d in server if d["kind"] == "Deployment")
    sc = dep["spec"]["template"]["spec"]["containers"][0]
    assert sc["readinessProbe"]["httpGet"]["path"] == "/healthz"
    for d in server:
        if d["kind"] in ("Deployment", "Job", "CronJob"):
            spec = d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"]
            for ctr in spec["template"]["spec"]["containers"]:
                for c in _commands(" ".join(ctr.get("command", []))):
                    _check_command(c)


def test_systemd_units_parse_and_run_real_commands() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert units
    for unit in units:
        p = configparser.ConfigParser(strict=False, interpolation=None)
        p.optionxform = str  # type: ignore[assignment,method-assign]
        p.read(unit)
        svc = p["Service"]
        assert svc["User"] == "tritonwatch" and svc["NoNewPrivileges"] == "yes"
        _check_command(svc["ExecStart"])
    timer = configparser.ConfigParser(interpolation=None)
    timer.read(DEPLOY / "systemd" / "tritonwatch-nightly.timer")
    assert timer["Timer"]["Persistent"] == "true"


def test_the_command_checker_catches_a_wrong_option() -> None:
    with pytest.raises(AssertionError, match="unknown option"):
        _check_command("tritonwatch nightly --conifg x.toml")
    with pytest.raises(AssertionError, match="unknown option"):
        _check_command("tritonwatch token create --organisation x")
