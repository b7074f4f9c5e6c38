"""PyTorch HUD ``oss_ci_benchmark_v3`` records in (pytorch/test-infra); :mod:`.hud_export` writes
them out.

The layout is the ClickHouse table ``clickhouse_db_schema/benchmark.oss_ci_benchmark_v3/
schema.sql``; ``.github/scripts/upload_benchmark_results.py`` uploads records merged as
``{**ci_metadata, **record}`` (so a field a file sets overrides the CI's, and a record with
``workflow_id`` or ``job_id`` 0 is skipped), and requires only ``metric``.

Importing groups records into runs as they stream past (bounded memory) and keeps every HUD field
(run-level ones in ``run.hud``, per-record ones in the result's ``extra.hud``), so an export gives
HUD back the records it came from; records tritonwatch exported (``model.type = "tritonwatch"``)
come back as the runs they were.
"""

from __future__ import annotations

import json
import math
import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ..errors import InputError
from ..runformat import FORMAT, Run, parse_run
from .metrics import lookup
from .options import DEVICES, ImportOptions, Tally, content_id, device_of_gpu, obj, parse_time
from .tritonbench_ids import BENCHMARK_PROVIDER, shape_of

SCHEMA_VERSION = "v3"
# Top-level columns (schema.sql) that describe the upload, not one measurement.
RUN_FIELDS = (
    "timestamp",
    "schema_version",
    "name",
    "repo",
    "head_branch",
    "head_sha",
    "workflow_id",
    "run_attempt",
    "job_id",
    "servicelab_experiment_id",
    "servicelab_trial_id",
    "runners",
    "dependencies",
)
INT_FIELDS = (
    "timestamp",
    "workflow_id",
    "run_attempt",
    "job_id",
    "servicelab_experiment_id",
    "servicelab_trial_id",
)
_OPEN_GROUPS = 64  # runs being assembled at once while streaming; a HUD file keeps a run together
_MAX_RUN = 20_000  # records held for one run before it is written as a run of its own
_FAILED_ZERO = (
    "0.0 in HUD: tritonbench's converter writes 0.0 for a failed or missing value "
    "(.ci/test_infra/oss_ci_benchmark_v3.py)"
)


def is_record(obj: Any) -> bool:
    """What the uploader keeps: a dict with a ``metric``."""
    return isinstance(obj, dict) and "metric" in obj


def _ints(r: dict[str, Any]) -> dict[str, Any]:
    """ClickHouse writes 64-bit integers quoted ("16950000001"): read them as numbers."""
    for k in INT_FIELDS:
        v = r.get(k)
        if isinstance(v, str) and v.strip().isdigit():
            r[k] = int(v)
    return r


def _loads(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return None
    return v


def _own(r: dict[str, Any]) -> dict[str, Any] | None:
    """tritonwatch's own run/1 fields in a record it exported, or None."""
    bench = r.get("benchmark")
    if not isinstance(bench, dict):
        return None
    extra = bench.get("extra_info")
    if not isinstance(extra, dict) or "tritonwatch" not in extra:
        return None
    tw = _loads(extra["tritonwatch"])
    return tw if isinstance(tw, dict) and isinstance(tw.get("run"), dict) else None


def _runner(r: dict[str, Any]) -> dict[str, Any]:
    runners = r.get("runners")
    if isinstance(runners, list) and runners and isinstance(runners[0], dict):
        return runners[0]
    return {}


# The upload fields that group records into a run: RUN_FIELDS up to the job.
_HEAD_FIELDS = RUN_FIELDS[: RUN_FIELDS.index("job_id") + 1]
_HEAD = operator.itemgetter(*_HEAD_FIELDS)


def _hashable(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float)) else repr(v)


def _group_key(r: dict[str, Any]) -> tuple[Any, ...]:
    """Records of one upload share this: time, commit, workflow, job, runner, benchmark."""
    own = _own(r)
    if own is not None:
        return ("tritonwatch", str(own["run"].get("id")))
    ru = _runner(r)
    bench = r.get("benchmark")
    bench = bench if isinstance(bench, dict) else {}
    extra = bench.get("extra_info")
    device = extra.get("device") if isinstance(extra, dict) else None
    try:
        head = _HEAD(r)  # one call for the usual record, which has every field
    except KeyError:
        head = tuple(map(r.get, _HEAD_FIELDS))
    key = (
        "hud",
        *head,
        ru.get("name"),
        ru.get("type"),
        ru.get("gpu_info"),
        bench.get("name"),
        device,
    )
    try:
        hash(key)
    except TypeError:  # a field that should be text is an object: compare its text
        key = tuple(map(_hashable, key))
    return key


