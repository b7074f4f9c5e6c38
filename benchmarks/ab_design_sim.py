"""Predict what an A/B design finds, from blocks measured on a real device.

    python benchmarks/ab_design_sim.py                    # the H200 blocks of 2026-11-28
    python benchmarks/ab_design_sim.py --blocks-from OUT/results.json --pairs 4,8 --planned 8,16
    python benchmarks/ab_design_sim.py --pairs 8,16 --planned 8,16 --plant-each 1

The blocks come from `scripts/gpu-check --fixed-blocks` (every block's log ratio and worker pair
in its results.json), or from the file kept here (benchmarks/h200-ab-blocks-2026-11-28.json).
Each case's noise is split into a part within a worker pair (block to block) and one between
pairs (their processes' own offsets): one-way ANOVA per comparison, the median over comparisons.
Its change is its mean ratio where the case was planted (``expected`` says slower), else none.

Then the driver's loop runs on normal noise of those sizes: a round is one block per pair,
`analysis.compare.stop_rule` decides after each, up to EXTEND times the planned blocks; each
comparison is judged as `compare` judges it (the verdict, with BH across its cases). Per design
it prints the planted changes found, the A/A cases flagged and the blocks per case.

It checks itself first: the measured comparisons judged again at --threshold, beside the same
simulation with their fixed blocks. A simulation is a prediction, not a measurement: what a
design does on a device is what `scripts/gpu-check` measures there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "h200-ab-blocks-2026-11-28.json"


def load(path: Path) -> list[dict[str, Any]]:
    """Comparisons, each ``{"pairs": n, "cases": [{case, expected, blocks, pairs}]}``, from the
    kept file or a gpu-check results.json."""
    data = json.loads(path.read_text())
    if "comparisons" in data:
        return list(data["comparisons"])
    cases = (data.get("sections") or {}).get("ab", {}).get("cases") or []
    cases = [c for c in cases if c.get("block_ratios")]
    if not cases:
        raise SystemExit(
            f"{path}: no blocks in it; give the results.json of `scripts/gpu-check "
            "--fixed-blocks` (or of a gpu-check that wrote block_ratios)"
        )
    out = []
    for rep in sorted({c["rep"] for c in cases}):
        got = [c for c in cases if c["rep"] == rep]
        out.append(
            {
                "pairs": len({p for c in got for p in c["pairs"]}),
                "cases": [
                    {
                        "case": c["case"],
                        "expected": c["expected"],
                        "blocks": c["block_ratios"],
                        "pairs": c["pairs"],
                    }  # fmt: skip
                    for c in got
                ],
            }
        )
    return out


def planted(case: dict[str, Any]) -> bool:
    """Whether B planted a change into the case (gpu-check's ``expected``: ``slower 1.0%``)."""
    return str(case["expected"]).startswith("slower")


def parts(blocks: list[float], pairs: list[int]) -> tuple[float, float]:
    """Within-pair and between-pair standard deviations of one case's block ratios."""
    b, g = np.asarray(blocks, dtype=np.float64), np.asarray(pairs)
    ks = np.unique(g)
    per = len(b) / len(ks)
    means = np.array([b[g == k].mean() for k in ks])
    within = sum(float(((b[g == k] - b[g == k].mean()) ** 2).sum()) for k in ks)
    msw = within / (len(b) - len(ks))
    msb = per * float(means.var(ddof=1))
    return float(np.sqrt(msw)), float(np.sqrt(max(0.0, (msb - msw) / per)))


def noise_model(comparisons: list[dict[str, Any]]) -> list[tuple[str, float, float, float]]:
    """Per case: (id, within sd, between sd, change), all as log ratios."""
    by: dict[str, list[tuple[float, float, float, bool]]] = {}
    for comp in comparisons:
        for c in comp["cases"]:
            sw, sb = parts(c["blocks"], c["pairs"])
            by.setdefault(c["case"], []).append((sw, sb, float(np.mean(c["blocks"])), planted(c)))
    return [
        (
            case,
            statistics.median(x[0] for x in v),
            statistics.median(x[1] for x in v),
            statistics.mean(x[2] for x in v) if v[0][3] else 0.0,
        )
        for case, v in by.items()
    ]


def judge(cases: list[tuple[str, list[float], list[int], float]], threshold: float) -> list[Any]:
    """One comparison's cases as `compare` judges them: (id, blocks, pairs, change) in,
    (id, verdict, change, blocks) out, with BH across the cases."""
    from tritonwatch.analysis.compare import CaseComparison, CaseKey, Side
    from tritonwatch.analysis.stats import benjamini_hochberg

    side = Side("ok", (np.ones(3),))
    ccs = [
        CaseComparison(
            CaseKey.of(name, "sim", "", {}, "fp32"),
            side,
            side,
            threshold,
            blocks=tuple(b),
            groups=tuple(g) if len(set(g)) > 1 else (),
        )  # fmt: skip
        for name, b, g, _ in cases
    ]
    for cc, q in zip(ccs, benjamini_hochberg([cc.p for cc in ccs]), strict=True):
        cc.q = float(q)
    return [
        (name, cc.verdict, change, len(b))
        for cc, (name, b, _, change) in zip(ccs, cases, strict=True)
    ]


class Tally:
    """Planted changes found and A/A cases flagged over judged comparisons, in all and per
    planted case (``per``: id -> [found, planted])."""

    def __init__(self) -> None:
        self.found = self.planted = self.flagged = self.null = 0
        self.blocks: list[int] = []
        self.per: dict[str, list[int]] = {}

    def add(self, judged: list[Any]) -> None:
        for name, verdict, change, n in judged:
            self.blocks.append(n)
            if change:
                self.planted += 1
                self.found += verdict == "slower"
                got = self.per.setdefault(name, [0, 0])
                got[0] += verdict == "slower"
                got[1] += 1
            else:
                self.null += 1
                self.flagged += verdict in ("slower", "faster")


def simulate(
    model: list[tuple[str, float, float, float]],
    pairs: int,
    planned: int,
    threshold: float,
    reps: int,
    seed: int,
    fixed: int | None = None,
) -> Tally:
    """What ``reps`` simulated comparisons found; ``fixed``: exactly that many blocks per case,
    no stopping (the measured design)."""
    from tritonwatch.analysis.compare import stop_rule
    from tritonwatch.bench.blocks import EXTEND

    rng = np.random.default_rng(seed)
    tally = Tally()
    for _ in range(reps):
        cases = []
        for name, sw, sb, change in model:
            offset = rng.normal(0.0, sb, pairs)
            blocks: list[float] = []
            groups: list[int] = []
            while True:
                for j in rng.permutation(pairs):
                    blocks.append(change + offset[j] + rng.normal(0.0, sw))
                    groups.append(int(j))
                if fixed is not None:
                    if len(blocks) >= fixed:
                        break
                    continue
                g = groups if pairs > 1 else []
                if stop_rule(blocks, threshold, planned, EXTEND * planned, g) is not None:
                    break
            cases.append((name, blocks, groups, change))
        tally.add(judge(cases, threshold))
    return tally


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks-from", type=Path, default=DEFAULT, help="blocks measured")
    ap.add_argument("--pairs", default="4,8", help="worker pairs to try (comma list)")
    ap.add_argument("--planned", default="8", help="planned blocks per case to try (comma list)")
    ap.add_argument("--threshold", type=float, default=0.005, help="as gpu-check's A/B: 0.5%%")
    ap.add_argument("--reps", type=int, default=400, help="comparisons simulated per design")
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument(
        "--plant-each",
        type=float,
        metavar="PCT",
        help="also plant a PCT%% change into each A/A case's noise in turn (the others stay A/A): "
        "what each kind of kernel would find",
    )
    args = ap.parse_args()
    if not args.blocks_from.is_file():
        print(f"ab_design_sim: {args.blocks_from}: no such file", file=sys.stderr)
        return 2
    comparisons = load(args.blocks_from)
    model = noise_model(comparisons)
    print(f"{len(comparisons)} measured comparisons, {len(model)} cases (sd in % of the ratio):")
    for name, sw, sb, change in model:
        print(
            f"  {name:52} within {100 * sw:.2f}  between {100 * sb:.2f}  change {100 * change:+.2f}"
        )
    print(
        f"\nthreshold {args.threshold:.2%}; the measured comparisons judged again, and simulated:"
    )
    for pairs in sorted({c["pairs"] for c in comparisons}):
        same = [c for c in comparisons if c["pairs"] == pairs]
        n = len(same[0]["cases"][0]["blocks"])
        measured = Tally()
        for comp in same:
            got = judge(
                [(c["case"], c["blocks"], c["pairs"], float(planted(c))) for c in comp["cases"]],
                args.threshold,
            )
            measured.add(got)
        t = simulate(model, pairs, n, args.threshold, args.reps, args.seed, fixed=n)
        print(
            f"  {pairs} pairs x {n} fixed blocks: measured found {measured.found}/"
            f"{measured.planted}, A/A {measured.flagged}/{measured.null}; "
            f"simulated found {t.found / t.planted:.0%}, A/A {t.flagged / t.null:.1%}"
        )
    print(f"\nsimulated, {args.reps} comparisons a design (stop_rule as shipped):")
    for pairs in (int(x) for x in args.pairs.split(",")):
        for planned in (int(x) for x in args.planned.split(",")):
            t = simulate(model, pairs, planned, args.threshold, args.reps, args.seed)
            print(
                f"  {pairs} pairs, {planned} planned blocks: planted found {t.found}/{t.planted} = "
                f"{t.found / t.planted:.0%}; A/A flagged {t.flagged}/{t.null} = "
                f"{t.flagged / t.null:.1%}; {float(np.mean(t.blocks)):.1f} blocks per case"
            )
            for name, (found, n) in t.per.items():
                change = next(c for x, _, _, c in model if x == name)
                print(f"      {name:52} change {100 * change:+.2f}%: found {found / n:.0%}")
    if args.plant_each is not None:
        plant_each(model, args)
    return 0


def plant_each(model: list[tuple[str, float, float, float]], args: argparse.Namespace) -> None:
    """A change of --plant-each % in each A/A case's measured noise, one case at a time."""
    change = float(np.log1p(args.plant_each / 100))
    aa = [m for m in model if not m[3]]
    designs = [(int(p), int(b)) for p in args.pairs.split(",") for b in args.planned.split(",")]
    print(
        f"\na {args.plant_each:g}% change planted into each A/A case in turn, {args.reps} "
        f"comparisons a design; found by (pairs x planned blocks):"
    )
    for name, sw, sb, _ in aa:
        got = []
        for pairs, planned in designs:
            one = [(n, w, b, change if n == name else 0.0) for n, w, b, _ in aa]
            t = simulate(one, pairs, planned, args.threshold, args.reps, args.seed)
            got.append(f"{pairs}x{planned} {t.found / t.planted:.0%}")
        print(f"  {name:52} within {100 * sw:.2f} between {100 * sb:.2f}: {', '.join(got)}")


if __name__ == "__main__":
    sys.exit(main())
