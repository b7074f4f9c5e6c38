"""A/B comparison results: per case both medians, the time ratio with its CI, a p-value, the
smallest change the case could have detected, and a verdict; geometric-mean speedups on top.

Two designs feed it. A measured A/B (``tritonwatch compare --a --b``) times each case in ABBA
blocks and passes one log time ratio per block, and which worker pair timed it: the ratio, CI
and p then come from the variation *between* independent units (blocks, or with several worker
pairs the pairs' means; a t-test with ``units - 1`` degrees of freedom), which carries the slow
drift and process-to-process offsets that within-run samples understate. Two stored runs (``--runs``)
have no blocks: a bootstrap CI and a Mann-Whitney test on the raw samples, as before.

Pure: takes samples, returns objects whose statistics are computed on first use. The method and
its thresholds are explained in ``docs/compare.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy import special as _special

from .stats import benjamini_hochberg, geomean, mann_whitney, pooled_t, ratio_of_medians_ci

ALPHA = 0.05  # false-discovery rate across a comparison's cases
N_BOOT = 1000
POWER = 0.8  # the minimum detectable effect is the change found this often at level ALPHA
MIN_BLOCKS = 4  # sequential stopping looks only from here (3 degrees of freedom)
STOP_LEVEL = 0.99  # the interval a sequential decision must clear (stricter than the verdict's)
# Before its planned blocks, a case stops as too noisy only if its projected detectable change
# is this many times the threshold (see stop_rule).
HOPELESS = 1.5
# An undecided case showing a change gets more blocks while they could find a change of the size
# it shows, up to this many times the threshold (see stop_rule).
WORTH = 2.0
VERDICTS = ("slower", "faster", "same", "incorrect", "failed")


@dataclass(frozen=True)
class Side:
    """What one build produced for one case: a status and its samples, one array per round.

    ``status`` is the worker's (ok, incorrect, error, skipped); ``rounds`` hold the timings in
    milliseconds, one array per interleaved round (a stored run gives one).
    """

    status: str
    rounds: tuple[np.ndarray, ...] = ()
    error: str | None = None

    @cached_property
    def samples(self) -> np.ndarray:
        if not self.rounds:
            return np.empty(0)
        a = np.concatenate([np.asarray(r, dtype=np.float64) for r in self.rounds])
        return a[np.isfinite(a)]

    @property
    def usable(self) -> bool:
        return self.status == "ok" and self.samples.size > 0

    @cached_property
    def median(self) -> float | None:
        return float(np.median(self.samples)) if self.usable else None


@dataclass(frozen=True)
class CaseKey:
    """Identifies a case on both sides: what a series is made of, less the metric."""

    operator: str
    provider: str
    variant: str
    shape: tuple[tuple[str, Any], ...]
    dtype: str
    mode: str = "fwd"

    @classmethod
    def of(
        cls,
        operator: str,
        provider: str,
        variant: str,
        shape: dict[str, Any],
        dtype: str,
        mode: str = "fwd",
    ) -> CaseKey:
        return cls(operator, provider, variant, tuple(shape.items()), dtype, mode)

    @property
    def shape_dict(self) -> dict[str, Any]:
        return dict(self.shape)

    @property
    def provider_key(self) -> str:
        return f"{self.provider}/{self.variant}" if self.variant else self.provider

    @property
    def id(self) -> str:
        dims = ",".join(f"{k}={v}" for k, v in self.shape)
        return f"{self.operator}[{dims}]/{self.dtype}/{self.provider_key}"

    def seed(self) -> int:
        """A bootstrap seed from the case, so an interval never depends on case order."""
        h = hashlib.sha256(json.dumps([self.id, self.mode]).encode()).digest()
        return int.from_bytes(h[:4], "little")


def _t_quantile(q: float, df: int) -> float:
    return float(_special.stdtrit(df, q))


@dataclass(frozen=True)
class BlockStats:
    """The mean log ratio (B over A) of ``n`` blocks, its standard error and t-test p-value."""

    n: int
    mean: float
    se: float
    p: float

    @classmethod
    def of(cls, blocks: Sequence[float] | np.ndarray) -> BlockStats:
        d = np.asarray(blocks, dtype=np.float64)
        d = d[np.isfinite(d)]
        n = int(d.size)
        if n < 2:
            raise ValueError("block statistics need at least two blocks")
        mean = float(d.mean())
        se = float(d.std(ddof=1) / np.sqrt(n))
        if se == 0:
            return cls(n, mean, 0.0, 0.0 if mean else 1.0)
        t = mean / se
        return cls(n, mean, se, float(2 * _special.stdtr(n - 1, -abs(t))))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The ratio's two-sided ``level`` interval (t with n - 1 degrees of freedom)."""
        h = _t_quantile(0.5 + level / 2, self.n - 1) * self.se
        return (float(np.exp(self.mean - h)), float(np.exp(self.mean + h)))

    def mde(self, alpha: float = ALPHA, power: float = POWER) -> float:
        """The smallest relative change a two-sided test at ``alpha`` finds with ``power``."""
        df = self.n - 1
        k = _t_quantile(1 - alpha / 2, df) + _t_quantile(power, df)
        return float(np.expm1(k * self.se))


