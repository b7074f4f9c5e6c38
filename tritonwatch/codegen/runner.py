"""The parent side of compiling: plan tasks, take hits from the cache, run worker subprocesses.

Each task is one spec x one target in one environment. Misses are split into chunks (targets
interleaved so chunks cost about the same) and run by up to ``jobs`` worker processes at once,
each launched by file path with the environment's Python. A worker streams one JSON line per
task; a worker that crashes or says nothing for ``case_timeout_s`` is killed, the task it was on
is recorded as an error, and the rest of its chunk goes to a fresh worker.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import settings
from .cache import CompileCache, cache_key
from .envs import WORKER, EnvInfo
from .specs import CompileSpec

# Tool locations a user may point Triton at on purpose; every other TRITON_* switch is dropped so
# both sides compile the same way.
_PASS_THROUGH = (
    "TRITON_PTXAS_PATH",
    "TRITON_PTXAS_BLACKWELL_PATH",
    "TRITON_CUOBJDUMP_PATH",
    "TRITON_NVDISASM_PATH",
    "TRITON_HOME",
)
_PINNED = {
    "TRITON_DISABLE_LINE_INFO": "1",
    "TRITON_DEFAULT_FP_FUSION": "1",
    "TRITON_ALWAYS_COMPILE": "1",
    "TRITON_DUMP_PTXAS_LOG": "1",
}


@dataclass(frozen=True)
class Task:
    env_index: int
    spec_index: int
    target: str
    key: str


@dataclass
class CompileOutcome:
    """Worker results by (env index, spec index, target), and what it took.

    Fresh results are in ``results``; cache hits are only noted (``keys``) and read on demand by
    :meth:`raw`, so a warm run whose analyses are cached never reads the large raw artifacts.
    """

    cache: CompileCache
    results: dict[tuple[int, int, str], dict[str, Any]] = field(default_factory=dict)
    keys: dict[tuple[int, int, str], str] = field(default_factory=dict)
    skipped: dict[tuple[int, int, str], str] = field(default_factory=dict)  # -> why not compiled
    n_tasks: int = 0
    n_cached: int = 0
    n_compiled: int = 0
    wall_s: float = 0.0

    def __contains__(self, index: tuple[int, int, str]) -> bool:
        return index in self.keys

    def raw(self, index: tuple[int, int, str]) -> dict[str, Any] | None:
        if index in self.results:
            return self.results[index]
        if index not in self.keys:
            return None
        got = self.cache.get(self.keys[index])
        if got is None:  # evicted since planning: report it rather than guess
            got = {
                "status": "error",
                "error": "compile cache entry vanished; run again",
                "transient": True,
            }
        return got


def worker_environ(cache_dir: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRITON_", "MLIR_", "LLVM_")) or k in _PASS_THROUGH
    }
    env.update(_PINNED)
    env["TRITON_CACHE_DIR"] = cache_dir
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def kernel_keys(
    env: EnvInfo, specs: Sequence[CompileSpec], timeout_s: float
) -> dict[tuple[str, str], dict[str, str]]:
    """Each kernel's dependency key as ``env``'s Triton computes it (``{"key": ...}``), or why it
    could not be loaded (``{"error": ...}``), by (file, kernel).

    One worker imports every kernel module once: the key must come from the environment that
    compiles, since the kernel's jit dependencies are resolved there.
    """
    refs = sorted({(s.file, s.kernel) for s in specs})
    request = {"kernels": [{"id": str(i), "file": f, "kernel": k} for i, (f, k) in enumerate(refs)]}
    with tempfile.TemporaryDirectory(prefix="tw-triton-cache-") as tcache:
        try:
            r = subprocess.run(
                [env.python, str(WORKER), "keys"],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                env=worker_environ(tcache),
                timeout=timeout_s,
            )
            got = json.loads(r.stdout)["keys"] if r.returncode == 0 else None
            why = (r.stderr.strip().splitlines() or ["no output"])[-1]
        except subprocess.TimeoutExpired:
            got, why = None, f"no answer within {timeout_s:.0f} s"
        except (json.JSONDecodeError, KeyError):
            got, why = None, "it printed something other than JSON"
    if got is None:
        err = {"error": f"the key worker of {env.name} failed: {why}"}
        return {ref: err for ref in refs}
    return {ref: got.get(str(i), {"error": "no key"}) for i, ref in enumerate(refs)}


def _task_json(spec: CompileSpec, target: str, task_id: str) -> dict[str, Any]:
    return {
        "id": task_id,
        "file": spec.file,
        "kernel": spec.kernel,
        "signature": spec.signature,
        "constexprs": spec.constexprs,
        "divisibility": list(spec.divisibility),
        "options": spec.compile_options(),
        "target": target,
    }


def _converse(
    proc: subprocess.Popen[bytes],
    request: dict[str, Any],
    by_id: dict[str, Task],
    done: set[str],
    timeout_s: float,
    on_result: Callable[[Task, dict[str, Any]], None],
) -> tuple[str | None, str | None]:
    """Feed one worker its tasks and read its events; returns (why it stopped early, the task it
    was on) -- both None when it finished."""
    if proc.stdin is None or proc.stdout is None:
        raise RuntimeError("worker pipes are missing")
    proc.stdin.write(json.dumps(request).encode())
    proc.stdin.close()
    current: str | None = None
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            os.killpg(proc.pid, signal.SIGKILL)
            return f"no answer from the compile worker for {timeout_s:.0f} s; killed", current
        line = proc.stdout.readline()
        if not line:
            return None, current
        ev = json.loads(line)
        if ev["event"] == "start":
            current = ev["id"]
        elif ev["event"] == "result":
            done.add(ev["id"])
            current = None
            on_result(by_id[ev["id"]], ev["result"])
        elif ev["event"] == "done":
            return None, None


def _run_chunk(
    env: EnvInfo,
    specs: Sequence[CompileSpec],
    chunk: list[Task],
    timeout_s: float,
    on_result: Callable[[Task, dict[str, Any]], None],
) -> None:
    pending = list(chunk)
    while pending:
        by_id = {str(i): t for i, t in enumerate(pending)}
        request = {
            "tasks": [_task_json(specs[t.spec_index], t.target, i) for i, t in by_id.items()]
        }
        done: set[str] = set()
        with (
            tempfile.TemporaryDirectory(prefix="tw-triton-cache-") as tcache,
            tempfile.TemporaryFile(mode="w+b") as err,
        ):
            with subprocess.Popen(
                [env.python, str(WORKER), "compile"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=worker_environ(tcache),
                start_new_session=True,
            ) as proc:
                reason, current = _converse(proc, request, by_id, done, timeout_s, on_result)
                code = proc.wait()
            if reason is None and len(done) < len(by_id):
                err.seek(0)
                tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
                reason = (
                    f"compile worker exited with code {code}: {' / '.join(tail) or 'no output'}"
                )
        if len(done) == len(by_id):
            return
        if current is not None:
            on_result(by_id[current], {"status": "error", "error": reason, "transient": True})
            done.add(current)
        elif not done:  # died before starting anything: every task fails the same way
            for t in by_id.values():
                on_result(t, {"status": "error", "error": reason, "transient": True})
            return
        pending = [t for i, t in by_id.items() if i not in done]


def compile_all(
    envs: Sequence[EnvInfo],
    specs: Sequence[CompileSpec],
    targets: Sequence[str],
    *,
    jobs: int | None = None,
    cache: CompileCache | None = None,
    progress: bool = False,
    label: str = "compiling",
) -> CompileOutcome:
    """Compile every applicable spec x target in every environment; results keyed by indices."""
    t0 = time.perf_counter()
    jobs = max(1, int(jobs if jobs is not None else settings.get("jobs")))
    timeout_s = float(settings.get("case_timeout_s"))
    cache = cache if cache is not None else CompileCache()
    out = CompileOutcome(cache=cache)
    with ThreadPoolExecutor(max_workers=max(1, len(envs))) as pool:
        dep_keys = list(pool.map(lambda e: kernel_keys(e, specs, timeout_s), envs))
    misses: dict[int, list[Task]] = {}
    for ei, env in enumerate(envs):
        fp = env.fingerprint()
        for si, spec in enumerate(specs):
            dep = dep_keys[ei][(spec.file, spec.kernel)]
            for target in targets:
                why = spec.why_not(target, env.triton_version)
                if why is not None:
                    out.skipped[(ei, si, target)] = why
                    continue
                key = cache_key(fp, spec.key(), target, dep.get("key") or "")
                task = Task(ei, si, target, key)
                out.keys[(ei, si, target)] = key
                out.n_tasks += 1
                if "error" in dep:  # the kernel cannot be loaded there: nothing to compile
                    out.results[(ei, si, target)] = {
                        "status": "error",
                        "error": dep["error"],
                        "transient": True,
                    }
                elif cache.has(key):
                    out.n_cached += 1
                else:
                    misses.setdefault(ei, []).append(task)
    chunks: list[tuple[int, list[Task]]] = []
    n_miss = sum(len(v) for v in misses.values())
    per_chunk = max(1, math.ceil(n_miss / (jobs * 3))) if n_miss else 1
    for ei, tasks in misses.items():
        tasks.sort(key=lambda t: (t.target, t.spec_index))
        n_chunks = max(1, math.ceil(len(tasks) / per_chunk))
        for c in range(n_chunks):
            chunks.append((ei, tasks[c::n_chunks]))  # interleave targets and kernels
    lock = threading.Lock()
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=False,
    ) as bar:
        ptask = bar.add_task(label, total=out.n_tasks, completed=out.n_cached)

        def on_result(task: Task, result: dict[str, Any]) -> None:
            with lock:
                out.results[(task.env_index, task.spec_index, task.target)] = result
                out.n_compiled += 1
                bar.advance(ptask)
            cache.put(task.key, result)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(_run_chunk, envs[ei], specs, chunk, timeout_s, on_result)
                for ei, chunk in chunks
            ]
            for f in futures:
                f.result()
    if out.n_compiled:
        cache.prune()  # keep the cache under its size cap (least recently used go first)
    out.wall_s = time.perf_counter() - t0
    return out
