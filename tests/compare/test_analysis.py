"""A/B statistics: verdicts need significance and the threshold; geomeans; FDR; rounds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from tritonwatch.analysis.compare import CaseKey, Side, compare_sides


def _key(op: str = "matmul", n: int = 256, provider: str = "triton") -> CaseKey:
    return CaseKey.of(op, provider, "", {"N": n}, "fp16")


def _side(rng: np.random.Generator, level: float, *, rounds: int = 2, n: int = 200) -> Side:
    # GPU-like noise: lognormal jitter plus a few slow outliers.
    out = []
    for _ in range(rounds):
        x = level * np.exp(0.01 * rng.standard_normal(n))
        x[rng.random(n) < 0.02] *= 1.3
        out.append(x)
    return Side("ok", tuple(out))


def test_planted_slowdown_is_slower_and_identical_builds_are_same() -> None:
    rng = np.random.default_rng(1)
    pairs = [
        (_key(n=1), _side(rng, 1.0), _side(rng, 1.05)),
        (_key(n=2), _side(rng, 1.0), _side(rng, 1.0)),
        (_key(n=3), _side(rng, 1.0), _side(rng, 0.9)),
    ]
    cmp = compare_sides(pairs, threshold=0.02)
    verdicts = [c.verdict for c in cmp.results]
    assert verdicts == ["slower", "same", "faster"]
    slow = cmp.results[0]
    assert slow.ratio == pytest.approx(1.05, rel=0.01)
    lo, hi = slow.ci  # type: ignore[misc]
    assert 1.0 < lo < slow.ratio < hi < 1.1
    assert slow.p is not None and slow.p < 1e-6 and slow.q is not None and slow.q >= slow.p
    assert cmp.counts == {"slower": 1, "faster": 1, "same": 1, "incorrect": 0, "failed": 0}
    assert cmp.has_regression


def test_significant_but_below_threshold_is_same() -> None:
    rng = np.random.default_rng(2)
    a, b = _side(rng, 1.0, n=5000), _side(rng, 1.01, n=5000)
    c = compare_sides([(_key(), a, b)], threshold=0.02).results[0]
    assert c.p is not None and c.p < 1e-10  # clearly significant ...
    assert c.verdict == "same"  # ... but 1% is below the 2% practical threshold
    assert compare_sides([(_key(), a, b)], threshold=0.005).results[0].verdict == "slower"


def test_beyond_threshold_but_not_significant_is_same() -> None:
    rng = np.random.default_rng(3)
    a = Side("ok", (1.0 * np.exp(0.3 * rng.standard_normal(8)),))
    b = Side("ok", (1.05 * np.exp(0.3 * rng.standard_normal(8)),))
    c = compare_sides([(_key(), a, b)], threshold=0.02).results[0]
    assert c.p is not None and c.p > 0.05 and c.verdict == "same"


def test_a_round_that_disagrees_widens_the_interval() -> None:
    """Two-stage bootstrap: a worker process 3% off shows in the CI, not hidden by n."""
    rng = np.random.default_rng(4)
    steady = Side("ok", tuple(1.0 + 1e-4 * rng.standard_normal(500) for _ in range(3)))
    shifted = Side(
        "ok",
        (
            1.00 + 1e-4 * rng.standard_normal(500),
            1.00 + 1e-4 * rng.standard_normal(500),
            1.03 + 1e-4 * rng.standard_normal(500),
        ),
    )
    pooled = Side("ok", (np.concatenate(shifted.rounds),))
    two_stage = compare_sides([(_key(), steady, shifted)], threshold=0.02).results[0].ci
    one_stage = compare_sides([(_key(), steady, pooled)], threshold=0.02).results[0].ci
    assert two_stage is not None and one_stage is not None
    assert one_stage[1] < 1.01 < 1.02 < two_stage[1]


def test_incorrect_and_failed_cases() -> None:
    rng = np.random.default_rng(5)
    ok = _side(rng, 1.0)
    pairs = [
        (_key(n=1), ok, Side("incorrect", (), "max error 0.5 exceeds tolerance")),
        (_key(n=2), Side("error", (), "worker crashed (signal SIGSEGV)"), ok),
        (_key(n=3), ok, Side("ok", ())),
    ]
    cmp = compare_sides(pairs, threshold=0.02)
    assert [c.verdict for c in cmp.results] == ["incorrect", "failed", "failed"]
    assert cmp.results[0].reason == "B: max error 0.5 exceeds tolerance"
    assert cmp.results[1].reason == "A: worker crashed (signal SIGSEGV)"
    row = cmp.results[0].to_json()
    assert row["ratio"] is None and row["ci"] is None and row["p"] is None
    assert cmp.geomean is None and not cmp.has_regression


def test_geomean_speedup_per_operator_and_overall() -> None:
    def exact(v: float) -> Side:
        return Side("ok", (np.full(50, v),))

    pairs = [
        (_key("matmul", 1), exact(1.0), exact(0.5)),  # B 2x faster
        (_key("matmul", 2), exact(1.0), exact(2.0)),  # B 2x slower
        (_key("softmax", 1), exact(2.0), exact(1.0)),  # B 2x faster
    ]
    cmp = compare_sides(pairs, threshold=0.02)
    per = {g.group: (g.speedup, g.n) for g in cmp.per_operator}
    assert per["matmul"] == (pytest.approx(1.0), 2)
    assert per["softmax"] == (pytest.approx(2.0), 1)
    assert cmp.geomean is not None and cmp.geomean.speedup == pytest.approx(2 ** (1 / 3))
    s = cmp.summary()
    assert s["cases"] == 3 and s["geomean_speedup"] == pytest.approx(2 ** (1 / 3))
    assert s["per_operator"] == {"matmul": 1.0, "softmax": 2.0}


def test_fdr_across_cases_turns_a_lone_borderline_p_into_same() -> None:
    """Among many A/A cases, one with p just under 0.05 is not called once q is used."""
    rng = np.random.default_rng(6)
    pairs = []
    for i in range(40):
        a = Side("ok", (1.0 * np.exp(0.02 * rng.standard_normal(30)),))
        b = Side("ok", (1.0 * np.exp(0.02 * rng.standard_normal(30)),))
        pairs.append((_key(n=i), a, b))
    cmp = compare_sides(pairs, threshold=0.0)  # no practical threshold: only the test guards
    raw = sum(1 for c in cmp.results if c.p is not None and c.p < 0.05)
    called = sum(1 for c in cmp.results if c.verdict != "same")
    assert called <= raw and called <= 1


def test_results_are_lazy_and_json_is_finite() -> None:
    rng = np.random.default_rng(7)
    cmp = compare_sides([(_key(), _side(rng, 1.0), _side(rng, 1.0))], threshold=0.02)
    c = cmp.cases[0]
    assert "ci" not in c.__dict__ and "p" not in c.__dict__  # nothing computed yet
    row = cmp.results[0].to_json()
    assert set(row) >= {
        "operator",
        "provider",
        "variant",
        "shape",
        "dtype",
        "a_median",
        "b_median",
        "ratio",
        "ci",
        "p",
        "verdict",
    }
    assert row["shape"] == {"N": 256} and len(row["ci"]) == 2


def test_threshold_must_be_a_fraction() -> None:
    with pytest.raises(ValueError):
        compare_sides([], threshold=2.0)


def test_a_change_must_stand_out_against_round_to_round_noise() -> None:
    """Raw samples say 3% slower, but the rounds of one build differ by 2%: not a verdict.
    The same 3% with steady rounds is one."""
    rng = np.random.default_rng(8)

    def rounds(*levels: float) -> Side:
        return Side("ok", tuple(v * (1 + 1e-3 * rng.standard_normal(400)) for v in levels))

    noisy = compare_sides(
        [(_key(), rounds(1.00, 1.02), rounds(1.05, 1.03))], threshold=0.02
    ).results[0]
    assert noisy.p is not None and noisy.p < 1e-10 and noisy.ci is not None and noisy.ci[0] > 1
    assert noisy.p_rounds is not None and noisy.p_rounds > 0.05
    assert noisy.verdict == "same"
    steady = compare_sides(
        [(_key(), rounds(1.00, 1.001), rounds(1.03, 1.031))], threshold=0.02
    ).results[0]
    assert steady.p_rounds is not None and steady.p_rounds < 0.01
    assert steady.verdict == "slower"


# -- blocks: the measured A/B's design ----------------------------------------------------------
def test_blocks_not_raw_samples_decide_when_the_process_drifts() -> None:
    """Thousands of raw samples say 3% (Mann-Whitney p ~ 0); the blocks disagree with one
    another by 4%: the verdict follows the blocks, and its detectable change says why."""
    blocks = list(np.log([1.07, 0.99, 1.06, 0.995, 1.05, 1.01]))  # 3% on average, +-3.3%
    a = Side("ok", tuple(np.full(500, 1.0) for _ in range(12)))
    b = Side("ok", tuple(np.full(500, float(np.exp(d))) for d in blocks for _ in range(2)))
    raw = compare_sides([(_key(), a, b)], threshold=0.02).results[0]
    assert raw.p is not None and raw.p < 1e-6
    c = compare_sides([(_key(), a, b, blocks)], threshold=0.02).results[0]
    assert c.p is not None and c.p > 0.05 and c.verdict == "same"
    assert c.ratio == pytest.approx(float(np.exp(np.mean(blocks))))
    assert c.mde is not None and c.mde > 0.03  # "same" here cannot rule out a 3% change
    assert c.to_json()["blocks"] == 6 and c.to_json()["mde"] == c.mde


def test_minimum_detectable_effect_is_what_the_test_finds_80_percent_of_the_time() -> None:
    """Plant exactly the reported MDE many times (held-out seeds): found about 80% of the time."""
    from tritonwatch.analysis.compare import BlockStats

    sd, k = 0.01, 8
    rng = np.random.default_rng(20261127)
    mde = BlockStats(k, 0.0, sd / np.sqrt(k), 1.0).mde()
    hits = 0
    trials = 2000
    for _ in range(trials):
        st = BlockStats.of(list(np.log1p(mde) + sd * rng.standard_normal(k)))
        hits += st.p < 0.05
    assert 0.74 < hits / trials < 0.86


def test_sequential_stopping_decides_clear_cases_and_waits_on_close_ones() -> None:
    from tritonwatch.analysis.compare import MIN_BLOCKS, block_decision

    assert block_decision([0.1, 0.1, 0.1], 0.02) == "undecided"  # fewer than MIN_BLOCKS
    steady = [0.0005, -0.0004, 0.0002, -0.0001]
    assert len(steady) == MIN_BLOCKS and block_decision(steady, 0.02) == "same"
    assert block_decision([0.1, 0.11, 0.09, 0.1], 0.02) == "slower"
    assert block_decision([-0.1, -0.11, -0.09, -0.1], 0.02) == "faster"
    close = [0.02, 0.025, 0.015, 0.02]  # 2% against a 2% threshold: neither
    assert block_decision(close, 0.02) == "undecided"


def _simulate(rng: np.random.Generator, ratio: float, sd: float, threshold: float) -> list:
    """The driver's loop on simulated blocks: stop when decided, else up to 3 x 8 blocks."""
    from tritonwatch.analysis.compare import block_decision

    blocks: list[float] = []
    while True:
        blocks.append(float(np.log(ratio) + sd * rng.standard_normal()))
        if block_decision(blocks, threshold) != "undecided" or len(blocks) >= 24:
            return blocks


