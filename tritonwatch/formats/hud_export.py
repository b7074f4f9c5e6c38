"""PyTorch HUD ``oss_ci_benchmark_v3`` records out: what test-infra's uploader accepts and HUD's
pages find (:mod:`.hud` reads them in).

Records that came from HUD go back as they came (their parts and per-result fields were kept on
import); tritonwatch's own results use ``model.type = "tritonwatch"``, the shape in
``metric.extra_info.input_shape`` as tritonbench's converter writes it, and their run/1 fields as
JSON strings in ``extra_info`` (those columns are ``Map(String, String)``), so they re-import
without loss. CI metadata (``workflow_id``, ``job_id``, ``repo``, ...) is written only when asked:
the uploader merges ``{**ci_metadata, **record}``, so a value written here would override the CI's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import UsageError
from .hud import INT_FIELDS, SCHEMA_VERSION


@dataclass(frozen=True)
class ExportOptions:
    """CI metadata for tritonwatch's own records, only when asked.

    Left out, the upload script fills ``timestamp``, ``name``, ``repo``, ``head_branch``,
    ``head_sha``, ``workflow_id``, ``run_attempt`` and ``job_id`` from its ``--metadata``.
    """

    repo: str | None = None
    from_ci_env: bool = False


# GitHub Actions variables for each CI field; job_id has no standard variable (test-infra's
# workflows look it up), so it comes from JOB_ID.
_CI_ENV = {
    "name": "GITHUB_WORKFLOW",
    "repo": "GITHUB_REPOSITORY",
    "head_branch": "GITHUB_REF",
    "head_sha": "GITHUB_SHA",
    "workflow_id": "GITHUB_RUN_ID",
    "run_attempt": "GITHUB_RUN_ATTEMPT",
    "job_id": "JOB_ID",
}


def ci_metadata(opts: ExportOptions, environ: dict[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    meta: dict[str, Any] = {}
    if opts.from_ci_env:
        missing = [v for v in _CI_ENV.values() if not env.get(v)]
        if missing:
            raise UsageError(
                "--hud-ci needs the CI's environment variables; missing: " + ", ".join(missing)
            )
        for field_name, var in _CI_ENV.items():
            value = env[var]
            meta[field_name] = int(value) if field_name in INT_FIELDS else value
        meta["timestamp"] = int(datetime.now(UTC).timestamp())
    if opts.repo:
        meta["repo"] = opts.repo
    return meta


def records(doc: dict[str, Any], meta: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """HUD v3 records for one run/1 document (as :func:`.run1.run_document` makes it)."""
    run = doc["run"]
    hud = run.get("hud")
    if isinstance(hud, dict) and "record" in hud and "parts" in hud:
        yield from _hud_records(doc)
    else:
        yield from _own_records(doc, meta or {})


def _hud_records(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The records a HUD import came from, rebuilt from the run's parts and each result."""
    top, parts = doc["run"]["hud"]["record"], doc["run"]["hud"]["parts"]
    for r in doc["results"]:
        hud = (r.get("extra") or {}).get("hud") or {}
        rec = dict(top)
        part = parts[hud["part"]]
        rec.update((k, v) for k, v in part.items() if k != "metric")
        metric = dict(part["metric"])
        if "input_shape" in hud:
            metric["extra_info"] = {
                **metric.get("extra_info", {}),
                "input_shape": hud["input_shape"],
            }
        if "benchmark_values" in hud:
            metric["benchmark_values"] = hud["benchmark_values"]
        else:
            metric["benchmark_values"] = r.get("samples") or (
                [r["value"]] if r.get("value") is not None else []
            )
        rec["metric"] = metric
        yield rec


def _input_shape(r: dict[str, Any]) -> str:
    x = (r.get("extra") or {}).get("x_val")
    if isinstance(x, str):
        return x
    values = list(r["shape"].values())
    if len(values) == 1:
        return str(values[0])
    return "(" + ", ".join(str(v) for v in values) + ")"


def _own_records(doc: dict[str, Any], meta: dict[str, Any]) -> Iterator[dict[str, Any]]:
    run, machine, build = doc["run"], doc["machine"], doc["build"]
    deps = {
        ("pytorch" if k == "torch" else k): {
            "repo": v.get("repo")
            or {"triton": "triton-lang/triton", "torch": "pytorch/pytorch"}.get(k, k),
            "branch": v.get("branch", ""),
            "sha": v.get("commit", ""),
            "version": v["version"],
            "extra_info": {"commit_time": str(v["commit_time"])} if v.get("commit_time") else {},
        }
        for k, v in build.items()
    }
    tw = json.dumps(
        {"run": run, "machine": machine, "build": build}, sort_keys=True, separators=(",", ":")
    )
    runner = {
        "name": machine["name"],
        "type": machine.get("gpu_model") or run.get("device") or "cpu",
        "gpu_info": machine.get("gpu_model") or "",
        "gpu_count": machine.get("gpu_count") or 0,
        "extra_info": {
            k: v if isinstance(v, str) else json.dumps(v, sort_keys=True)
            for k, v in machine.items()
            if k != "name"
        },
    }
    if machine.get("toolkit"):
        runner["extra_info"]["cuda_version"] = str(machine["toolkit"])
    for r in doc["results"]:
        core = {k: v for k, v in r.items() if k not in ("samples", "value")}
        mx: dict[str, str] = {
            "unit": r["unit"],
            "tritonwatch_result": json.dumps(core, sort_keys=True, separators=(",", ":")),
            "has_samples": "true" if "samples" in r else "false",
        }
        if r["shape"]:
            mx["input_shape"] = _input_shape(r)
        if "value" in r:
            mx["value"] = repr(float(r["value"]))
        yield {
            **meta,
            "schema_version": SCHEMA_VERSION,
            "benchmark": {
                "name": run.get("suite") or "tritonwatch",
                "mode": r["mode"],
                "dtype": r["dtype"],
                "extra_info": {"tritonwatch": tw},
            },
            "model": {
                "name": r["operator"],
                "type": "tritonwatch",
                "backend": r["provider"],
                "origins": [],
                "extra_info": {"variant": r["variant"]},
            },
            "inputs": {},
            "metric": {
                "name": r["metric"],
                "benchmark_values": r.get("samples") or ([r["value"]] if "value" in r else []),
                "extra_info": mx,
            },
            "runners": [runner],
            "dependencies": deps,
        }
