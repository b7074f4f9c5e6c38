"""Blast radius and static metrics: the library functions behind ``tritonwatch blast`` and
``tritonwatch run --codegen``.

:func:`blast` compiles every spec for every target in two environments (cached, in parallel),
analyses and compares the results, and returns a :class:`BlastReport`; renderers in
``tritonwatch.report.blast`` format it and the Store keeps it. :func:`static_metrics` compiles the
current environment's specs and returns per kernel x spec x target metrics as rows a run can
record as series.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import UsageError
from .cache import CompileCache
from .diff import BlastSummary, KernelDiff, compare_all
from .envs import EnvInfo, probe, resolve_env
from .metrics import Compiled, analyze
from .normalize import STAGE_LABELS
from .runner import CompileOutcome, CompileProgress, compile_all
from .specs import CompileSpec, dtype_of, load_specs, matches, parse_targets


@dataclass(frozen=True)
class BlastReport:
    """Everything ``blast`` found: environments, targets, one row per kernel x target, summary."""

    uuid: str
    created_at: datetime
    env_a: EnvInfo
    env_b: EnvInfo
    targets: tuple[str, ...]
    rows: tuple[KernelDiff, ...]
    summary: BlastSummary
    stats: dict[str, Any] = field(default_factory=dict)
    partial: bool = False  # interrupted (Ctrl-C): rows not compiled are ``skipped``

    @property
    def changed_rows(self) -> list[KernelDiff]:
        return [r for r in self.rows if r.changed]

    def to_json(self, *, with_diffs: bool = False) -> dict[str, Any]:
        def env(e: EnvInfo) -> dict[str, Any]:
            return {
                "name": e.name,
                "python": e.python,
                "triton_version": e.triton_version,
                "triton_commit": e.triton_commit,
                "ptxas": e.ptxas_versions,
            }

        return {
            "format": "tritonwatch.blast/1",
            "uuid": self.uuid,
            "partial": self.partial,
            "created_at": self.created_at.isoformat(),
            "a": env(self.env_a),
            "b": env(self.env_b),
            "targets": list(self.targets),
            "summary": self.summary.to_json(),
            "stats": self.stats,
            "results": [r.to_json(with_diffs=with_diffs) for r in self.rows],
        }


def blast_from_json(doc: dict[str, Any]) -> BlastReport:
    """A :class:`BlastReport` back from :meth:`BlastReport.to_json` (as the Store keeps it), so
    stored reports render with the same code as fresh ones. Fields an older or hand-made document
    lacks take empty values; the JSON's stage labels (``TTGIR``) map back to stage keys."""
    stage_of = {label: key for key, label in STAGE_LABELS.items()}

    def env(d: dict[str, Any] | None, fallback: str) -> EnvInfo:
        d = d or {}
        return EnvInfo(
            name=str(d.get("name") or fallback),
            python=str(d.get("python") or d.get("name") or fallback),
            python_version="",
            triton_version=str(d.get("triton_version") or "?"),
            triton_commit=d.get("triton_commit"),
            triton_path="",
            build_hash="",
            tools={k: {"version": v} for k, v in (d.get("ptxas") or {}).items()},
        )

    def side(d: dict[str, Any] | None, row: dict[str, Any]) -> Compiled:
        d = d or {}
        return Compiled(
            kernel=str(row.get("kernel", "")),
            spec=str(row.get("spec", "")),
            target=str(row.get("target", "")),
            status=str(d.get("status") or ("error" if d.get("error") else "ok")),
            error=d.get("error"),
            compile_ms=d.get("compile_ms"),
            stage_hashes=dict(d.get("stage_hashes") or {}),
            metrics=dict(d.get("metrics") or {}),
            key_instructions=dict(d.get("key_instructions") or {}),
            tools=dict(d.get("tools") or {}),
        )

    def stage(label: Any) -> str | None:
        return None if not label else stage_of.get(str(label), str(label).lower())

    rows = []
    for r in doc.get("results") or []:
        if not isinstance(r, dict):
            continue
        a, b = side(r.get("a"), r), side(r.get("b"), r)
        deltas = {
            k: (int(v.get("a") or 0), int(v.get("b") or 0)) if isinstance(v, dict) else (0, int(v))
            for k, v in (r.get("opcode_deltas") or {}).items()
        }
        status = str(r.get("status") or "identical")
        rows.append(
            KernelDiff(
                kernel=str(r.get("kernel", "")),
                spec=str(r.get("spec", "")),
                target=str(r.get("target", "")),
                status="identical" if status == "same" else status,
                first_changed_stage=stage(r.get("first_changed_stage")),
                first_code_stage=stage(r.get("first_code_change", r.get("first_changed_stage"))),
                changed_stages=tuple(
                    s for s in (stage(x) for x in r.get("changed_stages") or []) if s
                ),
                a=a,
                b=b,
                opcode_deltas=deltas,
                keys_gained=tuple(r.get("key_instructions_gained") or ()),
                keys_lost=tuple(r.get("key_instructions_lost") or ()),
                diffs={stage(k) or k: v for k, v in (r.get("diffs") or {}).items()},
            )
        )
    summary = dict(doc.get("summary") or {})
    known = {f.name: f for f in dataclasses.fields(BlastSummary)}
    values: dict[str, Any] = {}
    for name, f in known.items():
        default: Any = {} if "dict" in str(f.type) else ("" if name == "headline" else 0)
        values[name] = summary.get(name, default)
    if not values["headline"]:
        values["headline"] = f"{values['changed']} of {values['total']} specialisations changed"
    created = doc.get("created_at")
    return BlastReport(
        uuid=str(doc.get("uuid") or ""),
        created_at=datetime.fromisoformat(created) if created else datetime.now(UTC),
        env_a=env(doc.get("a"), "A"),
        env_b=env(doc.get("b"), "B"),
        targets=tuple(doc.get("targets") or ()),
        rows=tuple(rows),
        summary=BlastSummary(**values),
        stats=dict(doc.get("stats") or {}),
        partial=bool(doc.get("partial")),
    )