@pytest.mark.parametrize("sd", [0.003, 0.01])
def test_a_a_with_sequential_stopping_keeps_its_false_positive_rate(sd: float) -> None:
    """Held-out seed and noise levels: 600 A/A cases, each stopped as the driver stops them,
    judged together (FDR): at most 1% flagged, though every case looked up to 21 times."""
    rng = np.random.default_rng(7_000_003)
    a = Side("ok", (np.ones(4),))
    pairs = [(_key(n=i), a, a, _simulate(rng, 1.0, sd, 0.02)) for i in range(600)]
    cmp = compare_sides(pairs, threshold=0.02)
    flagged = cmp.counts["slower"] + cmp.counts["faster"]
    assert flagged <= 6, flagged


def test_a_planted_3_percent_is_found_with_one_percent_block_noise() -> None:
    rng = np.random.default_rng(99_173)
    a = Side("ok", (np.ones(4),))
    pairs = [(_key(n=i), a, a, _simulate(rng, 1.03, 0.01, 0.02)) for i in range(300)]
    cmp = compare_sides(pairs, threshold=0.02)
    assert cmp.counts["slower"] / 300 >= 0.9, cmp.counts


def test_more_blocks_are_spent_only_where_they_could_settle_the_case() -> None:
    from tritonwatch.analysis.compare import worth_extending

    close = [0.02, 0.03, 0.01, 0.025, 0.015, 0.02, 0.028, 0.012]  # +2% +-0.7% at 2%
    assert worth_extending(close, 0.02, 24)
    noisy = [0.3, -0.2, 0.1, -0.25, 0.2, -0.1, 0.15, -0.3]  # +-22%: hopeless at 2%
    assert not worth_extending(noisy, 0.02, 24)
    assert not worth_extending(close, 0.02, 8)  # already at the most blocks allowed


