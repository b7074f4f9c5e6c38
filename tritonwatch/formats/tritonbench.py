"""tritonbench's files as tritonwatch runs: ``--output-json``, nightly ``result.json``, ``--output`` CSV.

tritonbench (meta-pytorch/tritonbench) writes one flat dict per operator run
(``BenchmarkOperatorResult.userbenchmark_dict`` in ``tritonbench/utils/triton_op.py``):

- per input: ``tritonbench_{benchmark}[x_{x_val}-{provider}]_{metric}``
- per provider: ``tritonbench_{benchmark}[{provider}]-{metric}-avg``
- nightly only: ``tritonbench_{benchmark}-pass`` (``benchmarks/nightly/run.py``)

where ``{provider}-{metric}`` is a table header split at its first ``-``, so a backend label with
a ``-`` (``cudnn-91002``) spills into the metric part and is joined back here; a dict metric
(``best_config``) becomes one id per key; an x-only metric (``hw_roofline``) has no provider.
:mod:`.tritonbench_ids` parses the ids and the inputs' shapes; metric names, units and
directions come from :mod:`.metrics`.
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runformat import FORMAT, Run, parse_run
from .metrics import AVERAGE_SUFFIX, lookup, unit_of
from .options import ImportOptions, Tally, device_of_gpu, obj, parse_time, text_id
from .tritonbench_ids import (
    BENCHMARK_PROVIDER,
    MODES,
    PREFIX,
    parse_id,
    shape_of,
    split_benchmark,
    tuple_items,
)

_PSEUDO_INPUTS = ("average", "hashes")  # rows _table() appends after the real inputs
# _table() divides its sums by the number of rows including each x_hashes row it appended (one
# per call, and run.py calls it to print and again to write), so these averages are too low.
_DILUTED = "a -avg too low: with kernel_source_hash, tritonbench averages over its x_hashes row too"
_EXTRA_KEY = {"best_config": "config"}  # tritonwatch's runner records the autotuned config so


# -- metric dicts -> results ------------------------------------------------------------------
@dataclass
class _Group:
    """The ids of one (benchmark, input, provider): they share correctness, config and errors."""

    benchmark: str
    x: str | None
    provider: str
    entries: list[tuple[str, str | None, Any]] = field(default_factory=list)


def _as_float(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, (int, float)):
        return float(raw) if math.isfinite(raw) else None
    if isinstance(raw, str):
        try:
            v = float(raw)
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def _tuple_values(raw: Any) -> list[float] | None:
    """The numbers of a tuple-valued metric (vector_add's gbps at p50, max and min latency):
    ``json.dump`` writes it as a list, the CSV as its text ``(26.3, 24.9, 27.5)``."""
    parts = tuple_items(raw) if isinstance(raw, str) else raw
    if not isinstance(parts, list):
        return None
    values = [_as_float(p) for p in parts]
    if not values or any(v is None for v in values):
        return None
    return values  # type: ignore[return-value]


def results_from_metrics(
    metrics: Mapping[str, Any], opts: ImportOptions, tally: Tally
) -> list[dict[str, Any]]:
    """Results (run/1 dicts) from one tritonbench metrics dict; every id is counted in ``tally``."""
    out: list[dict[str, Any]] = []
    groups: dict[tuple[str, str | None, str], _Group] = {}
    hashed: set[str] = set()  # benchmarks with an x_hashes row: their averages are diluted
    for key, raw in metrics.items():
        tally.items += 1
        p = parse_id(key)
        if p is None:
            tally.skip("metric id not understood")
            tally.warn(f"skipped metric id {key!r}")
            continue
        if p.kind == "target":
            tally.skip("-target (a threshold, not a measurement)")
            continue
        if p.kind == "pass":
            out.append(_pass_result(p.benchmark, raw, opts, tally))
            continue
        if p.x is not None and p.x in _PSEUDO_INPUTS:
            if p.x == "hashes":
                hashed.add(p.benchmark)
            tally.skip(f"x_{p.x} row (tritonbench's own summary, not an input)")
            continue
        g = groups.get((p.benchmark, p.x, p.provider))
        if g is None:
            g = groups[(p.benchmark, p.x, p.provider)] = _Group(p.benchmark, p.x, p.provider)
        g.entries.append((p.metric, p.key, raw))
    for g in groups.values():
        if g.x is None and g.benchmark in hashed:
            tally.skip(_DILUTED, len(g.entries))
            continue
        out.extend(_group_results(g, opts, tally))
    tally.results += len(out)
    return out


def _names(benchmark: str, opts: ImportOptions, tally: Tally) -> tuple[str, str, str]:
    """(operator, mode, dtype) of a benchmark name; ``--dtype`` names a dtype it leaves out."""
    op, mode, dtype = split_benchmark(benchmark)
    if dtype == "unknown":
        if opts.dtype:
            return op, mode, opts.dtype
        tally.warn(
            "benchmark names without a data type: stored as dtype 'unknown' "
            "(give --dtype, the --precision tritonbench ran with)"
        )
    return op, mode, dtype


def _base(g: _Group, opts: ImportOptions, tally: Tally) -> dict[str, Any]:
    op, mode, dtype = _names(g.benchmark, opts, tally)
    base: dict[str, Any] = {"operator": op, "provider": g.provider, "dtype": dtype, "mode": mode}
    if g.x is None:
        base["shape"] = {}
    else:
        base["shape"] = shape_of(op, g.x, opts.shape_names, tally)
    return base


def _pass_result(benchmark: str, raw: Any, opts: ImportOptions, tally: Tally) -> dict[str, Any]:
    op, mode, dtype = _names(benchmark, opts, tally)
    item: dict[str, Any] = {
        "operator": op,
        "provider": BENCHMARK_PROVIDER,
        "shape": {},
        "dtype": dtype,
        "mode": mode,
        "metric": "pass",
        "unit": "",
        "better": "higher",
    }
    if _as_float(raw) == 1.0:
        item["value"] = 1.0
    else:
        item.update(
            status="error",
            error=f"tritonbench reported {benchmark}-pass: {raw} "
            "(the benchmark failed before writing any result)",
        )
    return item


def _group_results(g: _Group, opts: ImportOptions, tally: Tally) -> list[dict[str, Any]]:
    base = _base(g, opts, tally)
    averages = g.x is None
    extra: dict[str, Any] = {}
    if g.x is not None:
        extra["x_val"] = g.x  # tritonbench's own text, so an export names the input as it did
    numbers: list[tuple[str, float]] = []
    nulls: list[str] = []
    error: tuple[str, str] | None = None
    correct: bool | None = None
    for metric, key, raw in g.entries:
        info = lookup(metric)
        kind = info.kind if info else "number"
        name = metric + (AVERAGE_SUFFIX if averages else "")
        if key is not None or kind == "dict":
            if raw is None:
                nulls.append(name)  # counted below: null, or null because the backend failed
            elif averages:
                tally.skip(f"average of a dict metric ({metric})")
            else:
                slot = _EXTRA_KEY.get(metric, metric)
                if key is None:
                    extra[slot] = raw
                else:
                    extra.setdefault(slot, {})[key] = raw
                tally.skip(f"kept in its results' extra: {metric}")
            continue
        if raw is None:
            nulls.append(name)
            continue
        if kind == "text":
            extra[metric] = raw
            tally.skip(f"kept in its results' extra: {metric}")
            continue
        value = _as_float(raw)
        values = _tuple_values(raw) if value is None and kind == "number" and info else None
        if values is not None:
            # tritonbench's own table (_post_process_table) shows a list of numbers as its
            # median; a tuple it leaves whole, so take the same value here and keep the tuple.
            value = statistics.median(values)
            extra[metric] = raw if isinstance(raw, list) else values
        if value is None:
            if error is None and isinstance(raw, str) and raw.strip():
                error = (name, raw.strip())  # a failed backend: its message in its first metric
            else:
                tally.skip("not a number")
            continue
        if kind == "accuracy" and not averages:
            correct = value >= 1.0
        numbers.append((name, value))
    out: list[dict[str, Any]] = []
    if error is not None:
        out.append(
            {
                **base,
                "metric": error[0],
                "unit": unit_of(error[0]),
                "status": "error",
                "error": error[1],
                **({"extra": extra} if extra else {}),
            }
        )
        tally.skip("no value: the backend failed", len(nulls))
    else:
        tally.skip("no value (null)", len(nulls))
    for name, value in numbers:
        item: dict[str, Any] = {**base, "metric": name, "unit": unit_of(name), "value": value}
        if correct is not None:
            item["correct"] = correct
            if not correct and name != "accuracy":
                item["status"] = "incorrect"  # a wrong kernel is wrong, not fast
        if extra:
            item["extra"] = extra
        out.append(item)
    return out


# -- files -> runs ----------------------------------------------------------------------------
def is_metrics_dict(data: Any) -> bool:
    """A per-operator ``--output-json`` file: a flat dict of tritonbench metric ids."""
    return (
        isinstance(data, dict)
        and bool(data)
        and all(isinstance(k, str) and k.startswith(PREFIX) for k in data)
    )


def is_nightly(data: Any) -> bool:
    """The nightly ``result.json``: ``{"name", "env", "metrics", ...}``."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("metrics"), dict)
        and ("env" in data or "name" in data)
    )


