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

Other scenarios (issue #15), each on its own fresh database and server:

    python benchmarks/upload_bench.py --scenario two-tenant --seconds 30
        organisation B uploads small runs alone, then again while organisation A uploads the
        largest runs allowed back to back (honouring 429 Retry-After) and a reader reads series.
        Target: B keeps >= 50% of its solo rate with p95 <= 200 ms.
    python benchmarks/upload_bench.py --scenario readers --seconds 20
        one run of max_run_results results, 8 concurrent readers of its page, its JSON and its
        CSV export. Target: the server's peak memory (VmHWM) stays under 1 GB.
    python benchmarks/upload_bench.py --scenario series --series 1000000
        1 M series (written with COPY), then the series API under a few filters and offsets.
        Target: p95 <= 100 ms.
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
from typing import Any

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


def _start_server(db: str, log: Path, env: dict[str, str] | None = None) -> tuple[Any, str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "tritonwatch", "serve", "--db", db, "--port", str(port)]
    with log.open("wb") as fh:
        server = subprocess.Popen(
            [*argv, "--log-level", "warning"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            sys.exit(f"server did not start:\n{log.read_text()}")
        time.sleep(0.2)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _tenant(
    url: str, token: str, template: str, stop: float, out: list[float], waits: list[float]
) -> None:
    """Upload runs from ``template`` back to back until ``stop``; on 429, wait Retry-After."""
    night = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=300, headers=headers) as c:
        while time.monotonic() < stop:
            _, body = _body(template, night)
            night += 1
            t0 = time.perf_counter()
            r = c.post("/api/v1/runs", content=body)
            if r.status_code == 429:
                wait = float(r.headers.get("retry-after", "1"))
                waits.append(wait)
                time.sleep(min(wait, max(0.0, stop - time.monotonic())))
            elif r.status_code == 201:
                out.append((time.perf_counter() - t0) * 1000)
            else:
                sys.exit(f"upload answered {r.status_code}: {r.text[:300]}")


def two_tenant(args: argparse.Namespace, db: str, log: Path) -> None:
    from tritonwatch import settings

    large_n = args.large_results or int(settings.get("max_run_results"))
    big = json.dumps(_doc("a-runner", large_n, args.samples, 1))
    small = json.dumps(_doc("b-runner", args.results_per_run, args.samples, 2))
    with Store.open(db) as st:
        ta = st.access.create_token("org-a", "big", scopes=("upload",)).token
        tb = st.access.create_token("org-b", "small", scopes=("upload",)).token
        st.runs.add(parse_run(json.loads(_body(small, 0)[1])), org="org-b")
        pairs = [(r.series_id, r.machine_id) for r in st.series.catalog(limit=1000)]
    server, url = _start_server(db, log)
    try:
        solo: list[float] = []
        _tenant(url, tb, small, time.monotonic() + args.seconds, solo, [])
        solo_rate = len(solo) / args.seconds
        stop = time.monotonic() + args.seconds
        a_ok: list[float] = []
        a_waits: list[float] = []
        b_ok: list[float] = []
        reads: list[float] = []
        tally = Tally()
        threads = [
            threading.Thread(target=_tenant, args=(url, ta, big, stop, a_ok, a_waits)),
            threading.Thread(target=_tenant, args=(url, tb, small, stop, b_ok, [])),
            threading.Thread(target=_reader, args=(url, pairs, stop, reads, tally, 1)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        b_rate = len(b_ok) / args.seconds
        print(
            f"org B alone: {solo_rate:.1f} runs/s of {args.results_per_run} results "
            f"({len(small) / 1e3:.0f} kB), p50 {_pct(solo, 50):.0f} ms, p95 {_pct(solo, 95):.0f} ms"
        )
        print(
            f"org A: {len(a_ok)} runs of {large_n} results ({len(big) / 1e6:.1f} MB) in "
            f"{args.seconds:.0f} s, upload p50 {_pct(a_ok, 50):.0f} ms; {len(a_waits)} x 429 "
            f"(Retry-After total {sum(a_waits):.0f} s)"
        )
        print(
            f"org B beside A: {b_rate:.1f} runs/s ({b_rate / solo_rate:.0%} of alone), "
            f"p50 {_pct(b_ok, 50):.0f} ms, p95 {_pct(b_ok, 95):.0f} ms"
        )
        print(f"series API beside both: p50 {_pct(reads, 50):.1f} ms, p95 {_pct(reads, 95):.1f} ms")
        ok = b_rate >= 0.5 * solo_rate and _pct(b_ok, 95) <= 200
        print(f"target (B >= 50% of alone, B p95 <= 200 ms): {'met' if ok else 'NOT met'}")
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    finally:
        server.terminate()
        server.wait(30)


def readers(args: argparse.Namespace, db: str, log: Path) -> None:
    from tritonwatch import settings

    n = args.large_results or int(settings.get("max_run_results"))
    doc = _doc("big-runner", n, args.samples, 3)
    rid = str(uuid.uuid4())
    doc["run"]["id"] = rid  # type: ignore[index]
    with Store.open(db) as st:
        token = st.access.create_token("org-a", "big", scopes=("upload",)).token
    server, url = _start_server(db, log)
    try:
        body = json.dumps(doc).encode()
        r = httpx.post(
            url + "/api/v1/runs",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=300,
        )
        assert r.status_code == 201, r.text
        before = _peak_rss_mb(server.pid)
        paths = [f"/runs/{rid}", f"/api/v1/runs/{rid}", f"/api/v1/runs/{rid}?format=csv"]
        times: dict[str, list[float]] = {p: [] for p in paths}
        sizes: dict[str, int] = {}
        stop = time.monotonic() + args.seconds

        def read(k: int) -> None:
            with httpx.Client(base_url=url, timeout=300) as c:
                i = k
                while time.monotonic() < stop:
                    p = paths[i % len(paths)]
                    i += 1
                    t0 = time.perf_counter()
                    resp = c.get(p)
                    times[p].append((time.perf_counter() - t0) * 1000)
                    sizes[p] = len(resp.content)

        threads = [threading.Thread(target=read, args=(k,)) for k in range(args.readers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak = _peak_rss_mb(server.pid)
        print(f"one run of {n} results x {args.samples} samples ({len(body) / 1e6:.1f} MB JSON)")
        for p in paths:
            print(
                f"  {p.replace(rid, '{run}'):32s} {sizes.get(p, 0) / 1e6:6.2f} MB  "
                f"n={len(times[p])} p50 {_pct(times[p], 50):.0f} ms p95 {_pct(times[p], 95):.0f} ms"
            )
        print(
            f"server peak memory (VmHWM): {before:.0f} MB after the upload, {peak:.0f} MB with "
            f"{args.readers} concurrent readers; target < 1024 MB: "
            f"{'met' if peak < 1024 else 'NOT met'}"
        )
    finally:
        server.terminate()
        server.wait(30)


def series_listing(args: argparse.Namespace, db: str, log: Path) -> None:
    import hashlib

    import psycopg

    with Store.open(db) as st:
        st.runs.add(parse_run(_doc("series-box", 1, 3, 4)))
    t0 = time.perf_counter()
    raw = db.replace("postgresql+psycopg", "postgresql")
    ops = ["matmul", "attention", "softmax", "layernorm", "rmsnorm", "gelu", "swiglu", "rope"]
    with psycopg.connect(raw) as c:
        run_id, mid, t = c.execute("SELECT id, machine_id, started_at FROM runs").fetchone()  # type: ignore[misc]
        first = int(c.execute("SELECT max(id) FROM series").fetchone()[0]) + 1  # type: ignore[index]
        cols = "id, key, operator, provider, variant, shape, dtype, mode, metric, unit, better"
        with c.cursor().copy(f"COPY series ({cols}) FROM STDIN") as cp:
            for i in range(args.series):
                k, m = 64 * (1 + i // 1000 % 100), 16 * (1 + i // 8 % 125)
                shape = f'{{"K":{k},"M":{m},"N":4096}}'
                key = hashlib.sha256(f"bench-{i}".encode()).hexdigest()
                p, d = ("triton", "torch")[i % 2], ("fp16", "bf16")[i // 2 % 2]
                cp.write_row(
                    (first + i, key, ops[i % 8], p, "", shape, d, "fwd", "time", "ms", "lower")
                )
        r0 = int(c.execute("SELECT max(id) FROM results").fetchone()[0]) + 1  # type: ignore[index]
        rcols = "id, run_id, series_id, machine_id, t, status, value, n"
        with c.cursor().copy(f"COPY results ({rcols}) FROM STDIN") as cp:
            for i in range(args.series):
                cp.write_row((r0 + i, run_id, first + i, mid, t, "ok", 1.0 + i % 7, 10))
        for table in ("series", "results"):
            c.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        c.commit()
        c.execute("ANALYZE")
    print(
        f"{args.series:,} series with one result each, written in {time.perf_counter() - t0:.0f} s"
    )
    server, url = _start_server(db, log)
    try:
        shape = '{"K":64,"M":16,"N":4096}'
        queries = [
            {},
            {"operator": "softmax"},
            {"operator": "softmax", "dtype": "bf16", "limit": 50},
            {"dtype": "bf16"},
            {"shape": shape},
            {"operator": "rope", "offset": 5000},
            {"offset": 100000},
        ]
        with httpx.Client(base_url=url, timeout=60) as c:
            c.get("/series")  # the explorer's filter menus, built once per server
            for q in queries:
                ms = []
                for _ in range(args.repeats):
                    t1 = time.perf_counter()
                    r = c.get("/api/v1/series", params=q)
                    ms.append((time.perf_counter() - t1) * 1000)
                    assert r.status_code == 200, r.text
                print(f"  /api/v1/series {q}: p50 {_pct(ms, 50):.0f} ms, p95 {_pct(ms, 95):.0f} ms")
            ms = []
            for _ in range(args.repeats):
                t1 = time.perf_counter()
                c.get("/series", params={"operator": "softmax"})
                ms.append((time.perf_counter() - t1) * 1000)
            print(
                f"  /series?operator=softmax (HTML): p50 {_pct(ms, 50):.0f} ms, p95 {_pct(ms, 95):.0f} ms"
            )
    finally:
        server.terminate()
        server.wait(30)


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
    ap.add_argument(
        "--scenario", choices=["fleet", "two-tenant", "readers", "series"], default="fleet"
    )
    ap.add_argument(
        "--large-results",
        type=int,
        default=0,
        help="Results of the large runs (two-tenant, readers) [default: max_run_results].",
    )
    ap.add_argument("--series", type=int, default=1_000_000, help="Series (scenario series).")
    ap.add_argument("--repeats", type=int, default=40, help="Requests per query (series).")
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
        if args.scenario != "fleet":
            if args.scenario == "readers" and args.readers == 1:
                args.readers = 8
            {"two-tenant": two_tenant, "readers": readers, "series": series_listing}[args.scenario](
                args, db, log
            )
            return
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
