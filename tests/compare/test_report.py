"""Renderers: Markdown for a PR comment (summary, regressions, improvements, rest folded),
JSON per case, and the terminal table."""

from __future__ import annotations

import json

import numpy as np
from rich.console import Console

from tritonwatch.analysis.compare import CaseKey, Comparison, Side, compare_sides
from tritonwatch.report.compare import render_json, render_markdown, render_terminal


def _cmp() -> Comparison:
    def exact(v: float, n: int = 40) -> Side:
        rng = np.random.default_rng(int(v * 1000))
        return Side("ok", (v * (1 + 1e-4 * rng.standard_normal(n)),))

    k = lambda op, n: CaseKey.of(op, "triton", "", {"N": n}, "fp16")  # noqa: E731
    return compare_sides(
        [
            (k("matmul", 1), exact(1.0), exact(1.2)),
            (k("matmul", 2), exact(1.0), exact(1.05)),
            (k("softmax", 1), exact(1.0), exact(0.8)),
            (k("softmax", 2), exact(1.0), exact(1.0)),
            (k("a|b<script>", 3), exact(1.0), Side("incorrect", (), "max error 1 > 0.01")),
        ],
        threshold=0.02,
        label_a="base (triton 3.8.0)",
        label_b="pr (triton 3.9.0)",
    )


def test_markdown_puts_summary_then_regressions_then_improvements_then_the_rest_folded() -> None:
    md = render_markdown(_cmp())
    summary = md.index("2 slower")
    regress = md.index("### Regressions (2)")
    improve = md.index("### Improvements (1)")
    folded = md.index("<details>")
    assert summary < regress < improve < folded
    # Largest regression first.
    assert md.index("1.200x") < md.index("1.050x") < improve
    # The rest: same and incorrect, inside <details>.
    rest = md[folded:]
    assert "softmax[N=2]" in rest and "incorrect (B: max error 1 &gt; 0.01)" in rest
    assert "1 same, 1 incorrect" in rest
    # Table cells cannot break the table or inject HTML.
    assert "<script>" not in md and "a\\|b&lt;script&gt;" in md
    assert "| matmul | " in md and "| softmax | " in md  # per-operator geomean table


def test_json_has_the_documented_keys_per_case() -> None:
    doc = json.loads(render_json(_cmp(), comparison="c0ffee"))
    assert doc["comparison"] == "c0ffee" and doc["a"].startswith("base")
    assert doc["summary"]["slower"] == 2 and doc["summary"]["faster"] == 1
    keys = {"operator", "provider", "variant", "shape", "dtype", "a_median", "b_median"}
    keys |= {"ratio", "ci", "p", "verdict"}
    for row in doc["cases"]:
        assert keys <= set(row)
    bad = [r for r in doc["cases"] if r["verdict"] == "incorrect"][0]
    assert bad["ratio"] is None and bad["b_median"] is None


def test_terminal_table_colors_verdicts() -> None:
    console = Console(record=True, width=200, force_terminal=True)
    render_terminal(_cmp(), console)
    text = console.export_text(clear=False)
    assert "matmul N=1" in text and "+20.0% [" in text and "slower" in text
    assert "2 slower, 1 faster, 1 incorrect" in text
    styled = console.export_text(styles=True)
    assert "\x1b[1;31mslower" in styled  # bold red


def test_comparison_page_view_is_human_sorted_and_says_why_when_empty() -> None:
    """The dashboard's comparison rows: rounded changes with units, regressions first and the
    largest change first, and an empty state that says why (issue 14, item 4)."""
    from tritonwatch.report.compare import comparison_view

    def case(op: str, ratio: float, ci: list[float], verdict: str) -> dict[str, object]:
        return {
            "operator": op,
            "provider": "triton",
            "variant": "",
            "shape": {"N": 4096, "M": 128},
            "dtype": "fp16",
            "a_median": 0.5,
            "b_median": 0.5 * ratio,
            "ratio": ratio,
            "ci": ci,
            "p": 1e-5,
            "verdict": verdict,
            "p_rounds": 0.01,
            "n_a": 30,
            "n_b": 30,
        }

    cases = [
        case("same", 0.9996570852244075, [0.9959657085224407, 1.0058], "same"),
        case("small", 1.05, [1.02, 1.08], "slower"),
        case("big", 1.20, [1.19, 1.21], "slower"),
        case("fast", 0.8, [0.79, 0.81], "faster"),
    ]
    v = comparison_view(
        {"cases": 4, "slower": 2, "faster": 1, "same": 1, "geomean_speedup": 0.99}, cases
    )
    assert [r["case"] for r in v["rows"]] == [
        "big M=128 N=4096",
        "small M=128 N=4096",
        "fast M=128 N=4096",
        "same M=128 N=4096",
    ]
    assert v["rows"][0]["change"] == "+20.0% [+19.0, +21.0]"
    assert v["rows"][-1]["change"] == "-0.0% [-0.4, +0.6]"
    assert v["rows"][0]["a"] == "500.00 us" and v["rows"][0]["b"] == "600.00 us"
    assert v["headline"].startswith("B is 1.0% slower than A")
    empty = comparison_view({}, [])
    assert empty["rows"] == [] and "not timed" in empty["empty"]


