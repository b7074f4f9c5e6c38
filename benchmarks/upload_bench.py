#!/usr/bin/env python3
"""Upload benchmark: results/s ingested through POST /api/v1/runs, and the series API's latency
while that load runs.

Starts `tritonwatch serve` on a fresh PostgreSQL database (a real server process on loopback),
fills some history so series have points, then runs N concurrent uploaders (one token each, as a
fleet of runners would) for a fixed time while a reader times GET /api/v1/series/{s}/{m} on random
series. Prints ingest rate, upload latency, and the series API's p50/p95 before and during load,
and checks that every accepted run is stored exactly once.

    python benchmarks/upload_bench.py                       # 8 uploaders, 60 s
    python benchmarks/upload_bench.py --uploaders 8 --seconds 15 --results-per-run 1000

Target (issue #8): >= 2,000 results/s with 8 concurrent uploaders on PostgreSQL, with the series
API's p95 <= 100 ms during the load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tritonwatch.runformat import parse_run
from tritonwatch.store import Store

PG_ADMIN = os.environ.get(
    "TRITONWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
).replace("postgresql+psycopg", "postgresql")
RUN_ID = "00000000-0000-4000-8000-000000000000"
STARTED = "2000-01-01T00:00:00+00:00"


def _doc(machine: str, n: int, samples: int, seed: int) -> dict[str, object]:
    rnd = random.Random(seed)
    return {
        "format": "tritonwatch.run/1",
        "run": {"id": RUN_ID, "started_at": STARTED, "label": "bench", "suite": "nightly"},
        "machine": {"name": machine, "gpu_model": "NVIDIA H100 80GB HBM3", "gpu_count": 8},
        "build": {"triton": {"version": "3.9.0", "commit": "abc123"}, "torch": {"version": "2.13"}},
        "results": [
            {
                "operator": ("matmul", "attention", "softmax", "layernorm")[j % 4],
                "provider": ("triton", "torch")[j % 2],
                "shape": {"M": 128 * (1 + j // 8), "N": 4096, "K": 1024},
                "dtype": ("fp16", "bf16")[(j // 2) % 2],
                "metric": "time",
                "unit": "ms",
                "samples": [round(0.5 + rnd.random() * 0.01, 6) for _ in range(samples)],
            }
            for j in range(n)
        ],
    }


def _body(template: str, night: int) -> tuple[str, bytes]:
    rid = str(uuid.uuid4())
    t = f"2026-{1 + night // 28 % 12:02d}-{1 + night % 28:02d}T{night // 336 % 24:02d}:00:00+00:00"
    return rid, template.replace(RUN_ID, rid).replace(STARTED, t).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: dict[str, int] = field(default_factory=dict)
    upload_ms: list[float] = field(default_factory=list)
    series_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _uploader(
    url: str, token: str, template: str, stop: float, tally: Tally, first: int, n_results: int
) -> None:
    night = first
    with httpx.Client(
        base_url=url,
        timeout=120,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    ) as c:
        while time.monotonic() < stop:
            rid, body = _body(template, night)
            night += 1
            t0 = time.perf_counter()
            try:
                r = c.post("/api/v1/runs", content=body)
            except httpx.HTTPError as e:
                with tally.lock:
                    tally.errors.append(f"upload: {type(e).__name__}")
                continue
            ms = (time.perf_counter() - t0) * 1000
            with tally.lock:
                if r.status_code == 201:
                    tally.accepted[rid] = n_results
                    tally.upload_ms.append(ms)
                else:
                    tally.errors.append(f"upload {r.status_code}: {r.text[:120]}")


def _reader(
    url: str, pairs: list[tuple[int, int]], stop: float, out: list[float], tally: Tally, seed: int
) -> None:
    rnd = random.Random(seed)
    with httpx.Client(base_url=url, timeout=60) as c:
        while time.monotonic() < stop:
            sid, mid = rnd.choice(pairs)
            t0 = time.perf_counter()
            r = c.get(f"/api/v1/series/{sid}/{mid}")
            ms = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                with tally.lock:
                    tally.errors.append(f"series {r.status_code}")
            out.append(ms)
            time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--uploaders", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--results-per-run", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=20, help="Samples per result.")
    ap.add_argument(
        "--history",
        type=int,
        default=30,
        help="Nights of history stored per uploader's machine before the load.",
    )
    ap.add_argument("--readers", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = ap.parse_args()

    import psycopg

    name = f"tw_upload_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    server: subprocess.Popen[bytes] | None = None
    log = Path(tempfile.mkdtemp()) / "server.log"
    try:
        Store.upgrade(db)
        templates = [
            json.dumps(_doc(f"runner-{i}", args.results_per_run, args.samples, i))
            for i in range(args.uploaders)
        ]
        with Store.open(db) as st:
            tokens = [
                st.access.create_token("bench", f"runner-{i}", scopes=("upload",)).token
                for i in range(args.uploaders)
            ]
            t0 = time.perf_counter()
            for tpl in templates:  # history, stored as the upload API would
                for night in range(args.history):
                    doc = json.loads(_body(tpl, night)[1])
                    doc["machine"]["name"] = f"bench/{doc['machine']['name']}"
                    st.runs.add(parse_run(doc), org="bench")
            fill_s = time.perf_counter() - t0
            pairs = [(r.series_id, r.machine_id) for r in st.series.catalog(limit=1000)]
        print(
            f"database: PostgreSQL {name}; history: {args.uploaders} machines x "
            f"{args.history} nights x {args.results_per_run} results ({fill_s:.1f} s)"
        )

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with log.open("wb") as fh:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tritonwatch",
                    "serve",
                    "--db",
                    db,
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit(f"server did not start:\n{log.read_text()}")
            time.sleep(0.2)

        tally = Tally()
        idle: list[float] = []
        _reader(url, pairs, time.monotonic() + 5, idle, tally, 0)

        stop = time.monotonic() + args.seconds
        loaded: list[float] = []
        threads = [
            threading.Thread(
                target=_uploader,
                args=(
                    url,
                    tokens[i],
                    templates[i],
                    stop,
                    tally,
                    args.history + 1,
                    args.results_per_run,
                ),
            )
            for i in range(args.uploaders)
        ]
        threads += [
            threading.Thread(target=_reader, args=(url, pairs, stop, loaded, tally, k))
            for k in range(args.readers)
        ]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start

        results = sum(tally.accepted.values())
        with Store.open(db) as st:
            stored = {r.uuid: r.n_results for r in st.runs.find(org="bench", limit=None)}
        missing = [u for u in tally.accepted if stored.get(u) != tally.accepted[u]]
        print(
            f"load: {args.uploaders} uploaders for {elapsed:.1f} s, "
            f"{args.results_per_run} results x {args.samples} samples per run "
            f"({len(templates[0]) / 1e6:.2f} MB JSON)"
        )
        print(
            f"ingested: {len(tally.accepted)} runs, {results} results "
            f"-> {results / elapsed:,.0f} results/s ({len(tally.accepted) / elapsed:.1f} runs/s)"
        )
        print(
            f"upload latency: p50 {_pct(tally.upload_ms, 50):.0f} ms, "
            f"p95 {_pct(tally.upload_ms, 95):.0f} ms"
        )
        print(
            f"series API idle:   n={len(idle)} p50 {_pct(idle, 50):.1f} ms, "
            f"p95 {_pct(idle, 95):.1f} ms"
        )
        print(
            f"series API loaded: n={len(loaded)} p50 {_pct(loaded, 50):.1f} ms, "
            f"p95 {_pct(loaded, 95):.1f} ms, max {max(loaded, default=float('nan')):.1f} ms"
        )
        print(
            f"errors: {len(tally.errors)} {tally.errors[:5]}; stored exactly as accepted: "
            f"{'yes' if not missing else f'NO ({len(missing)} missing)'}"
        )
        ok = results / elapsed >= 2000 and _pct(loaded, 95) <= 100 and not tally.errors
        print(
            f"target (>= 2,000 results/s, series p95 <= 100 ms, no errors): "
            f"{'met' if ok and not missing else 'NOT met'}"
        )
        if statistics.mean(loaded or [0]) and os.cpu_count():
            print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if not args.keep:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