def _build(doc: dict[str, Any], path: str, tally: Tally) -> Run:
    try:
        return parse_run(doc)
    except ValueError as e:
        raise InputError(f"cannot convert to a run: {e}", path=path) from None


def folder_time(path: str | Path) -> datetime | None:
    """The time in tritonbench's output folder name (``run-20250814020312``), if any."""
    for part in reversed(Path(path).parts):
        if part.startswith("run-") and (t := parse_time(part[4:])) is not None:
            return t
    return None


def file_time(paths: list[Path], opts: ImportOptions, tally: Tally) -> datetime:
    """When files that record no time of their own were made: --date, the folder, or mtime."""
    if opts.started_at is not None:
        return opts.started_at
    if (t := folder_time(paths[0])) is not None:
        return t
    tally.warn("the file records no run time: used its modification time (or give --date)")
    return min(datetime.fromtimestamp(p.stat().st_mtime, UTC) for p in paths)


def per_op_run(
    data: dict[str, Any], text: str, path: str, opts: ImportOptions, tally: Tally
) -> Run:
    """One ``--output-json`` file (no environment: ``opts`` supplies machine and time)."""
    results = results_from_metrics(data, opts, tally)
    return plain_run([results], [text], path, opts, tally, file_time([Path(path)], opts, tally))


