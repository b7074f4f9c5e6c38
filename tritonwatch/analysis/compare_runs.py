"""Comparing two stored runs (``tritonwatch compare --runs``) and saving comparisons.

The rules live here, above the store: which metadata must match before two runs may be compared
(pyperf's ``_CHECKED_METADATA``), how a stored result becomes one side of a case, and how a
:class:`~.compare.Comparison` becomes the JSON rows ``store.reports`` keeps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UsageError
from ..runformat import Run
from ..store import Store
from ..store.reports import SavedComparison
from ..store.rows import ResultRow, RunDetail
from .compare import CaseKey, Comparison, Side, compare_sides, json_safe

# What must match before two stored runs may be compared (pyperf's _CHECKED_METADATA).
CHECKED_KEYS = ("device", "gpu_model", "driver", "clocks", "suite_version")


def save_comparison(
    store: Store, comparison: Comparison, run_a: Run | None, run_b: Run | None, *, kind: str
) -> SavedComparison:
    """Store both runs (if given; already stored ones are left alone) and the comparison.

    The runs go in one transaction, then the comparison row, which names them.
    """
    if kind not in ("ab", "runs"):
        raise ValueError("kind is ab or runs")
    ids: list[int | None] = [None, None]
    uuids = ["", ""]
    given = [r for r in (run_a, run_b) if r is not None]
    if given:
        it = iter(store.runs.add_many(given))
        for i, r in enumerate((run_a, run_b)):
            if r is not None:
                a = next(it)
                ids[i], uuids[i] = a.id, a.uuid
    return _insert(store, comparison, kind, (ids[0], ids[1]), (uuids[0], uuids[1]))


def _insert(
    store: Store,
    comparison: Comparison,
    kind: str,
    ids: tuple[int | None, int | None],
    uuids: tuple[str, str],
) -> SavedComparison:
    return store.reports.add_comparison(
        kind=kind,
        label_a=comparison.label_a,
        label_b=comparison.label_b,
        summary=json_safe(comparison.summary()),
        cases=[json_safe(c.to_json()) for c in comparison.results],
        run_ids=ids,
        run_uuids=uuids,
    )


def checked_metadata(run: RunDetail) -> dict[str, Any]:
    """The values of :data:`CHECKED_KEYS` for a stored run (None where it did not record one).

    ``clocks`` is the machine's recorded clock state (``clocks_locked``/``clock_state``) when
    there is one, else whether any result was measured while the GPU was throttled.
    """
    m = run.machine_info or {}
    clocks: Any = m.get("clock_state", m.get("clocks_locked"))
    if clocks is None and (run.summary.device or "cpu") != "cpu":
        throttled = any(r.extra.get("throttled") for r in run.results if r.metric == "time")
        clocks = "throttled" if throttled else "not throttled"
    return {
        "device": run.summary.device,
        "gpu_model": m.get("gpu_model") or run.summary.gpu_model,
        "driver": m.get("driver"),
        "clocks": clocks,
        "suite_version": run.info.get("suite_version") or run.summary.suite,
    }


def mismatched_keys(a: RunDetail, b: RunDetail) -> dict[str, tuple[Any, Any]]:
    """Checked keys whose values differ between two runs: key -> (value in A, value in B)."""
    ma, mb = checked_metadata(a), checked_metadata(b)
    return {k: (ma[k], mb[k]) for k in CHECKED_KEYS if ma[k] != mb[k]}


def _side(r: ResultRow) -> Side:
    samples = r.samples if r.samples is not None else np.empty(0)
    if r.status == "ok" and samples.size == 0 and r.value is not None:
        samples = np.array([r.value])
    status = "incorrect" if r.status == "incorrect" or r.correct is False else r.status
    return Side(status, (np.asarray(samples, dtype=np.float64),), r.error)


def compare_stored_runs(
    store: Store, ref_a: str, ref_b: str, *, threshold: float, force: bool = False
) -> tuple[Comparison, SavedComparison]:
    """Compare the ``time`` results two stored runs share, and store the comparison.

    Raises :class:`UsageError` naming the keys when the runs were measured under different
    conditions (:data:`CHECKED_KEYS`), unless ``force``; or when they share no case.
    """
    a, b = store.runs.get(ref_a), store.runs.get(ref_b)
    if a.summary.uuid == b.summary.uuid:
        raise UsageError("--runs names the same run twice; give two different runs")
    bad = mismatched_keys(a, b)
    if bad and not force:
        what = "; ".join(f"{k}: {va!r} vs {vb!r}" for k, (va, vb) in bad.items())
        raise UsageError(
            f"runs {a.summary.uuid[:8]} and {b.summary.uuid[:8]} differ in {what}; "
            "comparing them would measure the difference, not the builds (--force compares anyway)"
        )

    def times(run: RunDetail) -> dict[CaseKey, ResultRow]:
        return {
            CaseKey.of(r.operator, r.provider, r.variant, r.shape, r.dtype, r.mode): r
            for r in run.results
            if r.metric == "time" and r.status != "skipped"
        }

    ta, tb = times(a), times(b)
    common = [k for k in ta if k in tb]
    if not common:
        raise UsageError(
            f"runs {a.summary.uuid[:8]} and {b.summary.uuid[:8]} share no measured case"
        )
    pairs = [(k, _side(ta[k]), _side(tb[k])) for k in common]

    def label(run: RunDetail) -> str:
        sm = run.summary
        return (
            f"run {sm.uuid[:8]} (triton {sm.triton_version}{', ' + sm.label if sm.label else ''})"
        )

    meta = {
        "run_a": a.summary.uuid,
        "run_b": b.summary.uuid,
        "triton_a": a.summary.triton_version,
        "triton_b": b.summary.triton_version,
        "only_in_a": len([k for k in ta if k not in tb]),
        "only_in_b": len([k for k in tb if k not in ta]),
        "forced": sorted(bad) if bad else None,
    }
    comparison = compare_sides(
        pairs,
        threshold=threshold,
        label_a=label(a),
        label_b=label(b),
        meta={k: v for k, v in meta.items() if v is not None},
    )
    saved = _insert(
        store, comparison, "runs", (a.summary.id, b.summary.id), (a.summary.uuid, b.summary.uuid)
    )
    return comparison, saved