#: What ``--fail-on`` accepts; ``registers>N`` takes a number of registers.
FAIL_ON = ("new-failures", "spills", "registers>N")
_REG = re.compile(r"registers>(\d+)")


def parse_fail_on(values: Sequence[str]) -> tuple[str, ...]:
    """Check ``--fail-on`` conditions (comma-separated or repeated); bad ones raise UsageError."""
    out = []
    for v in (p.strip() for text in values for p in text.split(",")):
        if not v:
            continue
        if v not in ("new-failures", "spills") and not _REG.fullmatch(v):
            raise UsageError(f"unknown --fail-on condition {v!r}; use {', '.join(FAIL_ON)}")
        out.append(v)
    return tuple(out)


def failing(report: BlastReport, conditions: Sequence[str]) -> list[str]:
    """Why ``report`` fails the ``--fail-on`` conditions, one sentence each (empty: it passes).

    ``new-failures``: a specialisation compiles in A but not in B. ``spills``: one spills more
    in B. ``registers>N``: one uses more than N registers more in B.
    """
    out = []
    for cond in parse_fail_on(conditions):
        if cond == "new-failures":
            rows = [r for r in report.rows if r.status == "failed_b"]
            what = ("fails", "fail"), "to compile only in B"
        elif cond == "spills":
            rows = [
                r
                for r in report.rows
                if r.status == "changed"
                and (r.metric("spills")[1] or 0) > (r.metric("spills")[0] or 0)
            ]
            what = ("spills", "spill"), "more in B"
        else:
            limit = int(cond.split(">", 1)[1])
            rows = []
            for r in report.rows:
                a, b = r.metric("registers")
                if r.status == "changed" and a is not None and b is not None and b - a > limit:
                    rows.append(r)
            what = ("uses", "use"), f"more than {limit} registers more in B"
        if rows:
            names = ", ".join(f"{r.kernel}/{r.spec} on {r.target}" for r in rows[:3])
            more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
            (one, many), rest = what
            out.append(
                f"{len(rows)} specialisation{'s' if len(rows) != 1 else ''} "
                f"{one if len(rows) == 1 else many} {rest} ({names}{more}; --fail-on {cond})"
            )
    return out


def _targets(targets: Sequence[str] | str | None) -> list[str]:
    if targets is None:
        return parse_targets(settings.get("targets"))
    if isinstance(targets, str):
        return parse_targets(targets)
    return parse_targets(",".join(targets))


