"""What each dashboard page shows, as plain objects: the HTML pages and the JSON API share them.

Nothing here renders: ``views.py`` turns these objects into HTML, ``api.py`` into JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import NotFoundError, UsageError
from ..naming import shape_sort_key, shape_text, version_text
from ..store import Store
from ..store.alerts import OPEN_ALERT_STATUSES, severity_class
from ..store.overview import HeatCell
from ..store.rows import RunSummary
from ..store.series import SERIES_FIELDS, SeriesAlert, SeriesRef

MAX_TRACES = 24
NORMS = ("none", "first", "provider")
AUTO_NORM_OVER = 6  # more series than this share one axis only when each is relative to its start
CATALOG_MAX = 5000  # series listed below the chart (200 a page); beyond it the count says "more"
CATALOG_PAGE = 200
SCALES = ("linear", "log")


# -- overview ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MachineLatest:
    newest: RunSummary
    previous: RunSummary | None


@dataclass(frozen=True)
class Heatmap:
    operators: list[str]
    columns: list[str]  # "dtype @ machine"
    z: list[list[float | None]]  # percent change, > 0 worse
    n: list[list[int]]
    links: list[list[dict[str, str] | None]]  # series explorer filters per cell


@dataclass(frozen=True)
class Overview:
    latest: list[MachineLatest]
    open_alerts: dict[str, list[Any]]  # severity -> AlertRow, worst first
    heatmap: Heatmap


def build_heatmap(cells: list[HeatCell]) -> Heatmap:
    ops = sorted({c.operator for c in cells})
    cols = sorted({(c.dtype, c.machine) for c in cells}, key=lambda x: (x[1], x[0]))
    z: list[list[float | None]] = [[None] * len(cols) for _ in ops]
    n = [[0] * len(cols) for _ in ops]
    links: list[list[dict[str, str] | None]] = [[None] * len(cols) for _ in ops]
    for c in cells:
        i, j = ops.index(c.operator), cols.index((c.dtype, c.machine))
        z[i][j] = round((c.change - 1) * 100, 3)
        n[i][j] = c.n
        links[i][j] = {"operator": c.operator, "dtype": c.dtype, "machine": c.machine}
    return Heatmap(operators=ops, columns=[f"{d} @ {m}" for d, m in cols], z=z, n=n, links=links)


def overview(store: Store) -> Overview:
    latest = [
        MachineLatest(newest=r[0], previous=r[1] if len(r) > 1 else None)
        for r in store.overview.latest_runs(2).values()
    ]
    latest.sort(key=lambda m: m.newest.started_at, reverse=True)
    groups: dict[str, list[Any]] = {"critical": [], "major": [], "minor": []}
    for a in store.alerts.find(status=OPEN_ALERT_STATUSES, limit=1000):
        groups[severity_class(a.ratio)].append(a)
    for v in groups.values():
        v.sort(key=lambda a: -abs(math.log(a.ratio)) if a.ratio and a.ratio > 0 else 0)
    return Overview(
        latest=latest,
        open_alerts=groups,
        heatmap=build_heatmap(store.overview.heatmap()),
    )


# -- series explorer ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesFields:
    """The query parameters that pick series by exact value; a FastAPI dependency
    (``Annotated[SeriesFields, Depends()]``) shared by every endpoint that filters series."""

    operator: str | None = None
    provider: str | None = None
    variant: str | None = None
    shape: str | None = None
    dtype: str | None = None
    mode: str | None = None
    metric: str | None = None
    machine: str | None = None

    def fields(self) -> dict[str, str | None]:
        """The series fields alone (``machine`` is not a series field)."""
        return {f: getattr(self, f) for f in SERIES_FIELDS}


@dataclass(frozen=True)
class SeriesFilters(SeriesFields):
    """A series explorer request: which series, and how to draw them."""

    norm: str = "none"  # "auto": relative to the first point when many series are drawn
    base: str | None = None  # the baseline provider when norm == "provider"
    limit: int = 365
    scale: str = "linear"  # the y axis: linear or log
    offset: int = 0  # the first series listed in the table of matching series

    @classmethod
    def of(
        cls,
        sf: SeriesFields,
        *,
        norm: str,
        base: str | None,
        limit: int,
        scale: str = "linear",
        offset: int = 0,
    ) -> SeriesFilters:
        return cls(
            **sf.fields(),
            machine=sf.machine,
            norm=norm,
            base=base,
            limit=limit,
            scale=scale,
            offset=offset,
        )

    def query(self) -> dict[str, str]:
        out = {f: v for f, v in {**self.fields(), "machine": self.machine}.items() if v}
        if self.norm not in ("none", "auto"):
            out["norm"] = self.norm
        if self.base:
            out["base"] = self.base
        if self.scale != "linear":
            out["scale"] = self.scale
        return out


@dataclass(frozen=True)
class Trace:
    ref: SeriesRef
    label: str
    points: list[dict[str, Any]]
    normalised: bool = False


@dataclass(frozen=True)
class SeriesView:
    filters: SeriesFilters
    catalog: list[SeriesRef]
    traces: list[Trace]
    alerts: list[SeriesAlert]
    too_many: bool
    unit: str
    pct_peak_available: bool
    facets: dict[str, list[str]] = field(default_factory=dict)
    n_matching: int = 0  # series that match (exact up to CATALOG_MAX)
    more_than: bool = False  # more than CATALOG_MAX match
    auto_norm: bool = False  # normalised because many series are drawn (the URL did not ask)
    no_baseline: bool = False  # norm=provider, and the baseline has no result in any drawn run


def _label(ref: SeriesRef, varying: list[str]) -> str:
    parts = []
    for f in varying:
        v = getattr(ref, f)
        parts.append(shape_text(v) if f == "shape" else str(v))
    return " | ".join(parts) or f"{ref.operator} {ref.provider}"


def _points(store: Store, ref: SeriesRef, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "t": p.t,
            "value": p.value,
            "ci_low": p.ci_low,
            "ci_high": p.ci_high,
            "n": p.n,
            "run": p.run_uuid,
            "label": p.label,
            "build": version_text(p.triton_version, p.triton_commit),
            "commit": p.triton_commit,
        }
        for p in store.series.points(ref.series_id, ref.machine_id, limit=limit)
    ]


def series_view(store: Store, f: SeriesFilters, *, with_facets: bool = True) -> SeriesView:
    if f.norm not in (*NORMS, "auto"):
        raise UsageError(f"unknown normalisation {f.norm!r}; use one of {', '.join(NORMS)}")
    if f.scale not in SCALES:
        raise UsageError(f"unknown scale {f.scale!r}; use one of {', '.join(SCALES)}")
    if f.norm == "provider" and not f.base:
        raise UsageError("norm=provider needs base=PROVIDER, the provider to divide by")
    if not 1 <= f.limit <= 5000:
        raise UsageError("limit must be between 1 and 5000 points")
    catalog = store.series.catalog(limit=CATALOG_MAX + 1, offset=0, machine=f.machine, **f.fields())
    more_than = len(catalog) > CATALOG_MAX
    catalog = sorted(catalog[:CATALOG_MAX], key=series_order)
    pct = (
        bool(
            store.series.catalog(
                limit=1, offset=0, machine=f.machine, **{**f.fields(), "metric": "pct_peak"}
            )
        )
        if f.metric != "pct_peak"
        else False
    )
    facets = store.series.facets() if with_facets else {}
    selected = catalog if f.norm != "provider" else [c for c in catalog if c.provider != f.base]
    too_many = len(selected) > MAX_TRACES or more_than
    auto_norm = False
    if f.norm == "auto":
        auto_norm = len(selected) > AUTO_NORM_OVER
        f = replace(f, norm="first" if auto_norm else "none")
    traces: list[Trace] = []
    alerts: list[SeriesAlert] = []
    unit = ""
    if selected and not too_many:
        varying = [
            k for k in (*SERIES_FIELDS, "machine") if len({getattr(c, k) for c in selected}) > 1
        ]
        for ref in selected:
            pts = _points(store, ref, f.limit)
            normalised = False
            if f.norm == "first":
                first = next((p["value"] for p in pts if p["value"]), None)
                if first:
                    for p in pts:
                        _scale(p, 1 / first)
                    normalised = True
            elif f.norm == "provider":
                normalised = _divide_by_provider(store, ref, pts, f)
            traces.append(
                Trace(ref=ref, label=_label(ref, varying), points=pts, normalised=normalised)
            )
        units = {c.unit for c in selected}
        unit = "ratio" if f.norm != "none" else ", ".join(sorted(units))
        alerts = store.series.alerts([(c.series_id, c.machine_id) for c in selected])
    no_baseline = (
        f.norm == "provider"
        and bool(traces)
        and all(p["value"] is None for tr in traces for p in tr.points)
    )
    return SeriesView(
        filters=f,
        catalog=catalog,
        traces=[] if no_baseline else traces,
        alerts=[] if no_baseline else alerts,
        too_many=too_many,
        unit=unit,
        pct_peak_available=pct,
        facets=facets,
        n_matching=len(catalog),
        more_than=more_than,
        auto_norm=auto_norm,
        no_baseline=no_baseline,
    )


def series_order(ref: SeriesRef) -> tuple[Any, ...]:
    """Series listed and drawn by their fields, shapes by size (M=128 before M=1152)."""
    return (
        ref.operator,
        ref.provider,
        ref.variant,
        shape_sort_key(ref.shape),
        ref.dtype,
        ref.mode,
        ref.metric,
        ref.machine,
    )


def _scale(p: dict[str, Any], k: float) -> None:
    for key in ("value", "ci_low", "ci_high"):
        if p[key] is not None:
            p[key] = p[key] * k


def _divide_by_provider(
    store: Store, ref: SeriesRef, pts: list[dict[str, Any]], f: SeriesFilters
) -> bool:
    fields = {k: getattr(ref, k) for k in SERIES_FIELDS}
    fields["provider"] = f.base
    base = store.series.catalog(limit=1, machine=ref.machine, **fields)
    if not base:
        for p in pts:
            p["value"] = p["ci_low"] = p["ci_high"] = None
        return True
    by_run = {p["run"]: p["value"] for p in _points(store, base[0], f.limit)}
    for p in pts:
        b = by_run.get(p["run"])
        if b:
            _scale(p, 1 / b)
        else:
            p["value"] = p["ci_low"] = p["ci_high"] = None
    return True


# -- alert page ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertView:
    alert: Any
    history: list[Any]
    before: list[float]
    after: list[float]
    before_runs: list[str]
    after_runs: list[str]
    build_changes: list[tuple[str, Any, Any]]
    machine_changes: list[tuple[str, Any, Any]]
    codegen_changes: list[dict[str, Any]]
    severity: str


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
    else:
        out[prefix.rstrip(".")] = d
    return out


def _diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    fa, fb = _flat(a), _flat(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def alert_view(store: Store, alert_id: int, *, window: int = 5) -> AlertView:
    alert = store.alerts.get(alert_id)
    history = list(store.alerts.history(alert_id))
    pts = store.series.points(alert.series_id, alert.machine_id, limit=5000, with_samples=True)
    bad_uuid = _uuid(alert.first_bad_run)
    idx = next((i for i, p in enumerate(pts) if p.run_uuid == bad_uuid), None)
    before: list[float] = []
    after: list[float] = []
    before_runs: list[str] = []
    after_runs: list[str] = []
    build_changes: list[tuple[str, Any, Any]] = []
    machine_changes: list[tuple[str, Any, Any]] = []
    codegen: list[dict[str, Any]] = []
    if idx is not None:
        for p in pts[max(0, idx - window) : idx]:
            before.extend(_samples(p))
            before_runs.append(p.run_uuid)
        for p in pts[idx : idx + window]:
            after.extend(_samples(p))
            after_runs.append(p.run_uuid)
    good_uuid = _uuid(alert.last_good_run)
    try:
        good = store.runs.get(good_uuid) if good_uuid else None
        bad = store.runs.get(bad_uuid) if bad_uuid else None
    except NotFoundError:
        good = bad = None
    if good is not None and bad is not None:
        build_changes = _diff(good.build_info, bad.build_info)
        machine_changes = _diff(good.machine_info, bad.machine_info)
        if good.summary.build_id != bad.summary.build_id:
            codegen = codegen_between(
                store, good.summary.build_id, bad.summary.build_id, alert.operator
            )
    return AlertView(
        alert=alert,
        history=history,
        before=before,
        after=after,
        before_runs=before_runs,
        after_runs=after_runs,
        build_changes=build_changes,
        machine_changes=machine_changes,
        codegen_changes=codegen,
        severity=severity_class(alert.ratio),
    )


def codegen_between(
    store: Store, build_a: int, build_b: int, operator: str, limit: int = 50
) -> list[dict[str, Any]]:
    """Kernels whose generated code changed between two builds, the operator's own first."""
    changes = store.codegen.changes(build_a, build_b)
    op = operator.lower()
    changes.sort(key=lambda c: (op not in c.kernel.lower(), c.kernel, c.spec, c.target))
    out = []
    for c in changes[:limit]:
        keys = sorted(set(c.metrics_a) | set(c.metrics_b))
        deltas = {
            k: (c.metrics_a.get(k), c.metrics_b.get(k))
            for k in keys
            if c.metrics_a.get(k) != c.metrics_b.get(k)
        }
        out.append(
            {
                "kernel": c.kernel,
                "spec": c.spec,
                "target": c.target,
                "first_changed_stage": c.first_changed_stage,
                "metric_deltas": deltas,
                "error_a": c.error_a,
                "error_b": c.error_b,
            }
        )
    return out


def _uuid(ref: Any) -> str | None:
    """Alerts name runs by UUID; accept a RunSummary-like object too."""
    if ref is None:
        return None
    return str(getattr(ref, "uuid", ref))


def _samples(p: Any) -> list[float]:
    if p.samples is not None and len(p.samples):
        return [float(x) for x in np.asarray(p.samples)]
    return [p.value] if p.value is not None else []
