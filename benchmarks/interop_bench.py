#!/usr/bin/env python3
"""Interop benchmark: `tritonwatch import` of a long PyTorch HUD history (JSON each row).

Writes N HUD v3 records shaped as tritonbench's CI uploads them (the 61 records of one runner's
night in tests/fixtures/interop/hud/hud_tritonbench_v3.json, repeated night after night on 4
runners with new timestamps, workflow ids, Triton commits and noisy values), then imports the
file into a fresh database in a child process through the same library call as the command
(`formats.exchange.import_files`), and reports records/s and the child's peak memory (max RSS).

    python benchmarks/interop_bench.py --records 300000
    python benchmarks/interop_bench.py --records 300000 --backend postgresql \
        --pg-url postgresql://postgres@127.0.0.1:5432/postgres

Targets (issue #12): >= 50,000 records/s into SQLite; peak memory < 500 MB whatever the size
(the importing process and its reader process together).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "tests" / "fixtures" / "interop" / "hud" / "hud_tritonbench_v3.json"
RUNNERS = (
    ("gcp-h100-runner-x7k2p-runner-9qz4d", "NVIDIA H100 80GB HBM3"),
    ("linux-dgx-b200-2x9lm-runner-b6c2w", "NVIDIA B200"),
    ("amd-mi350-runner-4f8zq", "AMD Instinct MI350X"),
    ("gcp-a100-runner-77xkd", "NVIDIA A100-SXM4-80GB"),
)
T0 = 1_723_600_000  # 2024-08-14


def write_history(path: Path, n: int, seed: int = 0) -> int:
    """N records, JSON each row; returns the number of runs (runner-nights) in them."""
    rng = random.Random(seed)
    template = json.loads(TEMPLATE.read_text())
    first = template[0]
    night = [
        r
        for r in template
        if r["timestamp"] == first["timestamp"] and r["runners"] == first["runners"]
    ]
    written = runs = 0
    with path.open("w") as f:
        day = 0
        while written < n:
            sha = uuid.UUID(int=rng.getrandbits(128)).hex + "00000000"
            for k, (host, gpu) in enumerate(RUNNERS):
                runs += written < n
                for rec in night:
                    if written >= n:
                        break
                    r = dict(rec)
                    r["timestamp"] = T0 + day * 86400 + 7200 + k * 30
                    r["workflow_id"] = 16_000_000_000 + day * 10 + k
                    r["job_id"] = 48_000_000_000 + day * 10 + k
                    r["runners"] = [{**rec["runners"][0], "name": host, "gpu_info": gpu}]
                    deps = dict(rec["dependencies"])
                    deps["triton"] = {**deps["triton"], "sha": sha}
                    r["dependencies"] = deps
                    m = dict(rec["metric"])
                    m["benchmark_values"] = [
                        v * rng.uniform(0.97, 1.03) if v else v for v in m["benchmark_values"]
                    ]
                    r["metric"] = m
                    f.write(json.dumps(r) + "\n")
                    written += 1
            day += 1
    return runs


CHILD = r"""
import json, resource, sys, time
from tritonwatch.formats.exchange import import_files
from tritonwatch.store import Store
url, path = sys.argv[1], sys.argv[2]
with Store.open(url) as store:
    t, c = time.perf_counter(), time.process_time()
    report = import_files(store, [path])
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
f = report.files[0]
kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the reader process, when one was used
print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "records": f.tally.items, "runs": report.added,
                  "results": report.results, "reader_cpu_seconds": kids.ru_utime + kids.ru_stime,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "reader_peak_mb": kids.ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--dir", type=Path, default=None, help="Where to write the file and db.")
    ap.add_argument("--keep", action="store_true", help="Keep the file and database.")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-interop-", dir=args.dir))
    hud = work / "hud-history.jsonl"
    t = time.perf_counter()
    runs = write_history(hud, args.records)
    size_mb = hud.stat().st_size / 1e6
    print(
        f"wrote {args.records:,} records ({runs:,} runs, {size_mb:,.0f} MB) in "
        f"{time.perf_counter() - t:.1f} s"
    )
    db_name = None
    if args.backend == "sqlite":
        url = f"sqlite:///{work / 'tw.db'}"
    else:
        import psycopg

        db_name = f"tw_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        url = args.pg_url.rsplit("/", 1)[0] + "/" + db_name
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, url, str(hud)], check=True, capture_output=True, text=True
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
    finally:
        if db_name is not None:
            import psycopg

            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        if not args.keep:
            for p in sorted(work.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
            work.rmdir()
    rate = r["records"] / r["seconds"]
    cpu = r["cpu_seconds"] + r["reader_cpu_seconds"]
    # Wall time on a shared machine depends on its load; records per CPU second does not. A
    # large file is parsed by a reader process (formats/background.py) beside the importing
    # one: CPU seconds and peak memory count both (the peak as the sum of the two peaks).
    print(
        f"{'backend':<11}{'records':>10}{'runs':>8}{'seconds':>9}{'records/s':>11}"
        f"{'per CPU s':>11}{'CPU s':>7}{'reader':>8}{'peak MB':>9}{'reader':>8}"
    )
    print(
        f"{args.backend:<11}{r['records']:>10,}{r['runs']:>8,}{r['seconds']:>9.1f}"
        f"{rate:>11,.0f}{r['records'] / cpu:>11,.0f}{cpu:>7.1f}{r['reader_cpu_seconds']:>8.1f}"
        f"{r['peak_mb'] + r['reader_peak_mb']:>9,.0f}{r['reader_peak_mb']:>8,.0f}"
    )
    if args.keep:
        print(f"kept in {work}")


if __name__ == "__main__":
    main()