def _specs(kernel_files: Sequence[str | Path] | None, pattern: str | None) -> list[CompileSpec]:
    every = load_specs(kernel_files or None)
    specs = [s for s in every if matches(s, pattern)] if pattern else every
    if not specs:
        where = ", ".join(str(f) for f in kernel_files) if kernel_files else "the suite"
        if not pattern or not every:
            raise UsageError(f"no kernel specs in {where}")
        kernels = sorted({s.kernel for s in every})
        names = sorted({s.name for s in every})
        shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
        raise UsageError(
            f"no kernel specs match {pattern!r} in {where}; -k matches a kernel "
            f"({', '.join(kernels[:12])}{' ...' if len(kernels) > 12 else ''}) or a spec "
            f"({shown}), as a substring or a glob"
        )
    return specs


def _analyze(
    outcome: CompileOutcome, index: tuple[int, int, str], spec: CompileSpec, cache: CompileCache
) -> Compiled:
    target = index[2]
    if index in outcome.skipped:
        return Compiled(
            kernel=spec.kernel,
            spec=spec.name,
            target=target,
            status="skipped",
            error=outcome.skipped[index],
        )
    akey = cache.analysis_key(outcome.keys[index])
    fresh = outcome.results.get(index)
    if fresh is None or not fresh.get("transient"):
        hit = cache.get(akey)
        if hit is not None and hit.get("kernel") == spec.kernel and hit.get("spec") == spec.name:
            return Compiled(**hit)
    raw = outcome.raw(index) or {"status": "error", "error": "no result"}
    c = analyze(raw, kernel=spec.kernel, spec=spec.name, target=target)
    if raw.get("status") == "ok" and not raw.get("transient"):
        cache.put(akey, dataclasses.asdict(c))
    return c


def blast(
    a: str | EnvInfo,
    b: str | EnvInfo,
    *,
    targets: Sequence[str] | str | None = None,
    jobs: int | None = None,
    pattern: str | None = None,
    kernel_files: Sequence[str | Path] | None = None,
    progress: CompileProgress | None = None,
    cache: CompileCache | None = None,
    no_cache: bool = False,
) -> BlastReport:
    """Compile every spec for every target with environments ``a`` and ``b`` and compare.

    ``a``/``b`` are environment names, venv folders, python paths or ``current``;
    ``kernel_files`` default to the suite's kernel files (plus entry-point ones); ``pattern`` is
    ``-k``; ``no_cache`` recompiles everything (fresh results still refresh the cache). Specs that
    fail to compile are rows with their error; the rest go on.
    """
    env_a = a if isinstance(a, EnvInfo) else resolve_env(a)
    env_b = b if isinstance(b, EnvInfo) else resolve_env(b)
    tlist = _targets(targets)
    specs = _specs(kernel_files, pattern)
    label = f"blast {env_a.triton_version} vs {env_b.triton_version}"
    cache = cache if cache is not None else CompileCache(read=not no_cache)
    outcome = compile_all(
        [env_a, env_b], specs, tlist, jobs=jobs, cache=cache, progress=progress, label=label
    )
    pairs = []
    for si, spec in enumerate(specs):
        for t in tlist:
            pairs.append(
                (
                    _analyze(outcome, (0, si, t), spec, cache),
                    _analyze(outcome, (1, si, t), spec, cache),
                )
            )
    rows, summary = compare_all(pairs)
    if outcome.interrupted:
        left = sum(1 for why in outcome.skipped.values() if "interrupted" in why)
        done = outcome.n_tasks - left
        summary = dataclasses.replace(
            summary,
            headline=f"Interrupted: a partial report ({done} of {outcome.n_tasks} compiles "
            f"done; the rest are skipped rows). {summary.headline}",
        )
    stats = {
        "tasks": outcome.n_tasks,
        "cached": outcome.n_cached,
        "compiled": outcome.n_compiled,
        "shared": outcome.n_shared,
        "wall_s": round(outcome.wall_s, 3),
        "specs": len(specs),
        "jobs": jobs if jobs is not None else settings.get("jobs"),
    }
    return BlastReport(
        uuid=str(uuid.uuid4()),
        created_at=datetime.now(UTC),
        env_a=env_a,
        env_b=env_b,
        targets=tuple(tlist),
        rows=tuple(rows),
        summary=summary,
        stats=stats,
        partial=outcome.interrupted,
    )


