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
from .changepoint import Change, DetectConfig
from .nightly import Analysis, NightlyAlert, NightlyConfig, analyse
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
# Nights each side an alert keeps as evidence (dates and values) for its page.
EVIDENCE_NIGHTS = 10
# Statuses detect may move to "fixed" when the regression reverts (a person's false_positive or
# an earlier fixed stays as it is).
REOPENABLE = ("new", "confirmed", "acknowledged")

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
    kind: str = "step"  # "step" or "drift"


@dataclass(frozen=True)
class DetectReport:
    """What one pass of ``detect`` did."""

    n_series: int
    n_screened: int
    n_changes: int
    findings: list[Finding] = field(default_factory=list)
    fixed: list[int] = field(default_factory=list)  # alerts this pass moved to "fixed"
    notes: list[dict[str, Any]] = field(default_factory=list)  # pending and stability notes

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
    existing: list[ExistingAlert],
    run_ids: np.ndarray,
    first_bad_idx: int,
    direction: str,
    last_idx: int | None = None,
) -> int | None:
    """The id of an alert already filed for this change, if any.

    A drift (``last_idx`` is its last night) also takes over an alert filed earlier for a step
    inside its range: the same change, seen as a ramp now that more nights are in.
    """
    pos = {int(r): i for i, r in enumerate(run_ids)}
    best: tuple[int, int] | None = None
    for e in existing:
        if e.direction != direction or e.first_bad_run_id not in pos:
            continue
        at = pos[e.first_bad_run_id]
        dist = abs(at - first_bad_idx)
        if last_idx is not None and first_bad_idx - MATCH_POINTS <= at <= last_idx:
            dist = min(dist, MATCH_POINTS)
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


def _nights(
    vals: np.ndarray, runs: np.ndarray, refs: dict[int, dict[str, Any]], cols: Sequence[int]
) -> list[list[Any]]:
    """[[date, value], ...] of some nights, for a person to see the evidence at a glance."""
    out = []
    for j in cols:
        ref = refs.get(int(runs[j]))
        day = ref["started_at"].date().isoformat() if ref else None
        out.append([day, float(vals[j])])
    return out