def test_a_measured_ab_shows_what_each_same_rules_out() -> None:
    """Terminal, Markdown and dashboard say per case the smallest change it could have found,
    and the dashboard says how it was measured and where cases stopped."""
    from tritonwatch.report.compare import comparison_view

    side = Side("ok", (np.ones(20),) * 8)
    k = CaseKey.of("matmul", "triton", "", {"M": 64}, "fp16")
    blocks = [0.001, -0.002, 0.0015, -0.001, 0.0005, 0.0, -0.0005, 0.001]
    cmp = compare_sides(
        [(k, side, side, blocks)], threshold=0.02, meta={"design": "ABBA", "stops": {"same": 1}}
    )
    c = cmp.results[0]
    assert c.verdict == "same" and c.mde is not None and 0 < c.mde < 0.01
    mde = f"±{c.mde:.1%}"
    console = Console(width=160, record=True)
    render_terminal(cmp, console)
    text = console.export_text()
    assert mde in text and f"'same' rules out changes above {c.mde:.1%}" in text
    assert mde in render_markdown(cmp)
    doc = json.loads(render_json(cmp))
    view = comparison_view(doc["summary"], doc["cases"])
    assert view["rows"][0]["detect"] == f"{mde} (8 blocks)"
    assert ("how it was measured", "ABBA") in view["summary"]
    assert ("cases stopped as", "same 1") in view["summary"]


def test_the_detectable_change_names_the_worker_pairs_it_was_tested_across() -> None:
    from tritonwatch.report.compare import comparison_view

    side = Side("ok", (np.ones(20),) * 8)
    k = CaseKey.of("softmax", "triton", "", {"M": 64}, "fp16")
    blocks = [0.001, -0.002, 0.0015, -0.001, 0.0005, 0.0, -0.0005, 0.001]
    cmp = compare_sides([(k, side, side, blocks, [0, 1, 2, 3] * 2)], threshold=0.02)
    doc = json.loads(render_json(cmp))
    assert doc["cases"][0]["workers"] == 4
    view = comparison_view(doc["summary"], doc["cases"])
    assert view["rows"][0]["detect"] == f"±{cmp.results[0].mde:.1%} (8 blocks on 4 pairs)"


def test_a_same_that_could_not_have_seen_the_threshold_is_shown_as_too_noisy() -> None:
    """A 2-core host gave 'same' with a ±68% detectable change: read as 'no change' it is
    wrong. The verdict stays 'same' (nothing significant); every report shows 'too noisy'."""
    from tritonwatch.report.compare import comparison_view

    side = Side("ok", (np.ones(20),) * 8)
    k = lambda n: CaseKey.of("softmax", "torch", "", {"N": n}, "fp16")  # noqa: E731
    quiet = [0.001, -0.002, 0.0015, -0.001, 0.0005, 0.0, -0.0005, 0.001]
    loud = [0.2, -0.25, 0.15, -0.1, 0.3, -0.2, 0.05, -0.15]
    cmp = compare_sides([(k(1), side, side, quiet), (k(2), side, side, loud)], threshold=0.02)
    assert [c.verdict for c in cmp.results] == ["same", "same"]
    assert cmp.results[0].mde < 0.02 < cmp.results[1].mde
    console = Console(width=100, record=True)
    render_terminal(cmp, console)
    text = " ".join(console.export_text().split())  # the headline wraps in 100 columns
    assert "1 same, 1 too noisy (threshold 2.0%" in text
    loud_mde = cmp.results[1].mde
    assert (
        f"'too noisy': could not have seen a change of 2.0%, only one above {loud_mde:.1%}" in text
    )
    assert text.count("too noisy") == 3  # the row, the count, the explanation
    md = render_markdown(cmp)
    assert "Other cases (2: 1 same, 1 too noisy)" in md and "| too noisy |" in md
    doc = json.loads(render_json(cmp))
    assert [c["verdict"] for c in doc["cases"]] == ["same", "same"]  # the stored verdict
    assert doc["summary"]["too_noisy"] == 1
    view = comparison_view(doc["summary"], doc["cases"])
    assert sorted(r["verdict"] for r in view["rows"]) == ["same", "too noisy"]
    assert {r["kind"] for r in view["rows"]} == {"same", "noisy"}
    assert view["headline"].endswith("1 same, 1 too noisy.")
    said = f"1 case could not have seen a 2.0% change; the median one could see only changes above {loud_mde:.1%}"
    assert ("too noisy", said) in view["summary"]
    # The list of comparisons has no rows: the count comes from the summary.
    assert comparison_view(doc["summary"], [])["headline"].endswith("1 same, 1 too noisy.")
