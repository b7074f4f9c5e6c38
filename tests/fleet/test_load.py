"""50 concurrent uploaders and readers against one server on PostgreSQL: no errors, nothing lost.

Bounded: TRITONWATCH_LOAD_SECONDS (default 10) of load; `benchmarks/upload_bench.py` runs the
full 60 s and reports rates and latencies.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from fleetkit import Server, pg_counts

from tritonwatch.store import Store
from tritonwatch.testing import make_run_document

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SECONDS = float(os.environ.get("TRITONWATCH_LOAD_SECONDS", "10"))
UPLOADERS = 25
READERS = 25


def test_50_concurrent_uploaders_and_readers(shared_server: Server, module_pg: str) -> None:
    with Store.open(module_pg) as st:
        tokens = [
            st.access.create_token("load", f"r{i}", scopes=("upload",)).token
            for i in range(UPLOADERS)
        ]
    stop = time.monotonic() + SECONDS
    lock = threading.Lock()
    created: dict[str, int] = {}
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    series_ids: list[tuple[int, int]] = []

    def note(kind: str, r: httpx.Response, ok: tuple[int, ...]) -> bool:
        with lock:
            statuses[f"{kind} {r.status_code}"] += 1
            if r.status_code not in ok:
                errors.append(f"{kind} {r.status_code}: {r.text[:200]}")
                return False
        return True

    def uploader(i: int) -> None:
        rnd = random.Random(i)
        sent: list[dict[str, Any]] = []
        with httpx.Client(
            base_url=shared_server.url, timeout=60, headers={"Authorization": f"Bearer {tokens[i]}"}
        ) as c:
            n = 0
            while time.monotonic() < stop:
                try:
                    if sent and rnd.random() < 0.2:  # a retry of a stored run: 200, no duplicate
                        note("retry", c.post("/api/v1/runs", json=rnd.choice(sent)), (200,))
                        continue
                    n += 1
                    doc = make_run_document(
                        n_results=20,
                        machine=f"m{i}",
                        seed=n,
                        started_at=f"2026-11-{1 + n % 28:02d}T{i % 24:02d}:00:00Z",
                    )
                    r = c.post("/api/v1/runs", json=doc)
                    if note("upload", r, (201,)):
                        sent.append(doc)
                        with lock:
                            created[doc["run"]["id"]] = len(doc["results"])
                except httpx.HTTPError as e:
                    with lock:
                        errors.append(f"upload {type(e).__name__}: {e}")

    def reader(i: int) -> None:
        rnd = random.Random(100 + i)
        with httpx.Client(base_url=shared_server.url, timeout=60) as c:
            while time.monotonic() < stop:
                try:
                    pick = rnd.random()
                    if pick < 0.3:
                        note("runs", c.get("/api/v1/runs", params={"org": "load"}), (200,))
                    elif pick < 0.5:
                        r = c.get("/api/v1/series", params={"operator": "matmul", "limit": 50})
                        if note("series", r, (200,)):
                            with lock:
                                series_ids[:] = [
                                    (x["series_id"], x["machine_id"]) for x in r.json()["items"]
                                ]
                    elif pick < 0.85 and series_ids:
                        sid, mid = rnd.choice(series_ids)
                        note("points", c.get(f"/api/v1/series/{sid}/{mid}"), (200,))
                    else:
                        note("page", c.get("/runs"), (200,))
                except httpx.HTTPError as e:
                    with lock:
                        errors.append(f"read {type(e).__name__}: {e}")

    threads = [threading.Thread(target=uploader, args=(i,)) for i in range(UPLOADERS)]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 120)
    assert not errors, (errors[:10], statuses)
    assert created and statuses["points 200"] > 0 and statuses["retry 200"] > 0, statuses
    # nothing lost, nothing duplicated, nothing partial
    with Store.open(module_pg) as st:
        stored = {r.uuid: r.n_results for r in st.runs.find(org="load", limit=None)}
    assert stored == created
    c = pg_counts(module_pg)
    assert c["dup_uuids"] == 0 and c["partial"] == 0