def units(
    blocks: Sequence[float] | np.ndarray, groups: Sequence[int] | np.ndarray = ()
) -> np.ndarray:
    """What the verdict treats as independent: each block's log ratio or, with ``groups`` (the
    worker pair that timed each block), each pair's mean.

    A worker process keeps an offset of its own for as long as it lives (measured up to ~4% on
    a CPU and ~2% on an H200 for a case, in A/A: memory layout, where its threads run); every
    block a pair times shares it, so only pairs are independent of one another.
    """
    d = np.asarray(blocks, dtype=np.float64)
    ok = np.isfinite(d)
    if not len(groups):
        return d[ok]
    g = np.asarray(groups)[ok]
    d = d[ok]
    return np.array([d[g == j].mean() for j in np.unique(g)], dtype=np.float64)


def block_decision(blocks: Sequence[float], threshold: float, groups: Sequence[int] = ()) -> str:
    """Sequential stopping: ``slower``/``faster`` when the STOP_LEVEL interval lies wholly beyond
    the threshold, ``same`` when it lies wholly inside it, else ``undecided``.

    Called after every block from MIN_BLOCKS on. Stopping only on an interval that clears the
    threshold at 99% (not the verdict's 95%) keeps the repeated looks from inflating the
    false-positive rate; the verdict itself is decided afterwards, as for any case.
    """
    u = units(blocks, groups)
    if len(u) < MIN_BLOCKS:
        return "undecided"
    st = BlockStats.of(u)
    lo, hi = st.interval(STOP_LEVEL)
    if lo > 1 + threshold:
        return "slower"
    if hi < 1 - threshold:
        return "faster"
    if threshold > 0 and lo > 1 - threshold and hi < 1 + threshold:
        return "same"
    return "undecided"


def stop_rule(
    blocks: Sequence[float],
    threshold: float,
    planned: int,
    most: int,
    groups: Sequence[int] = (),
) -> str | None:
    """After a round of blocks: why the case stops, or None if more blocks are worth it
    (the comparison's budget aside).

    ``slower``/``faster``/``same`` when :func:`block_decision` says so; ``undecided`` at
    ``most`` blocks; ``too noisy`` when even ``most`` blocks could not find the change worth
    looking for (:func:`worth_extending`). That change is the threshold, or, for a case that
    shows more, the change it shows plus one standard error, at most WORTH times the threshold:
    a case that shows +1% at a 0.5% threshold is worth the blocks that could find 1% even if
    they could not settle "same" within 0.5% (measured on an H200: a planted 1% in 36-68 us
    copies was missed where such cases stopped at their planned blocks). A case that shows no
    change keeps the threshold, so an A/A spends what it did. Before its ``planned`` blocks a
    case stops as too noisy only when the projection misses that change by HOPELESS times:
    from four units it is itself rough, and a case near the line gets its planned blocks.
    """
    decision = block_decision(blocks, threshold, groups)
    if decision != "undecided":
        return decision
    if len(blocks) >= most:
        return "undecided"
    u = units(blocks, groups)
    if len(u) < MIN_BLOCKS:
        return None
    st = BlockStats.of(u)
    wanted = min(max(threshold, float(np.expm1(abs(st.mean) + st.se))), WORTH * threshold)
    margin = 1.0 if len(blocks) >= planned else HOPELESS
    if not worth_extending(blocks, wanted * margin, most, groups):
        return "too noisy"
    return None