# -- reading --------------------------------------------------------------------------------
def read_runs(
    records: Iterable[tuple[int | None, Any]],
    path: str,
    opts: ImportOptions,
    tally: Tally,
    fallback_time: datetime,
) -> Iterator[Run]:
    """Runs from (line, record) pairs, grouped as they stream past.

    Records of one upload (same time, commit, workflow, job and runner) form one run; its id is
    derived from their content, so two nights never share one and importing twice adds nothing.
    """
    for doc in read_docs(records, path, opts, tally, fallback_time):
        yield build_run(doc, path)


def read_docs(
    records: Iterable[tuple[int | None, Any]],
    path: str,
    opts: ImportOptions,
    tally: Tally,
    fallback_time: datetime,
) -> Iterator[dict[str, Any]]:
    """:func:`read_runs` before validation: each run as the run/1 document it validates, which a
    reader process hands to the importing one (:mod:`.background`)."""
    open_groups: OrderedDict[tuple[Any, ...], list[dict[str, Any]]] = OrderedDict()
    mappings = _Mappings(opts)
    for line, rec in records:
        tally.items += 1
        if not is_record(rec):
            tally.skip("not a HUD record (no 'metric'; the uploader skips it too)")
            continue
        if not isinstance(rec["metric"], dict):
            raise InputError("'metric' must be an object", path=path, line=line)
        key = _group_key(_ints(rec))
        group = open_groups.get(key)
        if group is None:
            if len(open_groups) >= _OPEN_GROUPS:
                old_key, old = open_groups.popitem(last=False)
                yield _run(old_key, old, path, mappings, tally, fallback_time)
            group = open_groups[key] = []
        group.append(rec)
        if len(group) >= _MAX_RUN:  # records that share no run fields at all: split them
            del open_groups[key]
            yield _run(key, group, path, mappings, tally, fallback_time)
    for key, recs in open_groups.items():
        yield _run(key, recs, path, mappings, tally, fallback_time)


def build_run(doc: dict[str, Any], path: str) -> Run:
    """The run of a document :func:`read_docs` made; InputError naming ``path`` if invalid."""
    try:
        return parse_run(doc)
    except ValueError as e:
        raise InputError(f"cannot convert HUD records to a run: {e}", path=path) from None


def _run(
    key: tuple[Any, ...],
    recs: list[dict[str, Any]],
    path: str,
    mappings: _Mappings,
    tally: Tally,
    fallback_time: datetime,
) -> dict[str, Any]:
    if key[0] == "tritonwatch":
        return _own_run(recs, path, tally)
    first = recs[0]
    top = {k: first[k] for k in RUN_FIELDS if k in first}
    started = parse_time(first.get("timestamp"))
    if started is None:
        tally.warn("records without a timestamp: used the file's modification time")
        started = fallback_time
    bench = obj(first.get("benchmark"))
    machine, device = _machine(first, mappings.opts)
    branch = str(first.get("head_branch") or "").removeprefix("refs/heads/")
    run: dict[str, Any] = {
        "id": "",  # from every record's fingerprint, below
        "started_at": started,
        "source": "hud",
        "device": device,
    }
    if branch:
        run["label"] = branch
    if bench.get("name"):
        run["suite"] = str(bench["name"])
    results = []
    parts: dict[bytes | str, int] = {}
    part_list: list[dict[str, Any]] = []
    fingerprints = []
    for r in recs:
        item, fingerprint = _result(r, mappings, tally, parts, part_list)
        fingerprints.append(fingerprint)
        if item is not None:
            results.append(item)
    run["id"] = content_id("hud", list(key), fingerprints)
    run["hud"] = {"record": top, "parts": part_list}
    tally.results += len(results)
    doc = {
        "format": FORMAT,
        "run": run,
        "machine": machine,
        "build": _build_info(first),
        "results": results,
    }
    return doc


def _machine(r: dict[str, Any], opts: ImportOptions) -> tuple[dict[str, Any], str]:
    """Machine and device from the first runner.

    test-infra's runners (gather_runners_info.py) name the device kind (``cuda``) and put the
    GPU in ``type``; tritonbench's converter names the host and puts the GPU in ``gpu_info``.
    The machine is named by its GPU, so ephemeral runner hosts of one kind form one machine.
    """
    ru = _runner(r)
    name, rtype, gpu_info = (_text(ru.get(k)) for k in ("name", "type", "gpu_info"))
    bench = obj(r.get("benchmark"))
    bench_device = _text(obj(bench.get("extra_info")).get("device"))
    if name and name.lower() in DEVICES:
        device = name.lower()
        gpu = gpu_info or rtype
        machine_name = gpu or name
    else:
        gpu = gpu_info
        device = device_of_gpu(gpu) if gpu else (bench_device if bench_device in DEVICES else "cpu")
        machine_name = gpu or name or rtype or bench_device or "unknown"
    if device == "cpu":
        gpu = None
    if opts.device:
        device = opts.device
    machine: dict[str, Any] = {"name": opts.machine or machine_name}
    if gpu:
        machine["gpu_model"] = gpu
    if isinstance(ru.get("gpu_count"), int) and ru["gpu_count"] > 0:
        machine["gpu_count"] = ru["gpu_count"]
    extra = obj(ru.get("extra_info"))
    if extra.get("cuda_version"):
        machine["toolkit"] = str(extra["cuda_version"])
    if name and name.lower() not in DEVICES:
        machine["runner_name"] = name
    if extra.get("hostname"):
        machine["runner_name"] = str(extra["hostname"])
    if rtype:
        machine["runner_type"] = rtype
    return machine, device


