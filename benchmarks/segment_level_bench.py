"""What a block should take of each segment: the same blocks, scored with several statistics.

    python benchmarks/segment_level_bench.py [--aa-seeds 7410,7411,7412]
        [--planted-seeds 7400,7401,7402,7403,7404,7405] [--slowdown 0.03]
    python benchmarks/segment_level_bench.py --from OUT/results.json   # a gpu-check's A/B

Runs A/A comparisons of the smoke suite's torch cases and planted-slowdown comparisons (the
spins of ``compare_bench.py``) and scores every block as the driver timed it with each of
``blocks.LEVEL_CANDIDATES`` (the median, the mean of the fastest half the blocks use, low
percentiles, the minimum): all see the same segments, so the machine's noise is paired between
them. ``--from`` scores the blocks a ``scripts/gpu-check`` A/B recorded the same way instead
(its A/A cases, and its planted ones against its threshold). Per statistic it prints the blocks'
spread within a case, the cases' median minimum detectable change, the share of cases with
p < 0.05 (A/A and the planted steady twin: about 5% or less if the test holds its level), and
the planted cases found (at least the 2% threshold and p < 0.05, over the blocks as timed).
The verdicts of the comparisons themselves used the statistic in ``blocks.segment_level``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_bench  # noqa: E402 (the planted plugin and its wrapper Python)

from tritonwatch.analysis.compare import BlockStats, units  # noqa: E402
from tritonwatch.bench.blocks import LEVEL_CANDIDATES, record_blocks  # noqa: E402

Cases = dict[tuple[int, str], list[dict[str, Any]]]  # (comparison, case id) -> its blocks


def _score(blocks: list[dict[str, Any]], level: str) -> tuple[float, float, float, float] | None:
    """A case's mean log ratio, its p, its minimum detectable change and its blocks' spread,
    over pair units as the verdict takes them (analysis.compare's units and BlockStats)."""
    lr = np.array([b["ratios"][level] for b in blocks])
    u = units(lr, [b["pair"] for b in blocks])
    if len(u) < 2:
        return None
    st = BlockStats.of(u)
    return st.mean, st.p, st.mde(), float(lr.std(ddof=1))


def _report(title: str, cases: Cases, kinds: dict[tuple[int, str], str], threshold: float) -> None:
    """Per statistic: each kind's blocks' spread, median minimum detectable change, share with
    p < 0.05, and for planted cases the share found (at least the threshold and p < 0.05)."""
    print(title)
    for name in LEVEL_CANDIDATES:
        groups: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
        for key, blocks in sorted(cases.items()):
            got = _score(blocks, name)
            if got is not None:
                groups[kinds[key]].append(got)
        parts = []
        for kind, rows in sorted(groups.items()):
            m, p, mde, sd = (np.array(x) for x in zip(*rows, strict=True))
            part = (
                f"{kind} {len(rows)}: spread {np.median(sd):.2%}, mde {np.median(mde):.1%}, "
                f"p<0.05 {np.mean(p < 0.05):.0%}"
            )
            if kind == "planted":
                part += f", found {np.mean((np.expm1(m) >= threshold) & (p < 0.05)):.0%}"
            parts.append(part)
        print(f"  {name:16s} " + "; ".join(parts))


def _from_gpu_check(path: Path) -> None:
    """Score the blocks a gpu-check A/B recorded (``timed_blocks`` of each case)."""
    ab = json.loads(path.read_text())["sections"]["ab"]
    cases: Cases = {}
    kinds: dict[tuple[int, str], str] = {}
    for c in ab["cases"]:
        key = (int(c["rep"]), str(c["case"]))
        if c.get("timed_blocks"):
            cases[key] = c["timed_blocks"]
            kinds[key] = "planted" if str(c["expected"]).startswith("slower") else "A/A"
    threshold = float(ab.get("threshold", 0.005))
    _report(f"{path}: {len(cases)} cases with blocks", cases, kinds, threshold)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--aa-seeds", default="7410,7411,7412")
    ap.add_argument("--planted-seeds", default="7400,7401,7402,7403,7404,7405")
    ap.add_argument("--slowdown", type=float, default=0.03)
    ap.add_argument("--from", dest="source", type=Path, help="a gpu-check's results.json")
    args = ap.parse_args()
    if args.source is not None:
        _from_gpu_check(args.source)
        return

    from tritonwatch import settings
    from tritonwatch.bench.ab import ABOptions, run_ab
    from tritonwatch.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="tw-segment-level-"))
    store = Store.open(f"sqlite:///{tmp / 'tw.db'}")
    suite = compare_bench._install_planted(tmp / "site")
    slow = compare_bench._slow_python(tmp, args.slowdown)
    runs: dict[str, Cases] = {"aa": {}, "planted": {}}
    kinds: dict[tuple[int, str], str] = {}
    for part, seeds in (("planted", args.planted_seeds), ("aa", args.aa_seeds)):
        for seed in (int(s) for s in seeds.split(",") if s):
            if part == "planted":
                opts = ABOptions(a="current", b=str(slow), suite=str(suite), device="cpu")
                scope = settings.scope(budget_ms=100.0, target_ci=0.002)  # compare_bench's
            else:
                opts = ABOptions(a="current", b="current", suite="smoke", providers=["torch"])
                scope = settings.scope()
            opts.seed = seed
            with scope, record_blocks() as timed:
                run_ab(opts, store)
            for b in timed:
                key = (seed, b["case"])
                runs[part].setdefault(key, []).append(b)
                kinds[key] = "A/A" if part == "aa" else b["case"].rsplit("/", 1)[-1]
            print(f"  {part} seed {seed}: done", flush=True)
    title = f"planted {args.slowdown:.0%} slowdown (spins), seeds {args.planted_seeds}:"
    _report(title, runs["planted"], kinds, 0.02)
    title = f"A/A of the smoke suite's torch cases, seeds {args.aa_seeds}:"
    _report(title, runs["aa"], kinds, 0.02)
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
