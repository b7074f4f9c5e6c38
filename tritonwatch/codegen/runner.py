"""The parent side of compiling: plan tasks, take hits from the cache, run worker subprocesses.

Each task is one spec x one target in one environment. Misses (one per distinct cache key, so an
A/A run compiles each once) are run by ``jobs`` threads, each feeding one long-lived worker
process (launched by file path with the environment's Python) one task at a time, so a kernel
library's imports are paid once per worker. A worker that crashes or says nothing for
``case_timeout_s`` is killed, the task it was on is recorded as an error, and a fresh worker
takes the next task. Ctrl-C kills the live workers at once.
"""

from __future__ import annotations

import contextlib
import json
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

from .. import settings
from .cache import CompileCache, cache_key
from .envs import WORKER, EnvInfo
from .specs import CompileSpec

# progress(label, done, total): how the caller shows compile progress (a bar, a log line).
CompileProgress = Callable[[str, int, int], None]

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
    n_shared: int = 0  # rows answered by another row's identical compile (A/A through one Python)
    interrupted: bool = False  # Ctrl-C: what finished is here, the rest is in ``skipped``
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


def key_fingerprint(env: EnvInfo) -> dict[str, Any]:
    """The environment's part of a cache key: its Triton build, and the tool paths passed
    through to the workers (another ptxas is another result)."""
    tools = {k: os.environ[k] for k in _PASS_THROUGH if os.environ.get(k)}
    return {**env.fingerprint(), "tools_env": tools} if tools else env.fingerprint()


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
        except OSError as e:  # the Python vanished since it was probed
            got, why = None, f"cannot run {env.python}: {e.strerror or e}"
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


class _Died(Exception):
    """The worker died or went silent; the message says why."""