def test_before_its_planned_blocks_a_case_stops_as_too_noisy_only_when_clearly_hopeless() -> None:
    """From four units the projection is rough: a case whose projected detectable change is
    just above the threshold (2.8% at 2%) gets its planned blocks, one far above it stops at
    the first look (a planted 3% in such a case was missed at four blocks)."""
    from tritonwatch.analysis.compare import stop_rule

    near = [0.04, -0.04, 0.04, -0.04]  # projected to 24 blocks: 2.8%
    assert stop_rule(near, 0.02, 8, 24) is None
    assert stop_rule(near * 2, 0.02, 8, 24) == "too noisy"  # at its planned 8: the usual rule
    assert stop_rule([0.1, -0.1, 0.1, -0.1], 0.02, 8, 24) == "too noisy"  # 6.9%
    assert stop_rule(near * 6, 0.02, 8, 24) == "undecided"  # the most it may get
    assert stop_rule([0.03, 0.031, 0.029, 0.03], 0.02, 8, 24) == "slower"
    assert stop_rule(near[:3], 0.02, 8, 24) is None  # no look before four units


def test_a_case_that_shows_a_change_gets_the_blocks_that_could_find_it() -> None:
    """At its planned blocks, a case whose noise could find 3.6% with all its blocks but not
    settle 2%: if it shows +3% it goes on (the change it shows is worth finding), if it shows
    nothing it stops as too noisy, as before (so an A/A costs what it did). On an H200 a
    planted 1% in short copies was missed at a 0.5% threshold by stopping such cases."""
    from tritonwatch.analysis.compare import stop_rule, worth_extending

    noise = [0.055, -0.055] * 4
    shows = [0.03 + x for x in noise]
    assert not worth_extending(shows, 0.02, 24) and worth_extending(shows, 0.04, 24)
    assert stop_rule(shows, 0.02, 8, 24) is None
    assert stop_rule(noise, 0.02, 8, 24) == "too noisy"
    assert stop_rule([-x for x in shows], 0.02, 8, 24) is None  # faster, alike
    # At most twice the threshold: a case too noisy to find even that still stops.
    assert stop_rule([0.03 + 2 * x for x in noise], 0.02, 8, 24) == "too noisy"


