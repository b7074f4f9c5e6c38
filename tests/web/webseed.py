"""A small, realistic dashboard database: nights of runs on three machines with planted steps.

Used by the API tests and the browser tests (which seed a SQLite file for a real server).
Strings named XSS are planted in every place a user can name something.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from tritonwatch.store import Store
from tritonwatch.store import schema as s
from tritonwatch.store.alerts import AlertDraft
from tritonwatch.testing import make_run

XSS = "<script>alert(1)</script>"
XSS_SHAPE = {"M": 64, "name": "<img src=x onerror=alert(2)>"}
XSS_MACHINE = "gpu-<script>alert(3)</script>"
NIGHTS = 8
STEP_NIGHT = 5  # first bad night of the planted regressions
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


@dataclass
class Site:
    """A seeded store behind the app, a test client, and a token with every scope."""

    client: Any
    store: Store
    seeded: Seeded
    token: str


@dataclass
class Seeded:
    runs: dict[str, list[str]] = field(default_factory=dict)  # machine -> run uuids, oldest first
    alert_id: int = 0
    xss_alert_id: int = 0
    step_series_id: int = 0
    machine_id: int = 0
    n_alerts: int = 0


def _result(
    op: str,
    provider: str,
    shape: dict[str, Any],
    dtype: str,
    base: float,
    rng: np.random.Generator,
    metric: str = "time",
    unit: str = "ms",
    variant: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "operator": op,
        "provider": provider,
        "variant": variant,
        "shape": shape,
        "dtype": dtype,
        "metric": metric,
        "unit": unit,
        "samples": (base * (1 + 0.005 * rng.standard_normal(15))).tolist(),
        "correct": True,
        "extra": extra or {},
    }


def night_results(night: int, rng: np.random.Generator, *, xss: bool) -> list[dict[str, Any]]:
    slow = 1.2 if night >= STEP_NIGHT else 1.0
    gpu = {"sm_clock_mhz": 1980, "temp_c": 61 + night % 3, "power_w": 540, "throttle": "none"}
    out = []
    for dtype in ("fp16", "bf16"):
        for m in (1024, 4096):
            f = slow if (dtype == "fp16" and m == 1024) else 1.0
            out.append(
                _result(
                    "matmul",
                    "triton",
                    {"M": m, "N": m, "K": m},
                    dtype,
                    0.5 * m / 1024 * f,
                    rng,
                    extra=gpu,
                )
            )
            out.append(
                _result(
                    "matmul",
                    "aten",
                    {"M": m, "N": m, "K": m},
                    dtype,
                    0.55 * m / 1024,
                    rng,
                    extra=gpu,
                )
            )
            out.append(
                _result(
                    "matmul",
                    "triton",
                    {"M": m, "N": m, "K": m},
                    dtype,
                    70 / f,
                    rng,
                    metric="pct_peak",
                    unit="%",
                )
            )
        out.append(_result("softmax", "triton", {"M": 4096, "N": 2048}, dtype, 0.08, rng))
    if xss:
        out.append(
            _result(XSS, XSS, XSS_SHAPE, "fp16", 0.3 * slow, rng, variant=XSS, extra={"note": XSS})
        )
    return out


def seed(store: Store, *, nights: int = NIGHTS, detector: bool = False) -> Seeded:
    """Fill ``store`` and file alerts; returns what tests look up.

    With ``detector`` the real detection pass (``tritonwatch.analysis.detect``) files them (it
    finds the 20% steps on both machines, on time and pct_peak); otherwise two alerts (the step
    on h100-a and the XSS series) are filed directly through ``Store.upsert_alerts``.
    """
    rng = np.random.default_rng(7)
    out = Seeded()
    run_ids: dict[str, list[int]] = {}
    for machine, gpu in (
        ("h100-a", "NVIDIA H100 80GB HBM3"),
        ("mi300-b", "AMD Instinct MI300X"),
        (XSS_MACHINE, "NVIDIA A100"),
    ):
        n = nights if machine != XSS_MACHINE else 2
        for night in range(n):
            commit = ("a" if night < STEP_NIGHT else "b") * 40
            run = make_run(
                results=night_results(night, rng, xss=machine != "mi300-b"),
                machine=machine,
                gpu_model=gpu,
                commit=commit,
                seed=night,
                started_at=T0 + timedelta(days=night),
                label=XSS if night == 1 else None,
            )
            doc = run.model_dump(mode="json")
            doc["run"]["command"] = f"tritonwatch run --suite nightly --label {XSS}"
            doc["machine"]["driver"] = "550.54" if night < STEP_NIGHT else "555.42"
            from tritonwatch.runformat import parse_run

            added = store.runs.add(parse_run(doc))
            out.runs.setdefault(machine, []).append(added.uuid)
            run_ids.setdefault(machine, []).append(added.id)
    mid = store.series.machine_id("h100-a", "cuda", "NVIDIA H100 80GB HBM3", None)
    assert mid is not None
    out.machine_id = mid
    step = store.series.catalog(
        operator="matmul",
        provider="triton",
        dtype="fp16",
        metric="time",
        shape='{"K":1024,"M":1024,"N":1024}',
        machine="h100-a",
    )
    xss = store.series.catalog(operator=XSS, machine="h100-a")
    ids = run_ids["h100-a"]
    drafts = [
        AlertDraft(
            series_id=ref.series_id,
            machine_id=mid,
            last_good_run_id=ids[STEP_NIGHT - 1],
            first_bad_run_id=ids[STEP_NIGHT],
            direction="regression",
            ratio=1.2,
            ci_low=1.18,
            ci_high=1.22,
            p=1e-6,
            q=1e-5,
            details={"segment_before": {"median": 0.5}, "why": XSS},
        )
        for ref in (step[0], xss[0])
    ]
    if detector:
        from tritonwatch.analysis.detect import detect

        detect(store)
        found = {(a.series_id, a.machine_id): a.id for a in store.alerts.find()}
        out.alert_id = found[(step[0].series_id, mid)]
        out.xss_alert_id = found[(xss[0].series_id, mid)]
    else:
        out.alert_id, out.xss_alert_id = store.alerts.upsert(drafts).created
    out.n_alerts = len(store.alerts.find())
    out.step_series_id = step[0].series_id
    _reports(store)
    return out


def _reports(store: Store) -> None:
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        b = conn.execute(select(s.builds.c.id).order_by(s.builds.c.id)).scalars().all()
        # Generated code recorded for the last good (commit a...) and first bad (b...) builds.
        by_commit = dict(conn.execute(select(s.builds.c.triton_commit, s.builds.c.id)).all())
        for commit, regs, ttgir in (("a" * 40, 128, "h1"), ("b" * 40, 168, "h2")):
            for kernel, hashes in (
                ("matmul_kernel", {"ttir": "t", "ttgir": ttgir}),
                ("softmax_kernel", {"ttir": "t", "ttgir": "same"}),
            ):
                conn.execute(
                    s.codegen.insert().values(
                        build_id=by_commit[commit],
                        kernel=kernel,
                        spec="BLOCK_M=128",
                        target="sm90",
                        stage_hashes=hashes,
                        metrics={"registers": regs if kernel == "matmul_kernel" else 64},
                        created_at=now,
                    )
                )
        conn.execute(
            s.codegen_reports.insert().values(
                uuid="c0de0000-0000-4000-8000-000000000001",
                build_a_id=b[0],
                build_b_id=b[-1],
                env_a="/envs/triton-3.8",
                env_b=f"/envs/{XSS}",
                targets="sm90,gfx942",
                summary={"headline": f"1 of 2 kernels changed {XSS}", "total": 2, "changed": 1},
                report={
                    "format": "tritonwatch.blast/1",
                    "targets": ["sm90", "gfx942"],
                    "results": [
                        {
                            "kernel": "matmul_kernel",
                            "spec": "BLOCK_M=128,num_warps=8",
                            "target": "sm90",
                            "status": "changed",
                            "first_changed_stage": "TTGIR",
                            "changed_stages": ["TTGIR", "LLIR", "PTX"],
                            "a": {"metrics": {"registers": 128, "spills": 0}, "error": None},
                            "b": {"metrics": {"registers": 168, "spills": 4}, "error": None},
                            "opcode_deltas": {"wgmma": {"a": 8, "b": 0}, "mma": {"a": 0, "b": 32}},
                            "key_instructions_gained": ["mma"],
                            "key_instructions_lost": ["wgmma"],
                            "diffs": {"TTGIR": f"--- a\n+++ b\n-  wgmma\n+  mma {XSS}"},
                        },
                        {
                            "kernel": XSS,
                            "spec": XSS,
                            "target": "gfx942",
                            "status": "same",
                            "first_changed_stage": None,
                            "changed_stages": [],
                            "a": {"metrics": {"vgprs": 64}},
                            "b": {"metrics": {"vgprs": 64}},
                            "opcode_deltas": {},
                            "key_instructions_gained": [],
                            "key_instructions_lost": [],
                        },
                    ],
                },
                created_at=now,
            )
        )
        r = conn.execute(select(s.runs.c.id).order_by(s.runs.c.id)).scalars().all()
        conn.execute(
            s.comparisons.insert().values(
                uuid="ab000000-0000-4000-8000-000000000001",
                kind="ab",
                run_a_id=r[0],
                run_b_id=r[1],
                label_a="triton 3.8",
                label_b=XSS,
                summary={
                    "geomean": 1.03,
                    "slower": 1,
                    "timed_providers": ["torch"],
                    "triton_timed": 0,
                    "not_timed_cases": [{"case": "x", "reason": XSS}],
                },
                cases=[
                    {"operator": "matmul", "ratio": 1.05, "ci": [1.02, 1.08], "verdict": "slower"},
                    {"operator": XSS, "ratio": 0.99, "verdict": "same"},
                ],
                created_at=now,
            )
        )
