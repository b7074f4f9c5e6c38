"""Benchmark: blast the suite's specs x 4 targets x 2 environments, cold and then warm.

Targets (issue #5): cold (empty compile cache) within 5 minutes on 2 cores; warm (every compile
a cache hit) within 20 s. Prints the figures; exit status 1 when a target is missed.

    python benchmarks/blast_bench.py                       # A = triton 3.8.0 env, B = this Python
    python benchmarks/blast_bench.py --a tri38 --b current --jobs 2 --targets sm80,sm90,sm100,gfx942
    PYTHONPATH=/tmp/liger python benchmarks/blast_bench.py --kernels \
        tests/codegen/data/liger_specs.py --targets sm90,gfx942 --cold-target 60   # Liger set

The Liger set needs ``pip install --no-deps --target /tmp/liger liger-kernel`` and torch in both
environments (A: an environment made with ``--system-site-packages`` from a venv with torch).

Environment A defaults to ``triton-3.8.0`` in TRITONWATCH_TEST_ENVS_DIR (default
~/.cache/tritonwatch-test-envs), made on first use with ``create_env`` (needs the package index).
The load average is printed because on a shared machine it decides the cold figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tritonwatch import settings
from tritonwatch.codegen import blast, create_env
from tritonwatch.codegen.cache import CompileCache
from tritonwatch.codegen.envs import env_python
from tritonwatch.codegen.specs import default_files, load_specs

COLD_TARGET_S = 300.0
WARM_TARGET_S = 20.0


def default_env_a() -> str:
    root = Path(
        os.environ.get(
            "TRITONWATCH_TEST_ENVS_DIR", Path.home() / ".cache" / "tritonwatch-test-envs"
        )
    )
    folder = root / "triton-3.8.0"
    if not env_python(folder).exists():
        print(f"creating {folder} (triton 3.8.0) ...", flush=True)
        with settings.scope(envs_dir=str(root)):
            create_env("triton-3.8.0", "3.8.0")
    return str(env_python(folder))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default=None, help="environment A [default: triton 3.8.0 env]")
    ap.add_argument("--b", default="current", help="environment B [default: this Python]")
    ap.add_argument("--targets", default="sm80,sm90,sm100,gfx942")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache-dir", default=None, help="compile cache [default: a fresh temp dir]")
    ap.add_argument(
        "--kernels", action="append", default=None, help="spec file (repeatable) [default: suite]"
    )
    ap.add_argument("--cold-target", type=float, default=COLD_TARGET_S, help="seconds")
    args = ap.parse_args()
    env_a = args.a or default_env_a()
    files = [Path(f) for f in args.kernels] if args.kernels else default_files()
    specs = load_specs(files)
    print(
        f"kernel files: {', '.join(p.name for p in files)}; {len(specs)} specs; "
        f"targets {args.targets}; jobs {args.jobs}; cpus {os.cpu_count()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="tw-blast-bench-") as tmp:
        cache = CompileCache(args.cache_dir or tmp)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        cold = blast(
            env_a,
            args.b,
            targets=args.targets,
            jobs=args.jobs,
            cache=cache,
            kernel_files=files,
            progress=sys.stderr.isatty(),
        )
        cold_s = time.perf_counter() - t0
        load1 = os.getloadavg()
        t0 = time.perf_counter()
        warm = blast(
            env_a, args.b, targets=args.targets, jobs=args.jobs, cache=cache, kernel_files=files
        )
        warm_s = time.perf_counter() - t0
    compile_ms = sum((r.a.compile_ms or 0) + (r.b.compile_ms or 0) for r in cold.rows)
    print(f"A: triton {cold.env_a.triton_version} ({cold.env_a.python})")
    print(f"B: triton {cold.env_b.triton_version} ({cold.env_b.python})")
    print(f"summary: {cold.summary.headline}")
    print(
        f"cold: {cold_s:.1f} s for {cold.stats['tasks']} compiles "
        f"({cold.stats['compiled']} compiled, {cold.stats['cached']} cached); "
        f"sum of Triton compile times {compile_ms / 1e3:.1f} s; "
        f"load average before/after {load0[0]:.1f}/{load1[0]:.1f}  "
        f"[target {args.cold_target:.0f} s: {'met' if cold_s <= args.cold_target else 'MISSED'}]"
    )
    print(
        f"warm: {warm_s:.1f} s ({warm.stats['cached']} of {warm.stats['tasks']} cached)  "
        f"[target {WARM_TARGET_S:.0f} s: {'met' if warm_s <= WARM_TARGET_S else 'MISSED'}]"
    )
    same = [r.a.stage_hashes for r in cold.rows] == [r.a.stage_hashes for r in warm.rows]
    print(f"warm report equals cold report: {same}")
    return 0 if cold_s <= args.cold_target and warm_s <= WARM_TARGET_S and same else 1


if __name__ == "__main__":
    sys.exit(main())