def _text(v: Any) -> str | None:
    return str(v) if v not in (None, "") else None


def _build_info(r: dict[str, Any]) -> dict[str, Any]:
    """build from ``dependencies``; Triton only from a ``triton`` dependency.

    Without one, ``head_sha`` is recorded as the commit of the repository it belongs to
    (``repo``, default ``pytorch/pytorch`` as in the table), never as a Triton build.
    """
    build: dict[str, Any] = {}
    deps = obj(r.get("dependencies"))
    for dep_name, dep in deps.items():
        if not isinstance(dep, dict):
            continue
        version = _text(dep.get("version")) or _text(dep.get("sha"))
        if not version:
            continue
        entry = {
            "version": version,
            "commit": _text(dep.get("sha")),
            "branch": _text(dep.get("branch")),
            "repo": _text(dep.get("repo")),
        }
        extra = obj(dep.get("extra_info"))
        if extra.get("commit_time"):
            entry["commit_time"] = str(extra["commit_time"])
        build["torch" if dep_name == "pytorch" else str(dep_name)] = {
            k: v for k, v in entry.items() if v
        }
    sha = _text(r.get("head_sha"))
    repo = _text(r.get("repo")) or "pytorch/pytorch"
    owner = {"pytorch/pytorch": "torch", "triton-lang/triton": "triton"}.get(
        repo, repo.rsplit("/", 1)[-1]
    )
    if sha and owner not in build:
        build[owner] = {"version": sha, "commit": sha, "repo": repo}
    build.setdefault("triton", {"version": "unknown"})
    return build


def _values(raw: Any) -> list[float]:
    out = []
    for v in raw or []:
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            out.append(x)
    return out


@dataclass(frozen=True)
class _Mapped:
    """What a record's fields other than its values map to: the same for every night of a
    history, so a bulk import works it out once per distinct record (:class:`_Mappings`)."""

    item: dict[str, Any]  # the result without its value, status or extra
    part: dict[str, Any]  # the record's share of the run's table of parts
    ref: bytes | str  # the part's identity (see _ref)
    fp_head: str  # the fingerprint is fp_head + repr(benchmark_values) + fp_tail
    fp_tail: str
    input_shape: Any  # _NO_SHAPE when metric.extra_info has no input_shape
    is_pass: bool
    zero_is_failure: bool


_NO_SHAPE = object()


class _Mappings:
    """A bulk import's records, mapped once per distinct content (everything but the values).

    A year of HUD history repeats one night's few hundred records with new values; the mapping
    (names, units, shapes, the part table's entry and its JSON) is most of an import's work.
    The cache is keyed by the record's own JSON and emptied when full, so memory stays bounded.
    """

    SIZE = 2_000  # a night of HUD history has hundreds; 2,000 big tritonbench records hold ~20 MB

    def __init__(self, opts: ImportOptions) -> None:
        self.opts = opts
        self.known: dict[bytes, _Mapped] = {}

    def of(self, r: dict[str, Any], metric: dict[str, Any]) -> _Mapped:
        part = _part(r, metric)
        try:
            key = orjson.dumps(part)
        except TypeError:  # an integer past 64 bits: map it on its own
            return _mapped(r, metric, part, self.opts)
        found = self.known.get(key)
        if found is None:
            if len(self.known) >= self.SIZE:
                self.known.clear()
            found = self.known[key] = _mapped(r, metric, part, self.opts)
        return found


def _part(r: dict[str, Any], metric: dict[str, Any]) -> dict[str, Any]:
    """The record less its run fields and its values: what :class:`_Mappings` is keyed by."""
    part: dict[str, Any] = {k: r[k] for k in ("benchmark", "model", "inputs") if k in r}
    part["metric"] = {k: v for k, v in metric.items() if k != "benchmark_values"}
    return part


