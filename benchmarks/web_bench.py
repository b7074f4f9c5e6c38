#!/usr/bin/env python3
"""Dashboard benchmark: series API latency, overview server time, and 50 concurrent clients.

For each backend it fills a fresh database with N synthetic results (the fleet layout of
``store_bench.py``: 365 nightly runs on 4 machines), starts a real ``tritonwatch serve`` on a
free loopback port, and measures through HTTP:

- the series API (``/api/v1/series/{series}/{machine}``, 365 newest points) as p50/p95 of the
  client's wall time and of the server's own time (the ``Server-Timing`` header);
- the overview page (``/``: newest runs, open alerts, the newest-vs-previous heat map);
- a load of C concurrent clients (default 50) for D seconds (default 30, at most 300), each
  looping over a mix of series API calls, series explorer pages, overview pages and run lists;
  it counts requests, errors (non-200 answers and exceptions) and latency percentiles.

    python benchmarks/web_bench.py                       # 200,000 results, both backends
    python benchmarks/web_bench.py --results 10000000 --backend postgres
    python benchmarks/web_bench.py --db sqlite:///big.db  # reuse a filled database (store_bench --keep)

Targets (issue #6), at 10 M results on both backends: series API p95 <= 100 ms, overview page
<= 300 ms server time, 50 clients for 30 s with no errors.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import _fresh_pg, fill  # noqa: E402

from tritonwatch.store import Store  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s))) - 1))]


def server_ms(r: httpx.Response) -> float:
    timing = r.headers.get("server-timing", "")
    try:
        return float(timing.split("dur=")[1].split(",")[0])
    except (IndexError, ValueError):
        return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``tritonwatch serve`` in a subprocess on a loopback port; its log kept for failures."""

    def __init__(self, url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRITONWATCH_")}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tritonwatch",
                    "serve",
                    "--db",
                    url,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def timed(client: httpx.Client, path: str) -> tuple[float, float]:
    t = time.perf_counter()
    r = client.get(path)
    wall = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise SystemExit(f"GET {path} -> {r.status_code}: {r.text[:300]}")
    return wall, server_ms(r)


@dataclass
class Load:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def load(base: str, pairs: list[tuple[int, int]], clients: int, duration: float) -> Load:
    out = Load()
    stop_at = time.monotonic() + duration

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        with httpx.Client(base_url=base, timeout=30) as c:
            while time.monotonic() < stop_at:
                x = rnd.random()
                sid, mid = rnd.choice(pairs)
                if x < 0.7:
                    path = f"/api/v1/series/{sid}/{mid}?limit=365"
                elif x < 0.8:
                    path = "/"
                elif x < 0.9:
                    path = "/api/v1/runs?limit=50"
                else:
                    path = "/series?operator=matmul&dtype=fp16&provider=triton&variant=pointers"
                t = time.perf_counter()
                try:
                    r = c.get(path)
                    ok = r.status_code == 200
                    why = f"{path} -> {r.status_code}"
                except httpx.HTTPError as e:
                    ok, why = False, f"{path} -> {type(e).__name__}: {e}"
                ms = (time.perf_counter() - t) * 1000
                with out.lock:
                    out.requests += 1
                    out.latencies.append(ms)
                    if not ok:
                        out.errors += 1
                        if len(out.first_errors) < 5:
                            out.first_errors.append(why)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return out


def bench(url: str, args: argparse.Namespace, folder: Path) -> dict[str, object]:
    with Store.open(url) as st:
        counts = st.info().counts
        pairs = [(r.series_id, r.machine_id) for r in st.series.catalog(limit=2000)]
    srv = Server(url, folder / f"serve-{abs(hash(url))}.log")
    try:
        with httpx.Client(base_url=srv.base, timeout=60) as c:
            # The first overview computes the heat map from the database (and compiles the
            # templates); later ones reuse the cells of an unchanged pair of runs.
            cold_wall, cold_srv = timed(c, "/")
            rnd = random.Random(1)
            for sid, mid in rnd.sample(pairs, min(20, len(pairs))):  # warm up
                timed(c, f"/api/v1/series/{sid}/{mid}?limit=365")
            timed(c, "/")
            series_wall, series_srv = [], []
            for _ in range(args.queries):
                sid, mid = rnd.choice(pairs)
                w, s_ = timed(c, f"/api/v1/series/{sid}/{mid}?limit=365")
                series_wall.append(w)
                series_srv.append(s_)
            ov_wall, ov_srv = [], []
            for _ in range(args.overview):
                w, s_ = timed(c, "/")
                ov_wall.append(w)
                ov_srv.append(s_)
        ld = load(srv.base, pairs, args.clients, args.duration)
    finally:
        srv.stop()
    return {
        "host load average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "cpus": os.cpu_count(),
        "results": counts["results"],
        "runs": counts["runs"],
        "series": len(pairs),
        "series p50 ms": statistics.median(series_wall),
        "series p95 ms": pct(series_wall, 0.95),
        "series p95 server ms": pct(series_srv, 0.95),
        "overview cold ms": cold_wall,
        "overview cold server ms": cold_srv,
        "overview p50 ms": statistics.median(ov_wall),
        "overview p95 ms": pct(ov_wall, 0.95),
        "overview p95 server ms": pct(ov_srv, 0.95),
        "load clients": args.clients,
        "load s": args.duration,
        "load requests": ld.requests,
        "load req/s": ld.requests / args.duration,
        "load errors": ld.errors,
        "load p95 ms": pct(ld.latencies, 0.95),
        "first errors": ld.first_errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--results", type=int, default=200_000)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--db", default=None, help="Benchmark this filled database instead of filling.")
    ap.add_argument("--queries", type=int, default=200, help="Series API requests timed.")
    ap.add_argument("--overview", type=int, default=30, help="Overview page requests timed.")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--keep", action="store_true", help="Keep the filled databases afterwards.")
    args = ap.parse_args()
    if not 1 <= args.clients <= 200 or not 1 <= args.duration <= 300:
        ap.error("--clients must be 1..200 and --duration 1..300 seconds")
    folder = Path(tempfile.mkdtemp(prefix="tw-web-bench-"))
    targets: list[tuple[str, str]] = []
    if args.db:
        targets.append((args.db.split(":")[0], args.db))
    else:
        for backend in ["sqlite", "postgres"] if args.backend == "both" else [args.backend]:
            if backend == "sqlite":
                url = f"sqlite:///{folder / 'web.db'}"
            else:
                url = _fresh_pg(args.pg_admin, f"tw_web_bench_{args.results}")
            print(f"filling {backend} with {args.results:,} results ...", file=sys.stderr)
            n, spent = fill(url, args.results, quiet=True)
            print(f"  {n:,} results in {spent:.0f} s", file=sys.stderr)
            if backend == "postgres":  # what autovacuum does on a server; this one may run without
                with Store.open(url) as st, st.engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE")
            targets.append((backend, url))
    try:
        for backend, url in targets:
            res = bench(url, args, folder)
            print(f"\n== {backend} ==")
            for k, v in res.items():
                print(f"  {k:<24} {v:,.1f}" if isinstance(v, float) else f"  {k:<24} {v}")
    finally:
        if not args.keep and not args.db:
            shutil.rmtree(folder, ignore_errors=True)
            if any(b == "postgres" for b, _ in targets):
                _drop_pg(args.pg_admin, f"tw_web_bench_{args.results}")
        elif not args.db:
            print(f"kept: {', '.join(u for _, u in targets)}", file=sys.stderr)


def _drop_pg(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