def plain_run(
    result_lists: list[list[dict[str, Any]]],
    texts: list[str],
    path: str,
    opts: ImportOptions,
    tally: Tally,
    started: datetime,
) -> Run:
    device = opts.device
    if device is None:
        # These files record no environment; calling them CPU (the Store's default without a
        # GPU model) would put GPU timings into CPU series.
        device = "unknown"
        tally.warn("the file records no device: stored as device 'unknown' (give --device)")
    given: tuple[Any, ...] = (
        opts.machine,
        opts.device,
        opts.started_at and opts.started_at.isoformat(),
    )
    if opts.dtype:  # only when given: the ids of files imported before --dtype existed hold
        given += (opts.dtype,)
    doc = {
        "format": FORMAT,
        "run": {
            "id": text_id("tritonbench", "\x00".join([*texts, repr(given)])),
            "started_at": started,
            "label": "tritonbench",
            "source": "tritonbench",
            "device": device,
        },
        "machine": {"name": opts.machine or "unknown"},
        "build": {"triton": {"version": "unknown"}},
        "results": [r for rs in result_lists for r in rs],
    }
    return _build(doc, path, tally)


def nightly_run(
    data: dict[str, Any], text: str, path: str, opts: ImportOptions, tally: Tally
) -> Run:
    """The nightly ``result.json``: environment, GitHub context and GPU state come with it."""
    env = obj(data.get("env"))
    github = obj(data.get("github"))
    metrics = data["metrics"]
    results = results_from_metrics(metrics, opts, tally)
    started = opts.started_at or parse_time(env.get("benchmark_date"))
    if started is None:
        started = file_time([Path(path)], opts, tally)
    gpu = _known(env.get("device"))
    device = opts.device or device_of_gpu(gpu)
    machine: dict[str, Any] = {
        "name": opts.machine
        or (gpu if device != "cpu" else None)
        or _known(github.get("RUNNER_TYPE"))
        or "unknown",
    }
    if device != "cpu" and gpu:
        machine["gpu_model"] = gpu
    if _known(env.get("cuda_version")):
        machine["toolkit"] = env["cuda_version"]
    for key, field_name in (("RUNNER_NAME", "runner_name"), ("RUNNER_TYPE", "runner_type")):
        if _known(github.get(key)):
            machine[field_name] = github[key]
    if isinstance(data.get("nvidia_gpu_states"), dict):
        machine["gpu_state"] = data["nvidia_gpu_states"]
    run: dict[str, Any] = {
        "id": text_id("tritonbench", text),
        "started_at": started,
        "label": data.get("name") or "nightly",
        "suite": data.get("name") or "nightly",
        "device": device,
        "source": "tritonbench",
        "env": env,
    }
    if github:
        run["github"] = github
    doc = {
        "format": FORMAT,
        "run": run,
        "machine": machine,
        "build": deps_from_env(env),
        "results": results,
    }
    return _build(doc, path, tally)


