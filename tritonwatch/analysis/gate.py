"""Release gate: a declarative policy over operators x dtypes x GPUs, baseline vs candidate.

A policy file (TOML, see ``examples/gate.toml``) lists blocking entries. Every case an entry
covers must be present, run without error and be correct in the candidate, and must not be
slower than the baseline by more than the entry's threshold with a significant difference
(ratio of medians beyond the threshold and Mann-Whitney p below ``alpha``: both must agree).
An entry that covers no case at all fails too (coverage), so a GPU that silently dropped out of
the nightly cannot pass the gate.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InputError, NotFoundError, UsageError
from ..naming import canonical_shape
from ..runformat import describe_errors
from .stats import mann_whitney, ratio_of_medians_ci

if TYPE_CHECKING:
    from ..store import ResultRow, Store


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateDefaults(_Strict):
    threshold: float = Field(0.05, gt=0, lt=10, description="Largest allowed slowdown (0.05 = 5%).")
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the slowdown test.")
    metric: str = Field(
        "time", min_length=1, description="Metric compared when an entry names none."
    )
    require_correct: bool = True
    require_coverage: bool = True


class BlockEntry(_Strict):
    operator: str = Field(min_length=1, description="Operator name or glob, e.g. matmul or attn*.")
    providers: list[str] | None = None
    variants: list[str] | None = None
    dtypes: list[str] | None = None
    modes: list[str] | None = None
    gpus: list[str] | None = Field(None, description="GPU model or machine name globs.")
    metric: str | None = None
    threshold: float | None = Field(None, gt=0, lt=10)


class Policy(_Strict):
    gate: GateDefaults = Field(default_factory=lambda: GateDefaults.model_validate({}))
    block: list[BlockEntry] = Field(min_length=1)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a gate policy; every problem names the file and the field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read the policy ({e.strerror})", path=str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML: {e}", path=str(p)) from None
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        raise InputError(f"bad policy: {describe_errors(e)}", path=str(p)) from None


@dataclass(frozen=True)
class GateCase:
    """One blocking case (or an entry with no case) and its verdict."""

    entry: int
    operator: str
    provider: str
    variant: str
    shape: dict[str, Any]
    dtype: str
    mode: str
    metric: str
    machine: str
    gpu: str | None
    passed: bool
    reason: str  # ok, slower, missing, failed, incorrect, no data, no baseline
    threshold: float
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    p: float | None = None


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict with every blocking case behind it."""

    passed: bool
    baseline: str
    candidate: str
    policy: str
    cases: list[GateCase] = field(default_factory=list)

    @property
    def failures(self) -> list[GateCase]:
        return [c for c in self.cases if not c.passed]


def _match(value: str | None, patterns: list[str] | None) -> bool:
    if patterns is None:
        return True
    v = (value or "").lower()
    return any(fnmatch.fnmatch(v, p.lower()) for p in patterns)


def resolve_build(store: Store, ref: str) -> list[Any]:
    """Runs named by BUILD: the newest run per machine of that build.

    BUILD is ``version:X`` (a Triton version), ``commit:PREFIX`` (a Triton commit prefix),
    ``run:PREFIX`` (a run UUID prefix), or bare: an exact Triton version first, then a run UUID
    prefix, then a commit prefix; a bare value matching two kinds is refused as ambiguous.
    """
    ref = ref.strip()
    kind, _, value = (
        ref.partition(":")
        if ref.split(":", 1)[0] in ("version", "commit", "run")
        else ("", "", ref)
    )
    if not value:
        raise UsageError(f"empty build reference {ref!r}; give a Triton version, commit or run id")
    runs = store.runs.find(limit=None)
    low = value.lower()
    by_kind = {
        "version": [r for r in runs if r.triton_version == value],
        "run": [r for r in runs if len(low) >= 4 and r.uuid.startswith(low)],
        "commit": [
            r for r in runs if len(low) >= 4 and (r.triton_commit or "").lower().startswith(low)
        ],
    }
    if kind:
        chosen = by_kind[kind]
    else:
        kinds = [k for k in ("version", "run", "commit") if by_kind[k]]
        if len(kinds) > 1:
            raise UsageError(
                f"build {ref!r} matches a {kinds[0]} and a {kinds[1]}; "
                f"write {kinds[0]}:{value} or {kinds[1]}:{value}"
            )
        chosen = by_kind[kinds[0]] if kinds else []
    if not chosen:
        raise NotFoundError(
            f"no run matches build {ref!r}; give a Triton version (3.9.0), a "
            "commit prefix or a run id prefix (`tritonwatch runs` lists them)"
        )
    newest: dict[int, Any] = {}
    for r in chosen:  # runs() is newest first
        newest.setdefault(r.machine_id, r)
    return list(newest.values())


