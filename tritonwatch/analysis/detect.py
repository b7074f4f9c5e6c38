"""``tritonwatch detect``: read every series from the Store, find changes, file alerts.

One pass reads all points in one query, locates changes in every series at once
(:mod:`.changepoint`), tests the survivors on their raw samples, controls the false discovery
rate over every series tested, and creates or updates alerts idempotently: an alert already
filed for the same change (same series, machine and direction, first bad night within two
points) is updated, never duplicated, and its triage status is kept.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..store.alerts import AlertDraft, ExistingAlert
from ..store.history import SeriesPoints
from .changepoint import Change, ChangeSet, DetectConfig, apply_fdr, locate_parallel
from .stats import mann_whitney, ratio_of_medians_ci

if TYPE_CHECKING:
    from ..store import Store

# Detection looks at the newest points of a series; older history adds cost, not evidence.
HISTORY = 120
# Bootstrap resamples for an alert's CI: enough to place its 2.5% and 97.5% points for a person
# to read, and every change is re-sized on every pass, so the count is a cost paid nightly.
BOOTSTRAP = 500
# A finding within this many points of an alert already filed is the same change.
MATCH_POINTS = 2

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Finding:
    """One change that survived every guard, ready to be filed."""

    series_id: int
    machine_id: int
    direction: str
    action: str  # created | updated | unchanged
    alert_id: int
    ratio: float
    ci: tuple[float, float] | None
    p: float
    q: float
    label: str


@dataclass(frozen=True)
class DetectReport:
    """What one pass of ``detect`` did."""

    n_series: int
    n_screened: int
    n_changes: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def created(self) -> list[int]:
        return [f.alert_id for f in self.findings if f.action == "created"]

    @property
    def updated(self) -> list[int]:
        return [f.alert_id for f in self.findings if f.action == "updated"]

    @property
    def unchanged(self) -> list[int]:
        return [f.alert_id for f in self.findings if f.action == "unchanged"]


def _series_label(info: Any) -> str:
    shape = ",".join(f"{k}={v}" for k, v in info.shape.items())
    parts = [info.operator, info.provider, info.variant, shape, info.dtype, info.mode, info.metric]
    return " ".join(p for p in parts if p)


def _select(
    points: SeriesPoints, infos: dict[tuple[int, int], Any], pattern: str | None
) -> list[int]:
    """Indices into ``points.pairs`` of the series to test (all, or those matching -k)."""
    out = []
    for i, pair in enumerate(points.pairs):
        info = infos.get(pair)
        if info is None:
            continue
        if pattern:
            label = _series_label(info).lower()
            pat = pattern.lower()
            glob = any(ch in pat for ch in "*?[")
            if not (fnmatch.fnmatch(label, pat) if glob else pat in label):
                continue
        out.append(i)
    return out


def _matrix(points: SeriesPoints, chosen: Sequence[int]) -> tuple[np.ndarray, list[slice]]:
    """Right-padded value matrix of the newest HISTORY points of each chosen series."""
    ends = np.append(points.starts[1:], len(points.value))
    spans = []
    for i in chosen:
        a, b = int(points.starts[i]), int(ends[i])
        spans.append(slice(max(a, b - HISTORY), b))
    width = max((s.stop - s.start for s in spans), default=0)
    m = np.full((len(spans), width), np.nan)
    for r, sl in enumerate(spans):
        m[r, : sl.stop - sl.start] = points.value[sl]
    return m, spans


def _what_changed(
    lg_build: dict[str, Any],
    fb_build: dict[str, Any],
    lg_machine: dict[str, Any],
    fb_machine: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Every dependency, driver or toolkit that differs between the two runs."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(lg_build) | set(fb_build)):
        a, b = lg_build.get(name) or {}, fb_build.get(name) or {}
        for key in ("version", "commit"):
            if isinstance(a, dict) and isinstance(b, dict) and a.get(key) != b.get(key):
                out[f"{name} {key}" if key == "commit" else name] = {
                    "from": a.get(key),
                    "to": b.get(key),
                }
    for key in ("driver", "toolkit", "gpu_model"):
        if lg_machine.get(key) != fb_machine.get(key):
            out[key] = {"from": lg_machine.get(key), "to": fb_machine.get(key)}
    return out


def _codegen_change(
    hashes: dict[int, dict[tuple[str, str, str], str]], a: int, b: int
) -> dict[str, Any] | None:
    ha, hb = hashes.get(a) or {}, hashes.get(b) or {}
    common = set(ha) & set(hb)
    if not common:
        return None
    changed = sorted(k for k in common if ha[k] != hb[k])
    return {
        "kernels_compared": len(common),
        "kernels_changed": len(changed),
        "changed": [f"{k}[{s}] {t}" for k, s, t in changed[:20]],
    }


def _match(
    existing: list[ExistingAlert], run_ids: np.ndarray, first_bad_idx: int, direction: str
) -> int | None:
    """The id of an alert already filed for this change, if any."""
    pos = {int(r): i for i, r in enumerate(run_ids)}
    best: tuple[int, int] | None = None
    for e in existing:
        if e.direction != direction or e.first_bad_run_id not in pos:
            continue
        dist = abs(pos[e.first_bad_run_id] - first_bad_idx)
        if dist <= MATCH_POINTS and (best is None or dist < best[0]):
            best = (dist, e.id)
    return best[1] if best else None


def _with_samples(
    changes: list[Change],
    points: SeriesPoints,
    spans: list[slice],
    chosen: Sequence[int],
    samples: dict[tuple[int, int], np.ndarray],
) -> list[Change]:
    """Add the Mann-Whitney test on raw samples; p becomes max(p_night, p_samples)."""
    out = []
    for c in changes:
        sl = spans[c.row]
        sid = points.pairs[chosen[c.row]][0]
        runs = points.run_id[sl]
        bef = [samples.get((int(runs[j]), sid)) for j in c.before_cols]
        aft = [samples.get((int(runs[j]), sid)) for j in c.after_cols]
        bs = [x for x in bef if x is not None and x.size]
        as_ = [x for x in aft if x is not None and x.size]
        if bs and as_:
            mw = mann_whitney(np.concatenate(bs), np.concatenate(as_))
            # intersection-union: both the nightly and the sample test must reject
            out.append(replace(c, p_samples=mw.p, p=max(c.p_night, mw.p)))
        else:
            out.append(c)
    return out


def detect(
    store: Store,
    *,
    since: datetime | None = None,
    machine: str | None = None,
    pattern: str | None = None,
    config: DetectConfig | None = None,
    progress: Progress | None = None,
) -> DetectReport:
    """Test every series (or those matching ``pattern``) and file or update alerts.

    ``since`` keeps only changes whose first bad run started at or after it (older history is
    still read, as the baseline). ``machine`` limits the pass to one machine's series.
    """
    cfg = config or DetectConfig()
    step = progress or (lambda _what, _i, _n: None)
    step("reading series", 0, 4)
    infos = {(si.id, si.machine_id): si for si in store.series.find(machine=machine)}
    points = store.history.points(machine=machine)
    chosen = _select(points, infos, pattern)
    values, spans = _matrix(points, chosen)
    step("locating changes", 1, 4)
    found: ChangeSet = (
        locate_parallel(values, cfg, jobs=os.cpu_count() or 1)
        if len(chosen)
        else ChangeSet(changes=[], n_series=0, n_screened=0)
    )
    step("testing raw samples", 2, 4)
    keys = []
    for c in found.changes:
        sl = spans[c.row]
        sid = points.pairs[chosen[c.row]][0]
        runs = points.run_id[sl]
        keys += [(int(runs[j]), sid) for j in (*c.before_cols, *c.after_cols)]
    samples = store.history.samples(keys) if keys else {}
    tested = _with_samples(found.changes, points, spans, chosen, samples)
    kept = apply_fdr(
        ChangeSet(changes=tested, n_series=found.n_series, n_screened=found.n_screened), cfg
    )
    step("filing alerts", 3, 4)
    run_ids = {
        int(points.run_id[spans[c.row]][j]) for c in kept for j in (c.last_good, c.first_bad)
    }
    refs = store.history.runs(run_ids)
    builds = store.history.builds(r["build_id"] for r in refs.values())
    hashes = store.history.codegen_hashes(r["build_id"] for r in refs.values())
    pairs = [points.pairs[chosen[c.row]] for c in kept]
    existing: dict[tuple[int, int], list[ExistingAlert]] = {}
    for e in store.alerts.existing(set(pairs)):
        existing.setdefault((e.series_id, e.machine_id), []).append(e)
    drafts: list[AlertDraft] = []
    meta: list[tuple[Change, tuple[int, int]]] = []
    for c, pair in zip(kept, pairs, strict=True):
        sl = spans[c.row]
        runs = points.run_id[sl]
        lg, fb = refs[int(runs[c.last_good])], refs[int(runs[c.first_bad])]
        if since is not None and fb["started_at"] < since:
            continue
        info = infos[pair]
        worse = c.log_change > 0 if info.better == "lower" else c.log_change < 0
        direction = "regression" if worse else "improvement"
        bef = [samples.get((int(runs[j]), pair[0])) for j in c.before_cols]
        aft = [samples.get((int(runs[j]), pair[0])) for j in c.after_cols]
        vals = points.value[sl]
        bg = [
            b if b is not None else np.array([vals[j]])
            for b, j in zip(bef, c.before_cols, strict=True)
        ]
        ag = [
            a if a is not None else np.array([vals[j]])
            for a, j in zip(aft, c.after_cols, strict=True)
        ]
        ci = ratio_of_medians_ci(bg, ag, n_boot=BOOTSTRAP, seed=cfg.seed)
        details = {
            "changes": _what_changed(
                builds.get(lg["build_id"], {}),
                builds.get(fb["build_id"], {}),
                lg["machine_info"],
                fb["machine_info"],
            ),
            "codegen": _codegen_change(hashes, lg["build_id"], fb["build_id"]),
            "last_good_at": lg["started_at"].isoformat(),
            "first_bad_at": fb["started_at"].isoformat(),
            "before": {
                "nights": len(c.before_cols),
                "median": float(np.median(vals[list(c.before_cols)])),
            },
            "after": {
                "nights": len(c.after_cols),
                "median": float(np.median(vals[list(c.after_cols)])),
            },
            "method": c.method,
            "p_night": c.p_night,
            "p_samples": c.p_samples,
            "p_perm": c.p_perm,
            "noise": c.sigma,
            "floor": c.floor,
        }
        details = json.loads(json.dumps(details, default=str))
        drafts.append(
            AlertDraft(
                series_id=pair[0],
                machine_id=pair[1],
                last_good_run_id=int(runs[c.last_good]),
                first_bad_run_id=int(runs[c.first_bad]),
                direction=direction,
                ratio=ci.ratio,
                ci_low=ci.low,
                ci_high=ci.high,
                p=c.p,
                q=c.q,
                details=details,
                org_id=fb["org_id"],
                alert_id=_match(existing.get(pair, []), runs, c.first_bad, direction),
            )
        )
        meta.append((c, pair))
    result = store.alerts.upsert(drafts)
    findings = [
        Finding(
            series_id=pair[0],
            machine_id=pair[1],
            direction=d.direction,
            action=act,
            alert_id=aid,
            ratio=d.ratio,
            ci=(d.ci_low, d.ci_high) if d.ci_low is not None and d.ci_high is not None else None,
            p=c.p,
            q=c.q,
            label=_series_label(infos[pair]),
        )
        for d, (c, pair), aid, act in zip(drafts, meta, result.ids, result.actions, strict=True)
    ]
    step("done", 4, 4)
    return DetectReport(
        n_series=found.n_series,
        n_screened=found.n_screened,
        n_changes=len(found.changes),
        findings=findings,
    )