class _Worker:
    """One compile worker process of one environment, fed one task at a time.

    It lives for many tasks, so a library's heavy imports (torch, the kernel package) are paid
    once per worker, not once per task.
    """

    def __init__(self, env: EnvInfo) -> None:
        self._tcache = tempfile.TemporaryDirectory(prefix="tw-triton-cache-")
        self._err = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - closed in close()
        self._buf = b""
        try:
            self.proc = subprocess.Popen(
                [env.python, str(WORKER), "compile"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._err,
                env=worker_environ(self._tcache.name),
                start_new_session=True,
            )
        except BaseException:
            self._err.close()
            self._tcache.cleanup()
            raise

    def _readline(self, timeout_s: float) -> bytes | None:
        if self.proc.stdout is None:
            raise RuntimeError("worker pipes are missing")
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                self.kill()
                raise _Died(f"no answer from the compile worker for {timeout_s:.0f} s; killed")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _exit_reason(self) -> str:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        self._err.seek(0)
        tail = self._err.read().decode(errors="replace").strip().splitlines()[-3:]
        return f"compile worker exited with code {code}: {' / '.join(tail) or 'no output'}"

    def run(self, task: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """The task's result; raises _Died when the worker dies or says nothing for timeout_s."""
        if self.proc.stdin is None:
            raise RuntimeError("worker pipes are missing")
        try:
            self.proc.stdin.write((json.dumps(task) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _Died(self._exit_reason()) from None
        while True:
            line = self._readline(timeout_s)
            if line is None:
                raise _Died(self._exit_reason())
            ev = json.loads(line)
            if ev.get("event") == "result":
                return dict(ev["result"])

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        """Let the worker finish (end of input), or kill it if it lingers; free its files."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self._err):
            if f is not None:
                f.close()
        self._tcache.cleanup()


class _Pool:
    """Tasks of several environments, run by ``jobs`` threads that each keep one live worker.

    A thread keeps to one environment while it has tasks (its worker's imports are reused) and
    helps with another's when its own run out. ``stop()`` kills every live worker at once, so
    Ctrl-C ends a run within a second or two.
    """

    def __init__(self, envs: Sequence[EnvInfo], specs: Sequence[CompileSpec], timeout_s: float):
        self.envs, self.specs, self.timeout_s = envs, specs, timeout_s
        self.queues: dict[int, list[Task]] = {}
        self.lock = threading.Lock()
        self.live: set[_Worker] = set()
        self.stopped = threading.Event()

    def add(self, task: Task) -> None:
        self.queues.setdefault(task.env_index, []).append(task)

    def _next(self, prefer: int | None) -> Task | None:
        with self.lock:
            if self.stopped.is_set():
                return None
            if prefer is not None and self.queues.get(prefer):
                return self.queues[prefer].pop(0)
            busiest = max(self.queues, key=lambda e: len(self.queues[e]), default=None)
            if busiest is None or not self.queues[busiest]:
                return None
            return self.queues[busiest].pop(0)

    def _thread(self, first: int | None, on_result: Callable[[Task, dict[str, Any]], None]) -> None:
        worker: _Worker | None = None
        env: int | None = first
        try:
            while (task := self._next(env)) is not None:
                if worker is not None and task.env_index != env:
                    self._retire(worker)
                    worker = None
                env = task.env_index
                if worker is None:
                    try:
                        worker = _Worker(self.envs[env])
                    except OSError as e:  # the Python vanished or lost its permissions
                        why = f"cannot start the compile worker: {e.strerror or e}"
                        on_result(task, {"status": "error", "error": why, "transient": True})
                        continue
                    with self.lock:
                        self.live.add(worker)
                spec = self.specs[task.spec_index]
                try:
                    res = worker.run(_task_json(spec, task.target, "0"), self.timeout_s)
                except _Died as e:
                    res = {"status": "error", "error": str(e), "transient": True}
                    self._retire(worker)
                    worker = None
                if self.stopped.is_set():
                    return
                on_result(task, res)
        finally:
            if worker is not None:
                self._retire(worker)

    def _retire(self, worker: _Worker) -> None:
        with self.lock:
            self.live.discard(worker)
        worker.close()

    def run(self, jobs: int, on_result: Callable[[Task, dict[str, Any]], None]) -> None:
        n = sum(len(q) for q in self.queues.values())
        if not n:
            return
        envs = sorted(self.queues)
        threads = [
            threading.Thread(
                target=self._thread, args=(envs[i % len(envs)], on_result), daemon=True
            )
            for i in range(min(jobs, n))
        ]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except BaseException:  # Ctrl-C: stop handing out tasks and kill what is running
            self.stop()
            raise

    def stop(self) -> None:
        self.stopped.set()
        with self.lock:
            live = list(self.live)
        for w in live:
            w.kill()


def compile_all(
    envs: Sequence[EnvInfo],
    specs: Sequence[CompileSpec],
    targets: Sequence[str],
    *,
    jobs: int | None = None,
    cache: CompileCache | None = None,
    progress: CompileProgress | None = None,
    label: str = "compiling",
) -> CompileOutcome:
    """Compile every applicable spec x target in every environment; results keyed by indices.

    ``progress(label, done, total)`` is called once before compiling (cached results count as
    done) and after each result, from worker threads one at a time, as the runner reports.
    """
    t0 = time.perf_counter()
    jobs = max(1, int(jobs if jobs is not None else settings.get("jobs")))
    timeout_s = float(settings.get("case_timeout_s"))
    cache = cache if cache is not None else CompileCache()
    out = CompileOutcome(cache=cache)
    # One key worker per distinct environment (an A/A run through one Python asks once).
    distinct = {json.dumps(e.fingerprint(), sort_keys=True): e for e in envs}
    with ThreadPoolExecutor(max_workers=max(1, len(distinct))) as keys_pool:
        found = dict(
            zip(
                distinct,
                keys_pool.map(lambda e: kernel_keys(e, specs, timeout_s), distinct.values()),
                strict=True,
            )
        )
    dep_keys = [found[json.dumps(e.fingerprint(), sort_keys=True)] for e in envs]
    pool = _Pool(envs, specs, timeout_s)
    planned: dict[str, list[tuple[int, int, str]]] = {}  # key -> every index it answers
    for ei, env in enumerate(envs):
        fp = key_fingerprint(env)
        for si, spec in enumerate(specs):
            dep = dep_keys[ei][(spec.file, spec.kernel)]
            for target in targets:
                why = spec.why_not(target, env.triton_version)
                if why is not None:
                    out.skipped[(ei, si, target)] = why
                    continue
                key = cache_key(fp, spec.key(), target, dep.get("key") or "")
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
                elif key in planned:  # the same compile for another row (an A/A run): once
                    planned[key].append((ei, si, target))
                    out.n_shared += 1
                else:
                    planned[key] = [(ei, si, target)]
                    pool.add(Task(ei, si, target, key))
    for queue in pool.queues.values():
        queue.sort(key=lambda t: (t.spec_index, t.target))  # kernels and targets interleaved
    lock = threading.Lock()
    report = progress or (lambda _label, _done, _total: None)
    answered = [out.n_cached + len(out.results)]  # cached, and kernels that cannot load
    report(label, answered[0], out.n_tasks)

    def on_result(task: Task, result: dict[str, Any]) -> None:
        with lock:
            for index in planned[task.key]:
                out.results[index] = result
            out.n_compiled += 1
            answered[0] += len(planned[task.key])
            report(label, answered[0], out.n_tasks)
        cache.put(task.key, result)

    try:
        pool.run(jobs, on_result)
    except KeyboardInterrupt:  # keep what finished; the caller reports it as partial
        out.interrupted = True
        with lock:
            for indices in planned.values():
                for index in indices:
                    if index not in out.results:
                        out.skipped[index] = "not compiled: interrupted (Ctrl-C)"
    if out.n_compiled:
        cache.prune()  # keep the cache under its size cap (least recently used go first)
    out.wall_s = time.perf_counter() - t0
    return out