def worth_extending(
    blocks: Sequence[float], threshold: float, max_blocks: int, groups: Sequence[int] = ()
) -> bool:
    """Could more blocks, up to ``max_blocks``, find a change of ``threshold`` (the change
    :func:`stop_rule` looks for)? Only if the minimum detectable effect projected to
    ``max_blocks`` comes within it; a case noisier than that stays undecided however long it
    runs, and its budget is better spent on the others.

    Without ``groups`` the standard error shrinks as one over the square root of the blocks.
    With them, more blocks shrink only the pairs' block-to-block noise, not the offsets of the
    worker pairs themselves: the projection keeps that part (estimated from how much more the
    pairs' means differ than their blocks explain).
    """
    if len(blocks) < 2 or len(blocks) >= max_blocks:
        return False
    if not len(groups):
        st = BlockStats.of(blocks)
        se = st.se * float(np.sqrt(st.n / max_blocks))
        return BlockStats(max_blocks, st.mean, se, st.p).mde() <= threshold
    d, g = np.asarray(blocks, dtype=np.float64), np.asarray(groups)
    ok = np.isfinite(d)
    d, g = d[ok], g[ok]
    u = units(d, g)
    k = len(u)
    if k < 2:
        return False
    per = len(d) / k
    spread = [d[g == j] - d[g == j].mean() for j in np.unique(g)]
    df = sum(len(r) - 1 for r in spread)
    var_u = float(u.var(ddof=1))
    # Each pair has one block so far: all of the spread may be block noise (optimistic).
    within = sum(float(r @ r) for r in spread) / df if df else var_u * per
    between = max(0.0, var_u - within / per)
    se = float(np.sqrt((between + within / (max_blocks / k)) / k))
    return BlockStats(k, float(u.mean()), se, 1.0).mde() <= threshold


