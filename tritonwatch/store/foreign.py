"""Other tools' formats as tritonwatch runs: tritonbench ``--output-json`` and PyTorch HUD v3.

HUD v3 is the ``oss_ci_benchmark_v3`` record layout of PyTorch's benchmark database; tritonwatch
keeps its own fields in the records' ``extra_info`` so an export re-imports without loss.
``interchange`` detects the format and calls in here.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runformat import FORMAT, Run, parse_run

# Imported runs without their own UUID get a stable one, so importing twice adds nothing.
_NAMESPACE = uuid.UUID("6f1c3c9e-5d1e-4c53-9a57-2b7f0e0c1a11")
_UNITS = {
    "latency": "ms",
    "tflops": "TFLOP/s",
    "gbps": "GB/s",
    "speedup": "x",
    "compile_time": "ms",
    "accuracy": "",
    "mem_footprint": "GB",
}
_TB_DTYPES = ("fp16", "fp32", "bf16", "int8", "int4", "fp8")


def _build_run(doc: dict[str, Any], path: str) -> Run:
    try:
        return parse_run(doc)
    except ValueError as e:
        raise InputError(f"cannot convert to a run: {e}", path=path) from None


# -- tritonbench --------------------------------------------------------------------------
_TB_INPUT = re.compile(
    r"^tritonbench_([0-9a-z_]+?)_(fwd|bwd|fwd_bwd|[a-z]+)\[x_(.*)-([0-9a-z_]+)\]_([a-z_0-9]+)$"
)
_TB_AGG = re.compile(r"^tritonbench_([0-9a-z_]+?)_(fwd|bwd|fwd_bwd|[a-z]+)\[([0-9a-z_]+)\]-(.+)$")


def _tb_dtype(op: str) -> tuple[str, str]:
    for prefix in _TB_DTYPES:
        if op.startswith(prefix + "_"):
            return prefix, op[len(prefix) + 1 :]
    return "unknown", op


def tritonbench_run(data: dict[str, Any], text: str, path: str) -> Run:
    """A tritonbench ``--output-json`` file: metric ids like
    ``tritonbench_<op>_<mode>[x_<input>-<backend>]_<metric>`` mapped to values."""
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise InputError("tritonbench file without a 'metrics' object", path=path)
    env = data.get("env") or {}
    results = []
    for key, raw in metrics.items():
        if key.endswith(("-pass", "-target")) or "[x_average" in key:
            continue
        m = _TB_INPUT.match(key)
        if m:
            op, mode, shape_in, backend, metric = m.groups()
            shape = {"input": shape_in.strip()}
        else:
            a = _TB_AGG.match(key)
            if not a:
                raise InputError(f"unrecognised tritonbench metric id {key!r}", path=path)
            op, mode, backend, metric = a.groups()
            shape = {"input": "aggregate"}
        dtype, op = _tb_dtype(op)
        item: dict[str, Any] = {
            "operator": op,
            "provider": backend,
            "shape": shape,
            "dtype": dtype,
            "mode": mode,
            "metric": metric,
            "unit": _UNITS.get(metric, ""),
        }
        try:
            item["value"] = float(raw)
        except (TypeError, ValueError):
            item.update(status="error", error=str(raw))
        results.append(item)
    digest = hashlib.sha256(text.encode()).hexdigest()
    started = env.get("timestamp") or env.get("triton_commit_time")
    doc = {
        "format": FORMAT,
        "run": {
            "id": str(uuid.uuid5(_NAMESPACE, "tritonbench:" + digest)),
            "started_at": _time(started) or datetime.fromtimestamp(Path(path).stat().st_mtime, UTC),
            "label": data.get("name"),
            "source": "tritonbench",
        },
        "machine": {
            "name": (data.get("github") or {}).get("RUNNER_NAME") or env.get("device") or "unknown",
            "gpu_model": env.get("device"),
            "toolkit": env.get("cuda_version"),
        },
        "build": _deps_from_env(env),
        "results": results,
    }
    return _build_run(doc, path)


def _deps_from_env(env: dict[str, Any]) -> dict[str, Any]:
    build: dict[str, Any] = {}
    for dep, key in (("triton", "triton"), ("torch", "pytorch"), ("tritonbench", "tritonbench")):
        version = env.get(f"{key}_version") or env.get(f"{key}_commit")
        if version:
            build[dep] = {
                "version": str(version),
                "commit": env.get(f"{key}_commit"),
                "branch": env.get(f"{key}_branch"),
            }
            build[dep] = {k: v for k, v in build[dep].items() if v}
    build.setdefault("triton", {"version": "unknown"})
    return build


def _time(v: Any) -> datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)):
        return datetime.fromtimestamp(float(v), UTC)
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# -- PyTorch HUD v3 -----------------------------------------------------------------------
def hud_runs(records: list[dict[str, Any]], path: str = "<records>") -> list[Run]:
    """Group HUD v3 records into runs: records sharing timestamp, head_sha and runner are one."""
    groups: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = {}
    for i, r in enumerate(records, start=1):
        if not isinstance(r.get("metric"), dict) or not isinstance(r.get("model", {}), dict):
            raise InputError(
                "not a HUD v3 record (needs 'metric' and 'model' objects)", path=path, line=i
            )
        runner = (r.get("runners") or [{}])[0].get("name")
        tw = ((r.get("benchmark") or {}).get("extra_info") or {}).get("tritonwatch") or {}
        # Our own records name their run; others are grouped as the HUD groups them.
        own = (tw.get("run") or {}).get("id")
        groups.setdefault((r.get("timestamp"), r.get("head_sha"), own or runner), []).append(r)
    return [_hud_run(key, recs, path) for key, recs in groups.items()]


def _hud_run(key: tuple[Any, Any, Any], recs: list[dict[str, Any]], path: str) -> Run:
    timestamp, head_sha, runner_name = key
    first = recs[0]
    tw = (first.get("benchmark") or {}).get("extra_info", {}).get("tritonwatch") or {}
    runner = (first.get("runners") or [{}])[0]
    if tw:
        run_info, machine, build = tw["run"], tw["machine"], tw["build"]
    else:
        run_info = {
            "id": str(uuid.uuid5(_NAMESPACE, f"hud:{timestamp}:{head_sha}:{runner_name}")),
            "started_at": _time(timestamp) or datetime.now(UTC),
            "label": first.get("head_branch"),
            "source": "hud",
        }
        machine = {
            "name": runner_name or "unknown",
            "gpu_model": runner.get("gpu_info"),
            "gpu_count": runner.get("gpu_count"),
        }
        build = {}
        for name, dep in (first.get("dependencies") or {}).items():
            version = dep.get("version") or dep.get("sha")
            if version:
                build["torch" if name == "pytorch" else name] = {
                    k: v
                    for k, v in {
                        "version": str(version),
                        "commit": dep.get("sha"),
                        "branch": dep.get("branch"),
                    }.items()
                    if v
                }
        build.setdefault("triton", {"version": str(head_sha or "unknown")})
    results = []
    for r in recs:
        bench, model, metric = r.get("benchmark") or {}, r.get("model") or {}, r["metric"]
        mx = metric.get("extra_info") or {}
        item: dict[str, Any] = mx.get("tritonwatch_result") or {
            "operator": model.get("name") or "unknown",
            "provider": model.get("backend") or "unknown",
            "shape": {"input": str(mx["input_shape"])} if "input_shape" in mx else {},
            "dtype": bench.get("dtype") or "unknown",
            "mode": bench.get("mode") or "fwd",
            "metric": metric.get("name") or "unknown",
            "unit": _UNITS.get(metric.get("name", ""), ""),
        }
        item = dict(item)
        values = metric.get("benchmark_values") or []
        if tw:
            if "value" in mx:
                item["value"] = mx["value"]
            if values and mx.get("has_samples", True):
                item["samples"] = values
        elif values:
            item["samples"] = values
        results.append(item)
    return _build_run(
        {"format": FORMAT, "run": run_info, "machine": machine, "build": build, "results": results},
        path,
    )


def hud_records(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """HUD v3 records for one run/1 document; samples go in ``metric.benchmark_values``."""
    run, machine, build = doc["run"], doc["machine"], doc["build"]
    ts = int(_time(run["started_at"]).timestamp())  # type: ignore[union-attr]
    triton = build["triton"]
    deps = {
        ("pytorch" if k == "torch" else k): {
            "repo": {"triton": "triton-lang/triton", "torch": "pytorch/pytorch"}.get(k, k),
            "branch": v.get("branch", ""),
            "sha": v.get("commit", ""),
            "version": v["version"],
            "extra_info": {},
        }
        for k, v in build.items()
    }
    tw = {"run": run, "machine": machine, "build": build}
    for r in doc["results"]:
        core = {k: v for k, v in r.items() if k not in ("samples", "value")}
        yield {
            "timestamp": ts,
            "schema_version": "v3",
            "name": "tritonwatch",
            "repo": "triton-lang/triton",
            "head_branch": run.get("label") or "",
            "head_sha": triton.get("commit") or triton["version"],
            "workflow_id": 0,
            "run_attempt": 1,
            "job_id": 0,
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
                "extra_info": {"variant": r["variant"], "shape": r["shape"]},
            },
            "inputs": {},
            "metric": {
                "name": r["metric"],
                "benchmark_values": r.get("samples") or ([r["value"]] if "value" in r else []),
                "target_value": None,
                "extra_info": {
                    "unit": r["unit"],
                    "tritonwatch_result": core,
                    "has_samples": "samples" in r,
                    **({"value": r["value"]} if "value" in r else {}),
                },
            },
            "runners": [
                {
                    "name": machine["name"],
                    "type": machine.get("gpu_model") or "cpu",
                    "gpu_info": machine.get("gpu_model") or "",
                    "gpu_count": machine.get("gpu_count") or 0,
                    "extra_info": {k: str(v) for k, v in machine.items() if k not in ("name",)},
                }
            ],
            "dependencies": deps,
        }