def _known(v: Any) -> str | None:
    return str(v) if v not in (None, "", "unknown") else None


def deps_from_env(env: Mapping[str, Any]) -> dict[str, Any]:
    """build.{triton,torch,tritonbench} from result.json's ``{repo}_{commit,branch,commit_time}``."""
    build: dict[str, Any] = {}
    for dep, key in (("triton", "triton"), ("torch", "pytorch"), ("tritonbench", "tritonbench")):
        commit = _known(env.get(f"{key}_commit"))
        version = _known(env.get(f"{key}_version")) or commit
        if not version:
            continue
        d = {
            "version": version,
            "commit": commit,
            "branch": _known(env.get(f"{key}_branch")),
            "commit_time": _known(env.get(f"{key}_commit_time")),
        }
        build[dep] = {k: v for k, v in d.items() if v}
    build.setdefault("triton", {"version": "unknown"})
    return build


def csv_metrics(text: str, path: str, opts: ImportOptions) -> tuple[dict[str, Any], str]:
    """The ``;``-separated table of ``--output``/``--csv`` as the metric ids JSON would hold.

    Returns (metrics, x label). The operator comes from ``opts.operator`` or the file name
    (``--output-dir`` names it ``{op}.csv``).
    """
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    if not rows or len(rows[0]) < 2:
        raise InputError("not a tritonbench CSV (expected a ';'-separated header)", path=path)
    header = rows[0]
    op = opts.operator or csv_operator(Path(path))
    benchmark = op if any(op.endswith("_" + m) for m in MODES) else f"{op}_{opts.mode or 'fwd'}"
    metrics: dict[str, Any] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise InputError(
                f"{len(row)} cells but the header has {len(header)}", path=path, line=n
            )
        x = row[0]
        for h, cell in zip(header[1:], row[1:], strict=True):
            provider, _, metric = h.partition("-")
            metrics[f"{PREFIX}{benchmark}[x_{x}-{provider}]_{metric}"] = cell if cell else None
    return metrics, header[0]


def csv_operator(path: Path) -> str:
    """The operator a CSV's name gives: ``--output-dir`` writes ``{op}.csv``; ``write_csv``
    writes ``op_{op}_XXXXXXXX.csv`` (a temporary-file name with 8 random characters)."""
    stem = path.stem
    m = re.fullmatch(r"op_(.+)_[a-z0-9_]{8}", stem)
    return m.group(1) if m else stem


def csv_run(text: str, path: str, opts: ImportOptions, tally: Tally) -> Run:
    metrics, label = csv_metrics(text, path, opts)
    names = opts.shape_names or label_names(label)
    local = ImportOptions(**{**opts.__dict__, "shape_names": names})
    results = results_from_metrics(metrics, local, tally)
    return plain_run([results], [text], path, opts, tally, file_time([Path(path)], opts, tally))


def label_names(label: str) -> tuple[str, ...] | None:
    """Dimension names from the CSV's x label, e.g. ``(M, N, K)``."""
    return tuple(tuple_items(label) or ()) or None


def folder_files(root: Path) -> Iterator[tuple[Path, list[Path]]]:
    """(folder, files) for each folder under ``root`` holding tritonbench output.

    A folder with a nightly ``result.json`` yields only that file (it merges the per-operator
    files beside it); otherwise its ``.json`` and ``.csv`` files form one run together.
    """
    for folder in sorted({p.parent for p in root.rglob("*") if p.is_file()} | {root}):
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".csv"))
        if files:
            yield folder, files
