"""Import and export: tritonwatch.run/1 JSONL, CSV, Parquet, tritonbench JSON, PyTorch HUD v3.

Reading turns every supported file into validated :class:`~tritonwatch.runformat.Run` objects
before anything is written, so a bad line anywhere leaves the database untouched. Writing streams
runs out of the Store. HUD v3 is the ``oss_ci_benchmark_v3`` record layout of PyTorch's
benchmark database; tritonwatch keeps its own fields in the records' ``extra_info`` so an
export re-imports without loss.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import InputError, UsageError
from ..runformat import FORMAT, Run, describe_errors, parse_run
from .rows import RunDetail

if TYPE_CHECKING:
    from .store import Store

EXPORT_FORMATS = ("jsonl", "csv", "parquet", "hud")
IMPORT_FORMATS = ("auto", "jsonl", "tritonbench", "hud")
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


@dataclass(frozen=True)
class ImportedFile:
    path: str
    format: str
    runs: list[Run]


# -- reading ------------------------------------------------------------------------------
def read_file(path: str | Path, fmt: str = "auto") -> ImportedFile:
    """Parse one file into runs, detecting its format unless ``fmt`` names it."""
    p = Path(path)
    if fmt not in IMPORT_FORMATS:
        raise UsageError(
            f"unknown import format {fmt!r}; choose one of {', '.join(IMPORT_FORMATS)}"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", path=str(p)) from None
    except IsADirectoryError:
        raise InputError("is a folder; give the files inside it", path=str(p)) from None
    except UnicodeDecodeError:
        raise InputError(
            "not a text file (tritonwatch imports JSON and JSONL)", path=str(p)
        ) from None
    except OSError as e:
        raise InputError(f"cannot read ({e.strerror})", path=str(p)) from None
    stripped = text.lstrip()
    if not stripped:
        raise InputError("the file is empty", path=str(p))
    whole: Any = None
    if fmt in ("auto", "tritonbench", "hud"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None
    if fmt == "tritonbench" or (fmt == "auto" and isinstance(whole, dict) and "metrics" in whole):
        if not isinstance(whole, dict):
            raise InputError(
                "not a tritonbench --output-json file (expected one JSON object)", path=str(p)
            )
        return ImportedFile(str(p), "tritonbench", [_tritonbench_run(whole, text, str(p))])
    if isinstance(whole, dict) and "format" in whole:  # one run, pretty-printed
        return ImportedFile(str(p), "jsonl", [_validate(whole, str(p), 1)])
    if isinstance(whole, list):
        if fmt in ("auto", "hud") and all(isinstance(r, dict) and "metric" in r for r in whole):
            return ImportedFile(str(p), "hud", hud_runs(whole, str(p)))
        raise InputError("a JSON list, but not of PyTorch HUD v3 records", path=str(p))
    records = list(_json_lines(text, str(p)))
    first = records[0][1]
    if fmt == "hud" or (fmt == "auto" and "metric" in first and "benchmark" in first):
        return ImportedFile(str(p), "hud", hud_runs([r for _, r in records], str(p)))
    if fmt in ("auto", "jsonl") and "format" in first:
        return ImportedFile(str(p), "jsonl", [_validate(r, str(p), n) for n, r in records])
    raise InputError(
        "cannot tell the format; tritonwatch imports tritonwatch.run/1 JSONL, tritonbench "
        "--output-json files and PyTorch HUD v3 records (see docs/run-format.md)",
        path=str(p),
        line=1,
    )


def _json_lines(text: str, path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    any_line = False
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            hint = (
                "; the file looks truncated"
                if n == text.count("\n") + 1 or not text.endswith("\n")
                else ""
            )
            raise InputError(
                f"not valid JSON ({e.msg} at column {e.colno}){hint}", path=path, line=n
            ) from None
        if not isinstance(obj, dict):
            raise InputError("each line must be one JSON object", path=path, line=n)
        any_line = True
        yield n, obj
    if not any_line:
        raise InputError("the file has no records", path=path)


def _validate(obj: dict[str, Any], path: str, line: int) -> Run:
    if obj.get("format") != FORMAT:
        raise InputError(
            f"format is {obj.get('format')!r}; this tritonwatch reads {FORMAT!r}",
            path=path,
            line=line,
        )
    try:
        return Run.model_validate(obj)
    except ValidationError as e:
        raise InputError(f"not a valid run: {describe_errors(e)}", path=path, line=line) from None


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


def _tritonbench_run(data: dict[str, Any], text: str, path: str) -> Run:
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


def run_document(d: RunDetail) -> dict[str, Any]:
    """A stored run as a ``tritonwatch.run/1`` document: what export writes and import reads."""
    results = []
    for r in d.results:
        item: dict[str, Any] = {
            "operator": r.operator,
            "provider": r.provider,
            "variant": r.variant,
            "shape": r.shape,
            "dtype": r.dtype,
            "mode": r.mode,
            "metric": r.metric,
            "unit": r.unit,
            "better": r.better,
            "status": r.status,
        }
        if r.samples is not None:
            item["samples"] = r.samples.tolist()
        if r.value is not None:
            item["value"] = r.value
        for k in ("error", "correct"):
            if getattr(r, k) is not None:
                item[k] = getattr(r, k)
        if r.extra:
            item["extra"] = r.extra
        results.append(item)
    return {
        "format": FORMAT,
        "run": d.info,
        "machine": d.machine_info,
        "build": d.build_info,
        "results": results,
    }


# -- writing ------------------------------------------------------------------------------
CSV_COLUMNS = [
    "run_id",
    "started_at",
    "label",
    "org",
    "machine",
    "device",
    "gpu_model",
    "triton_version",
    "triton_commit",
    "torch_version",
    "operator",
    "provider",
    "variant",
    "shape",
    "dtype",
    "mode",
    "metric",
    "unit",
    "better",
    "status",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "samples",
    "correct",
    "error",
]


def result_rows(d: RunDetail) -> Iterator[dict[str, Any]]:
    """Flat rows (CSV_COLUMNS) for one stored run: one row per result."""
    s, info = d.summary, d.info
    common = {
        "run_id": s.uuid,
        "started_at": s.started_at.isoformat(),
        "label": s.label,
        "org": s.org,
        "machine": s.machine,
        "device": s.device,
        "gpu_model": s.gpu_model,
        "triton_version": s.triton_version,
        "triton_commit": s.triton_commit,
        "torch_version": (d.build_info.get("torch") or {}).get("version"),
    }
    _ = info
    for r in d.results:
        yield {
            **common,
            "operator": r.operator,
            "provider": r.provider,
            "variant": r.variant,
            "shape": json.dumps(r.shape, sort_keys=True),
            "dtype": r.dtype,
            "mode": r.mode,
            "metric": r.metric,
            "unit": r.unit,
            "better": r.better,
            "status": r.status,
            "value": r.value,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "n": r.n,
            "samples": None if r.samples is None else r.samples.tolist(),
            "correct": r.correct,
            "error": r.error,
        }


def write_export(runs: Iterable[RunDetail], out: io.TextIOBase | Path, fmt: str) -> int:
    """Write stored runs in ``fmt`` to a text stream (jsonl, csv, hud) or a path (parquet).

    Returns the number of runs written.
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    n = 0
    if fmt == "parquet":
        return _write_parquet(runs, out)  # type: ignore[arg-type]
    assert not isinstance(out, Path)
    writer = csv.DictWriter(out, CSV_COLUMNS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    for d in runs:
        n += 1
        doc = run_document(d)
        if fmt == "jsonl":
            out.write(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
        elif fmt == "hud":
            for rec in hud_records(doc):
                out.write(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
        else:
            for row in result_rows(d):
                row["samples"] = json.dumps(row["samples"]) if row["samples"] is not None else ""
                writer.writerow(row)  # type: ignore[union-attr]
    return n


def _write_parquet(runs: Iterable[RunDetail], path: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            "Parquet export needs pyarrow: pip install 'tritonwatch[parquet]'"
        ) from None
    schema = pa.schema(
        [
            (
                c,
                pa.list_(pa.float64())
                if c == "samples"
                else pa.float64()
                if c in ("value", "ci_low", "ci_high")
                else pa.int64()
                if c == "n"
                else pa.bool_()
                if c == "correct"
                else pa.string(),
            )
            for c in CSV_COLUMNS
        ]
    )
    n = 0
    with pq.ParquetWriter(str(path), schema) as w:
        for d in runs:
            n += 1
            rows = list(result_rows(d))
            if rows:
                w.write_table(pa.Table.from_pylist(rows, schema=schema))
    return n


# -- the commands' library functions -----------------------------------------------------
@dataclass(frozen=True)
class ImportReport:
    files: list[tuple[str, str, int]]  # (path, format, runs in it)
    added: int
    skipped: int  # runs already stored (same UUID)
    results: int


def import_files(
    store: Store, paths: list[str], fmt: str = "auto", progress: Callable[[str], None] | None = None
) -> ImportReport:
    """Read every file completely, then write all their runs in one transaction.

    A bad file anywhere raises before anything is written, so an import is all or nothing.
    """
    parsed = []
    for p in paths:
        if progress:
            progress(p)
        parsed.append(read_file(p, fmt))
    added = store.add_runs(r for f in parsed for r in f.runs)
    return ImportReport(
        files=[(f.path, f.format, len(f.runs)) for f in parsed],
        added=sum(a.created for a in added),
        skipped=sum(not a.created for a in added),
        results=sum(a.n_results for a in added if a.created),
    )


def export_runs(
    store: Store,
    output: str,
    fmt: str,
    *,
    runs: list[str] | None = None,
    progress: Callable[[], None] | None = None,
    **filters: Any,
) -> int:
    """Write the matching runs (or the named ``runs``) to ``output`` ('-' is stdout)."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    if runs:
        details: Iterable[RunDetail] = (store.get_run(r) for r in runs)
    else:
        details = store.iter_runs(**filters)
    if progress:
        details = _tap(details, progress)
    if fmt == "parquet":
        if output == "-":
            raise UsageError("Parquet is binary; give -o FILE.parquet")
        return _write_atomic_binary(details, Path(output))
    if output == "-":
        return write_export(details, sys.stdout, fmt)  # type: ignore[arg-type]
    target = Path(output)
    tmp = target.with_name(target.name + ".partial")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            n = write_export(details, f, fmt)
        tmp.replace(target)  # never leave a half-written export under the real name
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror})", path=output) from None
    finally:
        tmp.unlink(missing_ok=True)
    return n


def _tap(items: Iterable[RunDetail], tick: Callable[[], None]) -> Iterator[RunDetail]:
    for item in items:
        yield item
        tick()


def _write_atomic_binary(details: Iterable[RunDetail], target: Path) -> int:
    tmp = target.with_name(target.name + ".partial")
    try:
        n = _write_parquet(details, tmp)
        tmp.replace(target)
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror})", path=str(target)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return n