@dataclass
class CaseComparison:
    """One case measured by both builds. ``ratio`` is B's time over A's (> 1: B is slower).

    ``q`` is filled by :class:`Comparison` (Benjamini-Hochberg over all its cases); alone, a case
    uses its own p-value. ``blocks`` holds one log time ratio per ABBA block of a measured A/B
    (empty for two stored runs), and ``groups`` the worker pair that timed each (empty: one
    pair); with two or more :func:`units`, the statistics are theirs.
    """

    key: CaseKey
    a: Side
    b: Side
    threshold: float
    alpha: float = ALPHA
    q: float | None = None
    blocks: tuple[float, ...] = ()
    groups: tuple[int, ...] = ()

    @cached_property
    def block_stats(self) -> BlockStats | None:
        if not self.measured:
            return None
        u = units(self.blocks, self.groups)
        return BlockStats.of(u) if len(u) >= 2 else None

    @property
    def measured(self) -> bool:
        return self.a.usable and self.b.usable

    @cached_property
    def ratio(self) -> float | None:
        if not self.measured or not self.a.median:
            return None
        if self.block_stats is not None:  # geometric mean of the blocks' ratios
            return float(np.exp(self.block_stats.mean))
        return float(self.b.median) / float(self.a.median)  # type: ignore[arg-type]

    @property
    def speedup(self) -> float | None:
        """A's time over B's (> 1: B is faster)."""
        return 1.0 / self.ratio if self.ratio else None

    @cached_property
    def ci(self) -> tuple[float, float] | None:
        """95% percentile-bootstrap CI of the ratio, resampling rounds, then samples in a round.

        Two stages so that a difference between worker processes (rounds) widens the interval
        instead of hiding in thousands of samples; with one round it is the ordinary bootstrap.
        With blocks: the t interval of the blocks' mean log ratio.
        """
        if not self.measured:
            return None
        if self.block_stats is not None:
            return self.block_stats.interval(0.95)
        ra = [r[np.isfinite(r)] for r in (np.asarray(x, dtype=np.float64) for x in self.a.rounds)]
        rb = [r[np.isfinite(r)] for r in (np.asarray(x, dtype=np.float64) for x in self.b.rounds)]
        ra, rb = [r for r in ra if r.size], [r for r in rb if r.size]
        if len(ra) == 1 and len(rb) == 1:
            got = ratio_of_medians_ci(ra[0], rb[0], n_boot=N_BOOT, seed=self.key.seed())
        else:
            got = ratio_of_medians_ci(ra, rb, n_boot=N_BOOT, seed=self.key.seed())
        return (got.low, got.high)

    @cached_property
    def p(self) -> float | None:
        """Two-sided p: a one-sample t-test of the block ratios (with blocks), else the
        Mann-Whitney U test of A's and B's raw samples."""
        if not self.measured:
            return None
        if self.block_stats is not None:
            return self.block_stats.p
        return mann_whitney(self.a.samples, self.b.samples).p

    @cached_property
    def p_rounds(self) -> float | None:
        """Two-sided p of a pooled t-test on the log medians of the rounds (None below two
        rounds a side): is the change large against the round-to-round variation?

        Samples within one worker process are not independent of that process (memory
        placement, clocks, a neighbour's load during that round); a test on raw samples alone
        then calls round-to-round noise a change.
        """
        if not self.measured or self.block_stats is not None:
            return None  # blocks already test against the variation between them
        ma = [float(np.median(r)) for r in self.a.rounds if np.size(r)]
        mb = [float(np.median(r)) for r in self.b.rounds if np.size(r)]
        if len(ma) < 2 or len(mb) < 2 or min(ma + mb) <= 0:
            return None
        return pooled_t(np.log(ma), np.log(mb)).p

    @cached_property
    def mde(self) -> float | None:
        """The minimum detectable effect: the smallest relative change (0.01 = 1%) this case's
        noise let the test find with 80% power at 5%. A "same" verdict means "no change larger
        than this"; with blocks from their t statistics, else from the CI's half-width."""
        if self.block_stats is not None:
            return self.block_stats.mde(self.alpha)
        ci = self.ci
        if ci is None or ci[0] <= 0:
            return None
        half = (np.log(ci[1]) - np.log(ci[0])) / 2
        z = _special.ndtri(1 - self.alpha / 2)
        return float(np.expm1(half * (z + _special.ndtri(POWER)) / z))

    @property
    def significant(self) -> bool:
        """The raw-sample test (FDR-adjusted), the interval and the rounds all agree."""
        p = self.q if self.q is not None else self.p
        ci = self.ci
        if p is None or ci is None or p >= self.alpha:
            return False
        if self.p_rounds is not None and self.p_rounds >= self.alpha:
            return False
        return ci[0] > 1.0 or ci[1] < 1.0  # the interval agrees with the test

    @cached_property
    def verdict(self) -> str:
        """slower / faster (significant AND beyond the threshold), same, incorrect, failed."""
        if "incorrect" in (self.a.status, self.b.status):
            return "incorrect"
        if not self.measured or self.ratio is None:
            return "failed"
        if self.significant and self.ratio >= 1.0 + self.threshold:
            return "slower"
        if self.significant and self.ratio <= 1.0 - self.threshold:
            return "faster"
        return "same"

    @property
    def reason(self) -> str | None:
        """Why a case is incorrect or failed, naming the side."""
        bad = [(n, s) for n, s in (("A", self.a), ("B", self.b)) if not s.usable]
        bad.sort(key=lambda x: x[1].status == "skipped")  # the failure before its consequence
        if bad:
            name, side = bad[0]
            return f"{name}: {side.error or side.status}"
        return None

    def to_json(self) -> dict[str, Any]:
        """The stored and exported row (the dashboard and ``--format json`` show it as is)."""
        ci = self.ci
        return {
            "operator": self.key.operator,
            "provider": self.key.provider,
            "variant": self.key.variant,
            "shape": self.key.shape_dict,
            "dtype": self.key.dtype,
            "a_median": self.a.median,
            "b_median": self.b.median,
            "ratio": self.ratio,
            "ci": list(ci) if ci else None,
            "p": self.p,
            "verdict": self.verdict,
            "reason": self.reason,
            "q": self.q,
            "p_rounds": self.p_rounds,
            "n_a": int(self.a.samples.size),
            "n_b": int(self.b.samples.size),
            "mde": self.mde,
            "blocks": len(self.blocks),
            "workers": len(set(self.groups)) or (1 if self.blocks else 0),
        }


@dataclass(frozen=True)
class GeoSpeedup:
    """Geometric mean of A/B speedups (> 1: B is faster) over the measured cases of a group."""

    group: str
    speedup: float
    n: int