# -- worker pairs: a process's lasting offset ---------------------------------------------------
def _simulate_pairs(
    rng: np.random.Generator, ratio: float, sd: float, sd_proc: float, pairs: int
) -> tuple[list[float], tuple[int, ...]]:
    """The driver's loop over ``pairs`` worker pairs whose processes each keep an offset of
    ``sd_proc`` (so a pair's is sqrt(2) times that): a round is one block per pair."""
    from tritonwatch.analysis.compare import stop_rule

    offset = sd_proc * np.sqrt(2) * rng.standard_normal(pairs)
    blocks: list[float] = []
    groups: list[int] = []
    g: Sequence[int] = groups if pairs > 1 else ()
    while True:
        for j in rng.permutation(pairs):
            blocks.append(float(np.log(ratio) + offset[j] + sd * rng.standard_normal()))
            groups.append(int(j))
        if stop_rule(blocks, 0.02, 8, 24, g) is not None:
            break
    return blocks, tuple(g)


def test_units_are_the_pairs_means_when_blocks_come_from_several_pairs() -> None:
    from tritonwatch.analysis.compare import BlockStats, units

    # Two blocks per pair that agree within the pair; the pairs disagree by a few %.
    blocks = [0.03, 0.031, -0.01, -0.011, 0.02, 0.019, 0.0, 0.001]
    groups = [0, 0, 1, 1, 2, 2, 3, 3]
    assert units(blocks, groups) == pytest.approx([0.0305, -0.0105, 0.0195, 0.0005])
    assert list(units(blocks)) == blocks
    by_pair, by_block = BlockStats.of(units(blocks, groups)), BlockStats.of(blocks)
    assert by_pair.n == 4 and by_block.n == 8
    assert by_pair.interval(0.95)[0] < by_block.interval(0.95)[0]  # wider: 3 df, not 7
    c = compare_sides([(_key(), *[Side("ok", (np.ones(4),))] * 2, blocks, groups)], threshold=0.02)
    assert c.results[0].to_json()["workers"] == 4 and c.results[0].to_json()["blocks"] == 8