# -- static metrics for `tritonwatch run --codegen` ----------------------------------------------
#: Metrics recorded as series, with their units.
SERIES_METRICS = {
    "registers": "count",
    "spills": "bytes",
    "shared": "bytes",
    "instructions": "count",
}


@dataclass(frozen=True)
class StaticRow:
    """Static metrics of one kernel x spec x target in one environment."""

    kernel: str
    spec: str
    target: str
    dtype: str
    status: str  # ok | error | unavailable
    error: str | None
    metrics: dict[str, float]
    compiled: Compiled


@dataclass(frozen=True)
class StaticMetrics:
    env: EnvInfo
    targets: tuple[str, ...]
    rows: tuple[StaticRow, ...]

    def results(self) -> list[dict[str, Any]]:
        """``tritonwatch.run/1`` result dicts: one series per kernel x spec x target x metric.

        operator = kernel, provider = ``triton``, variant = spec name, shape =
        ``{"target": "sm90"}``, dtype of the first pointer argument, mode ``codegen``, metric
        ``registers``/``spills``/``shared_memory``/``instructions``. Failed compiles become one
        ``error`` result (metric ``registers``) carrying the compiler's error.
        """
        out: list[dict[str, Any]] = []
        for r in self.rows:
            base = {
                "operator": r.kernel,
                "provider": "triton",
                "variant": r.spec,
                "shape": {"target": r.target},
                "dtype": r.dtype,
                "mode": "codegen",
            }
            if r.status != "ok":
                if r.status == "error":
                    out.append(
                        {
                            **base,
                            "metric": "registers",
                            "unit": "count",
                            "status": "error",
                            "error": (r.error or "")[:20000],
                        }
                    )
                continue
            for name, unit in SERIES_METRICS.items():
                if name in r.metrics:
                    metric = "shared_memory" if name == "shared" else name
                    out.append(
                        {
                            **base,
                            "metric": metric,
                            "unit": unit,
                            "better": "lower",
                            "value": float(r.metrics[name]),
                        }
                    )
        return out


def select_specs(patterns: Sequence[str]) -> tuple[list[CompileSpec], list[str]]:
    """The suite's specs that any of ``patterns`` (``run -k``, the part before ``[``) names,
    and the patterns that named none."""
    every = load_specs()
    names = [p.split("[", 1)[0] for p in patterns if p.split("[", 1)[0]]
    chosen = [s for s in every if any(matches(s, n) for n in names)]
    unmatched = [n for n in names if not any(matches(s, n) for s in every)]
    return chosen, unmatched


def static_metrics(
    *,
    python: str | None = None,
    targets: Sequence[str] | str | None = None,
    kernel_files: Sequence[str | Path] | None = None,
    pattern: str | None = None,
    jobs: int | None = None,
    progress: CompileProgress | None = None,
    cache: CompileCache | None = None,
    no_cache: bool = False,
    specs: Sequence[CompileSpec] | None = None,
) -> StaticMetrics:
    """Compile the suite's specs (or ``specs``, already chosen) with one environment (default:
    this Python) for ``targets`` (default: the ``targets`` setting); their static metrics."""
    env = probe(python or sys.executable, name="current" if python is None else python)
    tlist = _targets(targets)
    specs = list(specs) if specs is not None else _specs(kernel_files, pattern)
    cache = cache if cache is not None else CompileCache(read=not no_cache)
    outcome = compile_all(
        [env],
        specs,
        tlist,
        jobs=jobs,
        cache=cache,
        progress=progress,
        label=f"codegen metrics (triton {env.triton_version})",
    )
    rows = []
    for si, spec in enumerate(specs):
        for t in tlist:
            if (0, si, t) not in outcome and (0, si, t) not in outcome.skipped:
                continue
            c = _analyze(outcome, (0, si, t), spec, cache)
            rows.append(
                StaticRow(
                    kernel=spec.kernel,
                    spec=spec.name,
                    target=t,
                    dtype=dtype_of(spec),
                    status=c.status,
                    error=c.error,
                    metrics=dict(c.metrics),
                    compiled=c,
                )
            )
    return StaticMetrics(env=env, targets=tuple(tlist), rows=tuple(rows))