def _mapped(
    r: dict[str, Any], metric: dict[str, Any], part: dict[str, Any], opts: ImportOptions
) -> _Mapped:
    bench = r.get("benchmark")
    if not isinstance(bench, dict):
        bench = _NONE
    model = r.get("model")
    if not isinstance(model, dict):
        model = _NONE
    mx = metric.get("extra_info")
    if not isinstance(mx, dict):
        mx = _NONE
    raw_name = metric.get("name")
    model_name, backend, model_type = model.get("name"), model.get("backend"), model.get("type")
    mode, dtype, input_shape = bench.get("mode"), bench.get("dtype"), mx.get("input_shape")
    head = repr((raw_name, None))[:-5]  # "(name, "
    tail = repr((None, model_name, backend, model_type, mode, dtype, input_shape))[5:]
    name = _text(raw_name) or "unknown"
    op = _text(model_name) or _text(bench.get("name")) or "unknown"
    tritonbench_like = str(model_type or "").startswith("tritonbench")
    shape: dict[str, Any] = {}
    if input_shape not in (None, ""):
        text = str(input_shape)
        shape = shape_of(op, text, opts.shape_names) if tritonbench_like else {"input": text}
    info = lookup(name)
    is_pass = info is not None and info.kind == "pass"
    item: dict[str, Any] = {
        "operator": op,
        "provider": _text(backend) or (BENCHMARK_PROVIDER if is_pass else "default"),
        "shape": shape,
        "dtype": _text(dtype) or "unknown",
        "mode": _text(mode) or "fwd",
        "metric": name,
        "unit": _text(mx.get("unit")) or (info.unit if info is not None else ""),
    }
    # The run's table of parts keeps the record less its values and its input_shape (each
    # result keeps its own), so records that differ only in those share one part.
    if "input_shape" in mx:
        part = {**part, "metric": {**part["metric"]}}
        part["metric"]["extra_info"] = {k: v for k, v in mx.items() if k != "input_shape"}
    return _Mapped(
        item=item,
        part=part,
        ref=_ref(part),
        fp_head=head,
        fp_tail=tail,
        input_shape=input_shape if "input_shape" in mx else _NO_SHAPE,
        is_pass=is_pass,
        zero_is_failure=info is not None and info.zero_is_failure,
    )


def _result(
    r: dict[str, Any],
    mappings: _Mappings,
    tally: Tally,
    parts: dict[bytes | str, int],
    part_list: list[dict[str, Any]],
) -> tuple[dict[str, Any] | None, str]:
    """The record's result (None when it has no value) and its fingerprint.

    The fingerprint tells one record's measurement from another's, for the run's content id:
    cheaper than hashing the whole record, and the same however the file was laid out, so a
    record exported and re-imported keeps its run id.
    """
    metric = r["metric"]
    raw_values = metric.get("benchmark_values")
    m = mappings.of(r, metric)
    fingerprint = m.fp_head + repr(raw_values) + m.fp_tail
    values = _values(raw_values)
    if not values:
        tally.skip("no benchmark_values")
        return None, fingerprint
    failed: str | None = None
    if m.is_pass:
        if values[0] != 1.0:
            failed = f"the benchmark did not pass (pass = {values[0]:g})"
    elif m.zero_is_failure and all(v == 0.0 for v in values):
        failed = _FAILED_ZERO
    index = parts.get(m.ref)
    if index is None:
        index = parts[m.ref] = len(parts)
        part_list.append(m.part)
    hud: dict[str, Any] = (
        {"part": index}
        if m.input_shape is _NO_SHAPE
        else {"input_shape": m.input_shape, "part": index}
    )
    item = dict(m.item)
    if failed is not None:
        hud["benchmark_values"] = raw_values
        item.update(status="error", error=failed)
    elif len(values) == 1:
        item["value"] = values[0]
    else:
        item["samples"] = values
    item["extra"] = {"hud": hud}
    return item, fingerprint


_NONE: dict[str, Any] = {}  # a section the record lacks (read, never written)


def _ref(part: dict[str, Any]) -> bytes | str:
    """A part's identity among a run's parts: its JSON (key order and 1 vs 1.0 count, as in
    ``repr``), which orjson writes ten times faster than ``repr``; ``repr`` where it cannot."""
    try:
        return orjson.dumps(part)
    except TypeError:  # an integer past 64 bits
        return repr(part)


def _own_run(recs: list[dict[str, Any]], path: str, tally: Tally) -> dict[str, Any]:
    tw = _own(recs[0]) or {}
    results = []
    for r in recs:
        mx = r["metric"].get("extra_info") or {}
        core = _loads(mx.get("tritonwatch_result"))
        if not isinstance(core, dict):
            raise InputError("a tritonwatch HUD record without its tritonwatch_result", path=path)
        item = dict(core)
        values = r["metric"].get("benchmark_values") or []
        if "value" in mx:
            item["value"] = float(mx["value"])
        if values and str(mx.get("has_samples", "true")).lower() == "true":
            item["samples"] = [float(v) for v in values]
        results.append(item)
    tally.results += len(results)
    doc = {
        "format": FORMAT,
        "run": tw["run"],
        "machine": tw.get("machine") or {},
        "build": tw.get("build") or {},
        "results": results,
    }
    return doc