def test_a_process_offset_reads_as_a_change_with_one_pair_and_not_across_pairs() -> None:
    """Held-out seed: A/A where every worker process keeps a 2% offset of its own (measured
    up to ~4% on a CPU). With one pair, the pair's offset is called a change in a third of the
    cases or more; tested across four pairs, at most 2%."""
    a = Side("ok", (np.ones(4),))
    flagged = {}
    for n in (1, 4):
        rng = np.random.default_rng(31_337 + n)
        pairs = [(_key(n=i), a, a, *_simulate_pairs(rng, 1.0, 0.01, 0.02, n)) for i in range(300)]
        got = compare_sides(pairs, threshold=0.02).counts
        flagged[n] = got["slower"] + got["faster"]
    assert flagged[1] >= 90 and flagged[4] <= 6, flagged


def test_more_blocks_are_not_spent_where_only_more_pairs_would_help() -> None:
    from tritonwatch.analysis.compare import worth_extending

    # Four pairs, two blocks each: tight within a pair, 3% apart between pairs. More blocks
    # cannot shrink the pairs' own offsets below what a 2% threshold needs.
    blocks = [0.03, 0.031, -0.02, -0.021, 0.025, 0.024, -0.015, -0.014]
    groups = [0, 0, 1, 1, 2, 2, 3, 3]
    assert worth_extending(blocks, 0.02, 24)  # as if every block were its own unit
    assert not worth_extending(blocks, 0.02, 24, groups)
    # Pairs that agree, blocks that do not: more blocks help.
    noisy_blocks = [0.015, -0.015, 0.01, -0.01, 0.0125, -0.0125, 0.0075, -0.0075]
    assert worth_extending(noisy_blocks, 0.02, 24, groups)