def _clock_matrix(
    store: Store, points: SeriesPoints, spans: list[slice], chosen: Sequence[int], rows: set[int]
) -> np.ndarray | None:
    """Recorded SM clocks of the given rows' points (NaN elsewhere); None when none recorded."""
    if not rows:
        return None
    keys = []
    for r in rows:
        sid = points.pairs[chosen[r]][0]
        keys += [(int(rid), sid) for rid in points.run_id[spans[r]]]
    got = store.history.result_clocks(keys)
    if not got:
        return None
    width = max((sl.stop - sl.start for sl in spans), default=0)
    m = np.full((len(spans), width), np.nan)
    for r in rows:
        sid = points.pairs[chosen[r]][0]
        for j, rid in enumerate(points.run_id[spans[r]]):
            c = got.get((int(rid), sid))
            if c is not None:
                m[r, j] = c
    return m


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
    still read, as the baseline). ``machine`` limits the pass to one machine's series. Steps,
    fixes of earlier regressions (the alert moves to status ``fixed``) and drifts are found by
    :func:`.nightly.analyse`; nights run at a lower recorded GPU clock are left out.
    """
    cfg = config or DetectConfig()
    ncfg = NightlyConfig(detect=cfg)
    step = progress or (lambda _what, _i, _n: None)
    step("reading series", 0, 4)
    infos = {(si.id, si.machine_id): si for si in store.series.find(machine=machine)}
    points = store.history.points(machine=machine)
    chosen = _select(points, infos, pattern)
    values, spans = _matrix(points, chosen)
    step("locating changes", 1, 4)
    samples: dict[tuple[int, int], np.ndarray] = {}

    def with_samples(changes: list[Change]) -> list[Change]:
        keys = []
        for c in changes:
            sl = spans[c.row]
            sid = points.pairs[chosen[c.row]][0]
            runs = points.run_id[sl]
            keys += [(int(runs[j]), sid) for j in (*c.before_cols, *c.after_cols)]
        samples.update(store.history.samples(keys) if keys else {})
        return _with_samples(changes, points, spans, chosen, samples)

    jobs = os.cpu_count() or 1
    if not chosen:
        an = Analysis(alerts=[], notes=[], n_series=0, n_screened=0, banded={})
    else:
        an = analyse(values, None, ncfg, jobs=jobs, adjust=with_samples)
        # clocks are read only for series with something to say, then the pass is redone
        involved = {a.row for a in an.alerts} | {n.row for n in an.notes if n.kind == "pending"}
        clocks = _clock_matrix(store, points, spans, chosen, involved)
        if clocks is not None:
            an = analyse(values, clocks, ncfg, jobs=jobs, adjust=with_samples)
    step("testing raw samples", 2, 4)
    kept = an.alerts
    step("filing alerts", 3, 4)
    run_ids = set()
    for a in kept:
        runs = points.run_id[spans[a.row]]
        run_ids |= {int(runs[j]) for j in (a.last_good, a.first_bad)}
        run_ids |= {int(runs[j]) for j in (a.fixed_at, a.end) if j is not None}
        if a.change is not None:
            run_ids |= {int(runs[j]) for j in (*a.change.before_cols, *a.change.after_cols)}
    refs = store.history.runs(run_ids)
    builds = store.history.builds(r["build_id"] for r in refs.values())
    hashes = store.history.codegen_hashes(r["build_id"] for r in refs.values())
    pairs = [points.pairs[chosen[a.row]] for a in kept]
    existing: dict[tuple[int, int], list[ExistingAlert]] = {}
    for e in store.alerts.existing(set(pairs)):
        existing.setdefault((e.series_id, e.machine_id), []).append(e)
    explained = {n.row: n.detail["nights"] for n in an.notes if n.kind == "explained"}
    drafts: list[AlertDraft] = []
    meta: list[tuple[NightlyAlert, tuple[int, int]]] = []
    for a, pair in zip(kept, pairs, strict=True):
        sl = spans[a.row]
        runs = points.run_id[sl]
        lg, fb = refs[int(runs[a.last_good])], refs[int(runs[a.first_bad])]
        if since is not None and fb["started_at"] < since:
            continue
        info = infos[pair]
        worse = a.ratio > 1 if info.better == "lower" else a.ratio < 1
        direction = "regression" if worse else "improvement"
        vals = points.value[sl]
        c = a.change
        if c is not None:
            before_cols, after_cols = list(c.before_cols), list(c.after_cols)
        else:  # a drift: the nights before its ramp and after it
            n_cols = len(vals)
            before_cols = list(range(max(0, a.last_good - cfg.window + 1), a.last_good + 1))
            after_cols = list(range(a.end or a.first_bad, min(n_cols, (a.end or 0) + cfg.window)))
            before_cols = [j for j in before_cols if np.isfinite(vals[j])]
            after_cols = [j for j in after_cols if np.isfinite(vals[j])] or [n_cols - 1]
        bef = [samples.get((int(runs[j]), pair[0])) for j in before_cols]
        aft = [samples.get((int(runs[j]), pair[0])) for j in after_cols]
        bg = [
            b if b is not None else np.array([vals[j]])
            for b, j in zip(bef, before_cols, strict=True)
        ]
        ag = [
            x if x is not None else np.array([vals[j]])
            for x, j in zip(aft, after_cols, strict=True)
        ]
        ci = ratio_of_medians_ci(bg, ag, n_boot=BOOTSTRAP, seed=cfg.seed)
        details: dict[str, Any] = {
            "kind": a.kind,
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
                "nights": len(before_cols),
                "median": float(np.median(vals[before_cols])),
                "values": _nights(vals, runs, refs, before_cols[-EVIDENCE_NIGHTS:]),
            },
            "after": {
                "nights": len(after_cols),
                "median": float(np.median(vals[after_cols])),
                "values": _nights(vals, runs, refs, after_cols[:EVIDENCE_NIGHTS]),
            },
            "method": c.method if c is not None else "ramp",
            "p_night": c.p_night if c is not None else a.p,
            "p_samples": c.p_samples if c is not None else None,
            "p_perm": c.p_perm if c is not None else None,
            "noise": c.sigma if c is not None else a.evidence.get("noise"),
            "floor": c.floor if c is not None else None,
        }
        if a.kind == "drift" and a.end is not None:
            end_ref = refs[int(runs[a.end])]
            details["drift"] = {
                "from": fb["started_at"].isoformat(),
                "to": end_ref["started_at"].isoformat(),
                "nights": a.evidence.get("nights"),
                "slope_per_night": a.evidence.get("slope_per_night"),
                "total": a.ratio - 1,
            }
        if a.fixed_at is not None:
            fx = refs[int(runs[a.fixed_at])]
            details["fixed"] = {
                "run": fx["uuid"],
                "at": fx["started_at"].isoformat(),
                "ratio": a.fixed_ratio,
            }
        if "bands" in a.evidence:
            details["bands"] = a.evidence["bands"]
        if a.row in explained:
            details["clock_explained_nights"] = len(explained[a.row])
        details = json.loads(json.dumps(details, default=str))
        drafts.append(
            AlertDraft(
                series_id=pair[0],
                machine_id=pair[1],
                last_good_run_id=int(runs[a.last_good]),
                first_bad_run_id=int(runs[a.first_bad]),
                direction=direction,
                ratio=ci.ratio,
                ci_low=ci.low,
                ci_high=ci.high,
                p=a.p,
                q=a.q,
                details=details,
                org_id=fb["org_id"],
                alert_id=_match(
                    existing.get(pair, []),
                    runs,
                    a.first_bad,
                    direction,
                    a.end if a.kind == "drift" else None,
                ),
            )
        )
        meta.append((a, pair))
    result = store.alerts.upsert(drafts)
    fixed_ids = _mark_fixed(store, drafts, result.ids)
    findings = [
        Finding(
            series_id=pair[0],
            machine_id=pair[1],
            direction=d.direction,
            action=act,
            alert_id=aid,
            ratio=d.ratio,
            ci=(d.ci_low, d.ci_high) if d.ci_low is not None and d.ci_high is not None else None,
            p=a.p,
            q=a.q,
            label=_series_label(infos[pair]),
            kind=a.kind,
        )
        for d, (a, pair), aid, act in zip(drafts, meta, result.ids, result.actions, strict=True)
    ]
    step("done", 4, 4)
    return DetectReport(
        n_series=an.n_series,
        n_screened=an.n_screened,
        n_changes=len(kept),
        findings=findings,
        fixed=fixed_ids,
        notes=_notes(store, an, points, spans, chosen, infos),
    )


def _notes(
    store: Store,
    an: Analysis,
    points: SeriesPoints,
    spans: list[slice],
    chosen: Sequence[int],
    infos: dict[tuple[int, int], Any],
) -> list[dict[str, Any]]:
    """Pending and stability notes with the series, machine and the date of their first night."""
    kept = [n for n in an.notes if n.kind in ("pending", "stability")]
    runs = {n.row: int(points.run_id[spans[n.row]][n.night]) for n in kept}
    refs = store.history.runs(set(runs.values())) if runs else {}
    out = []
    for n in kept:
        pair = points.pairs[chosen[n.row]]
        ref = refs.get(runs[n.row])
        out.append(
            {
                "series_id": pair[0],
                "machine_id": pair[1],
                "label": _series_label(infos[pair]),
                "kind": n.kind,
                "since": ref["started_at"].date().isoformat() if ref else None,
                **n.detail,
            }
        )
    return out


def _mark_fixed(store: Store, drafts: Sequence[AlertDraft], ids: Sequence[int]) -> list[int]:
    """Move alerts whose regression reverted to status ``fixed`` (once; triage wins otherwise)."""
    out = []
    for d, aid in zip(drafts, ids, strict=True):
        fx = d.details.get("fixed")
        if not fx:
            continue
        current = store.alerts.get(aid)
        if current.status not in REOPENABLE:
            continue
        store.alerts.set_status(
            aid,
            "fixed",
            actor="tritonwatch detect",
            note=f"reverted on {fx['at'][:10]} (run {fx['run']}): now {change_text_plain(fx['ratio'])}",
        )
        out.append(aid)
    return out


def change_text_plain(ratio: float | None) -> str:
    """'+1.2% vs before the regression' style text for a fix note."""
    if ratio is None:
        return "back to the old level"
    return f"{100 * (ratio - 1):+.1f}% against the level before the regression"