@dataclass
class Comparison:
    """All cases of an A/B comparison; verdict counts and geomeans are computed on first use."""

    cases: list[CaseComparison]
    threshold: float
    alpha: float = ALPHA
    label_a: str = "A"
    label_b: str = "B"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._q_done = False

    def _fill_q(self) -> None:
        if self._q_done:
            return
        measured = [c for c in self.cases if c.measured]
        if measured:
            q = benjamini_hochberg([c.p if c.p is not None else 1.0 for c in measured])
            for c, v in zip(measured, q, strict=True):
                c.q = float(v)
                c.__dict__.pop("verdict", None)
        self._q_done = True

    @property
    def results(self) -> list[CaseComparison]:
        self._fill_q()
        return self.cases

    @cached_property
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(VERDICTS, 0)
        for c in self.results:
            out[c.verdict] += 1
        return out

    def by_verdict(self, verdict: str) -> list[CaseComparison]:
        """Cases with ``verdict``, the largest change first."""
        rows = [c for c in self.results if c.verdict == verdict]
        return sorted(rows, key=lambda c: -abs(np.log(c.ratio)) if c.ratio else 0.0)

    @cached_property
    def geomean(self) -> GeoSpeedup | None:
        sp = [c.speedup for c in self.results if c.speedup]
        return GeoSpeedup("overall", geomean(sp), len(sp)) if sp else None

    @cached_property
    def per_operator(self) -> list[GeoSpeedup]:
        groups: dict[str, list[float]] = {}
        for c in self.results:
            if c.speedup:
                groups.setdefault(c.key.operator, []).append(c.speedup)
        return [GeoSpeedup(op, geomean(v), len(v)) for op, v in sorted(groups.items())]

    @property
    def has_regression(self) -> bool:
        return self.counts["slower"] > 0

    def summary(self) -> dict[str, Any]:
        """The stored summary: flat keys the dashboard shows as a table."""
        g = self.geomean
        return {
            "cases": len(self.cases),
            **self.counts,
            "geomean_speedup": g.speedup if g else None,
            "per_operator": {x.group: round(x.speedup, 4) for x in self.per_operator},
            "threshold": self.threshold,
            "alpha": self.alpha,
            # of the "same": those that could not have seen a change of the threshold's size
            "too_noisy": sum(too_noisy(c.mde, self.threshold) for c in self.by_verdict("same")),
            **self.meta,
        }


def too_noisy(mde: Any, threshold: Any) -> bool:
    """A case whose smallest detectable change exceeds the threshold: its ``same`` rules out
    nothing that matters (the reports show it as ``too noisy``)."""
    return (
        isinstance(mde, (int, float))
        and isinstance(threshold, (int, float))
        and float(mde) > float(threshold)
    )


def json_safe(v: Any) -> Any:
    """NaN and inf as None (JSON has neither; PostgreSQL's json type refuses them)."""
    if isinstance(v, float):
        return v if np.isfinite(v) else None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


Pair = (
    tuple[CaseKey, Side, Side]
    | tuple[CaseKey, Side, Side, Sequence[float]]
    | tuple[CaseKey, Side, Side, Sequence[float], Sequence[int]]
)


def compare_sides(
    pairs: Sequence[Pair],
    *,
    threshold: float,
    alpha: float = ALPHA,
    label_a: str = "A",
    label_b: str = "B",
    meta: dict[str, Any] | None = None,
) -> Comparison:
    """A :class:`Comparison` of the cases in ``pairs`` (nothing is computed until asked).

    Parameters
    ----------
    pairs : sequence of (CaseKey, Side, Side), (..., blocks) or (..., blocks, groups)
        Each case with what build A and build B produced, and for a measured A/B the log time
        ratio (B over A) of each ABBA block and the worker pair that timed it.
    threshold : float
        Practical threshold: a ratio within ``1 +/- threshold`` is "same" however significant.
    alpha : float
        False-discovery rate for the Benjamini-Hochberg adjusted Mann-Whitney p-values.

    Returns
    -------
    Comparison
    """
    if not 0 <= threshold < 1:
        raise ValueError("threshold must be in [0, 1)")
    cases = [
        CaseComparison(
            p[0],
            p[1],
            p[2],
            threshold,
            alpha,
            blocks=tuple(p[3]) if len(p) > 3 else (),
            groups=tuple(p[4]) if len(p) > 4 else (),
        )
        for p in pairs
    ]
    return Comparison(cases, threshold, alpha, label_a, label_b, dict(meta or {}))