def _key(r: ResultRow) -> tuple[str, str, str, str, str, str]:
    return (r.operator, r.provider, r.variant, canonical_shape(r.shape), r.dtype, r.mode)


def evaluate(
    store: Store, policy: Policy, baseline: str, candidate: str, *, policy_name: str = "policy"
) -> GateResult:
    """Apply ``policy`` to the candidate build against the baseline build."""
    base_runs = {r.machine_id: r for r in resolve_build(store, baseline)}
    cand_runs = {r.machine_id: r for r in resolve_build(store, candidate)}
    details = {r.uuid: store.runs.get(r.uuid) for r in [*base_runs.values(), *cand_runs.values()]}
    d = policy.gate
    cases: list[GateCase] = []
    for i, e in enumerate(policy.block):
        metric = e.metric or d.metric
        thr = e.threshold if e.threshold is not None else d.threshold
        n_before = len(cases)
        for mid in sorted(set(base_runs) | set(cand_runs)):
            b, c = base_runs.get(mid), cand_runs.get(mid)
            any_run = b or c
            if any_run is None:
                continue
            gpu, machine = any_run.gpu_model, any_run.machine
            if e.gpus is not None and not (_match(gpu, e.gpus) or _match(machine, e.gpus)):
                continue

            def covered(r: Any, metric: str = metric, e: BlockEntry = e) -> bool:
                return (
                    r.metric == metric
                    and _match(r.operator, [e.operator])
                    and _match(r.provider, e.providers)
                    and _match(r.variant, e.variants)
                    and _match(r.dtype, e.dtypes)
                    and _match(r.mode, e.modes)
                )

            base = {_key(r): r for r in details[b.uuid].results if covered(r)} if b else {}
            cand = {_key(r): r for r in details[c.uuid].results if covered(r)} if c else {}
            for k in sorted(set(base) | set(cand)):
                br, cr = base.get(k), cand.get(k)
                ref = cr or br
                if ref is None:
                    continue
                common = dict(
                    entry=i,
                    operator=ref.operator,
                    provider=ref.provider,
                    variant=ref.variant,
                    shape=ref.shape,
                    dtype=ref.dtype,
                    mode=ref.mode,
                    metric=metric,
                    machine=machine,
                    gpu=gpu,
                    threshold=thr,
                )
                cases.append(_verdict(br, cr, d, thr, common))
        if len(cases) == n_before and d.require_coverage:
            cases.append(
                GateCase(
                    entry=i,
                    operator=e.operator,
                    provider=",".join(e.providers or ["*"]),
                    variant="",
                    shape={},
                    dtype=",".join(e.dtypes or ["*"]),
                    mode=",".join(e.modes or ["*"]),
                    metric=metric,
                    machine=",".join(e.gpus or ["*"]),
                    gpu=None,
                    passed=False,
                    reason="no data",
                    threshold=thr,
                )
            )
    return GateResult(
        passed=all(c.passed for c in cases),
        baseline=baseline,
        candidate=candidate,
        policy=policy_name,
        cases=cases,
    )


def _verdict(br: Any, cr: Any, d: GateDefaults, thr: float, common: dict[str, Any]) -> GateCase:
    if cr is None:
        return GateCase(passed=False, reason="missing", **common)
    if cr.status == "error":
        return GateCase(passed=False, reason="failed", **common)
    if cr.status == "incorrect" or (d.require_correct and cr.correct is False):
        return GateCase(passed=False, reason="incorrect", **common)
    if cr.status != "ok":
        return GateCase(passed=False, reason=cr.status, **common)
    if br is None or br.status != "ok" or br.value is None or cr.value is None:
        return GateCase(passed=True, reason="no baseline", **common)
    bs = br.samples if br.samples is not None and br.samples.size else [br.value]
    cs = cr.samples if cr.samples is not None and cr.samples.size else [cr.value]
    ci = ratio_of_medians_ci([np.asarray(bs)], [np.asarray(cs)], n_boot=1000)
    p = mann_whitney(bs, cs).p if len(bs) > 1 and len(cs) > 1 else None
    worse = ci.ratio - 1 if cr.better == "lower" else 1 / ci.ratio - 1
    # without raw samples there is nothing to test: the threshold alone decides
    significant = p is None or p < d.alpha
    slower = worse > thr and significant
    return GateCase(
        passed=not slower,
        reason="slower" if slower else "ok",
        ratio=ci.ratio,
        ci=(ci.low, ci.high),
        p=p,
        **common,
    )
