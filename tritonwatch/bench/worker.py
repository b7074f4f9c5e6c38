"""The measuring child process: runs cases, prints one JSON record per line on its stdout.

Started by the runner as ``python -m tritonwatch.bench.worker --cases FILE --device cpu ...``.
Protocol (one JSON object per line): ``{"event": "ready", "fingerprint": ...}`` once, then per
case ``{"event": "start", "index": i}`` and ``{"event": "result", "index": i, ...}``, then
``{"event": "done"}``. With ``--serve`` (A/B) it instead answers commands read from stdin, one
case at a time (see :meth:`Worker.serve`); without ``--cases`` its first line is
``{"do": "setup", "argv": [...]}``, the options that say what to measure, which the driver sends
once it has planned (the worker imports torch and Triton meanwhile, and says ready after it).
Anything the measured code prints goes to stderr, never into the protocol.
Imports only the stdlib, numpy, torch and triton: no database or web code.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from .failures import describe, is_device_error
from .spec import Case, DeviceInfo, load_cases, load_timer_hints

_TRITON_KINDS = ("triton",)
SEGMENT_MIN_SAMPLES = 2  # an A/B segment of a slow kernel: two calls still give its level
# An A/B segment of a fast kernel stops at this many samples: its level (blocks.segment_level)
# is then known far better than blocks differ from each other (new inputs, drift, the worker
# pair), so more samples would buy the verdict nothing (docs/compare.md, step 4 of the method).
SEGMENT_MAX_SAMPLES = 100


@dataclass
class Live:
    """A case made ready to time and kept in the worker between A/B segments."""

    case: Case
    fn: Any
    timer: Any
    rec: dict[str, Any]
    extra: dict[str, Any]
    state_before: dict[str, Any]
    keep: Any  # inputs and the prepared provider: alive as long as the case is
    segments: int = 0


def _emit(out: IO[str], record: dict[str, Any]) -> None:
    out.write(json.dumps(record, default=str) + "\n")
    out.flush()


def _error_size(out: Any, ref: Any) -> tuple[float, str | None]:
    """Largest |out - ref| relative to max|ref| (inf if shapes differ or NaNs appear)."""
    import torch

    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        return math.inf, f"provider returned {type(out).__name__}, not a tensor"
    if tuple(out.shape) != tuple(ref.shape):
        return math.inf, f"output shape {tuple(out.shape)} != reference {tuple(ref.shape)}"
    o = out.to(ref.dtype)
    if not bool(torch.isfinite(o).all()):
        return math.inf, "output has NaN or inf"
    scale = float(ref.abs().max()) or 1.0
    return float((o - ref).abs().max()) / scale, None


class Worker:
    """Runs cases one after another in this process."""

    def __init__(
        self,
        device: DeviceInfo,
        registry: Any,
        budget_ms: float,
        target_ci: float,
        seed: int,
        gpu: int = 0,
    ) -> None:
        self.device = device
        self.registry = registry
        self.budget_ms = budget_ms
        self.target_ci = target_ci
        self.seed = seed
        self.gpu = gpu
        self._event_timer: Any = None
        self.cpu_threads: int | None = None
        self.cpus: list[int] | None = None  # A/B on a CPU: the cores every worker is pinned to
        # case id -> the timer its results were measured with before (sticky timer choice)
        self.timer_hints: dict[str, str] = {}
        self.min_time_ms = 0.0  # GPU: sample at least this long (see settings.min_time_ms)
        self.dev = "cpu" if not device.is_gpu else "cuda"

    def _sync(self) -> None:
        if self.device.is_gpu:
            import torch

            torch.cuda.synchronize()

    def _gpu_state(self) -> dict[str, Any]:
        if not self.device.is_gpu:
            return {}
        from .environment import gpu_state

        return gpu_state(self.gpu)

    def _timer(self, fn: Any, previous: str | None) -> tuple[Any, str | None]:
        """The timer for one case (see :func:`timing.choose_timer`) and a note if it fell back."""
        from .timing import EventTimer, GraphTimer, WallTimer, cache_bytes, choose_timer

        if not self.device.is_gpu:
            return WallTimer(), None
        import statistics

        import torch

        l2 = cache_bytes(torch.cuda.get_device_properties(0))
        if self._event_timer is None:
            self._event_timer = EventTimer(l2)  # one flush buffer and event pool per worker
        device_ms = statistics.median(self._event_timer.sample(fn, 10))
        if choose_timer(device_ms, previous) == "event":
            return self._event_timer, None
        try:
            return GraphTimer(fn, l2, device_ms, events=self._event_timer), None
        except Exception as e:  # noqa: BLE001 - capture can fail (host syncs); events still work
            return self._event_timer, (
                f"graph capture failed ({type(e).__name__}: {str(e)[:120]}); used events"
            )

    def run_case(self, case: Case) -> dict[str, Any]:
        rec, live = self.prepare_case(case)
        return rec if live is None else self.measure_case(live)

    def prepare_case(
        self, case: Case, timer: str | None = None, warm_ms: float | None = None
    ) -> tuple[dict[str, Any], Live | None]:
        """Check ``case`` and make it ready to time: inputs, compile, correctness, warm-up and
        the timer. Returns its record so far and, when it can be timed, the live case (else the
        record is final: skipped, incorrect). ``timer`` overrides the stored hint (A/B: the
        other build's choice, so both sides use one timer). The warm-up runs three calls, and
        for at least ``warm_ms`` (default: 5% of the budget)."""
        op = self.registry.operator(case.operator)
        prov = self.registry.provider(case.operator, case.provider_key)
        rec: dict[str, Any] = {
            "case": case.to_json(),
            "flops": op.flops(case.shape),
            "bytes": op.bytes(case.shape, case.dtype),
        }
        reason = self.registry.why_not(case, self.device)
        if reason:
            return {**rec, "status": "skipped", "error": reason}, None
        extra: dict[str, Any] = (
            {"gpu": self.gpu} if self.device.is_gpu else {"cpu_threads": self.cpu_threads}
        )
        if self.cpus:
            extra["cpus"] = self.cpus
        state_before = self._gpu_state()
        inputs = op.make_inputs(case.shape, case.dtype, self.dev, self.seed)
        prepared = prov.prepare(inputs, case, self.device)
        if prepared.note:
            extra["note"] = prepared.note
        t0 = time.perf_counter()
        out = prepared.fn()
        self._sync()
        extra["compile_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
        ref = op.reference(inputs, case.shape, case.dtype)
        err, why = _error_size(out, ref)
        tol = op.tolerance.get(case.dtype, 1e-2)
        extra["max_error"] = err if math.isfinite(err) else None
        extra["tolerance"] = tol
        extra["config"] = prepared.config()
        del out, ref
        if why or err > tol:
            msg = (
                why or f"max error {err:.3g} (relative to max|reference|) exceeds tolerance {tol:g}"
            )
            rec = {**rec, "status": "incorrect", "correct": False, "error": msg, "extra": extra}
            return rec, None
        if prov.kind in _TRITON_KINDS and self.device.interpreter:
            extra["timer"] = None
            return {
                **rec,
                "status": "skipped",
                "correct": True,
                "extra": extra,
                "error": f"not timed: Triton interpreter on CPU checks correctness only "
                f"(max error {err:.2g})",
            }, None
        # Warm up until steady: a few calls, or ~5% of the budget, whichever is longer.
        warm = 0.05 * self.budget_ms if warm_ms is None else warm_ms
        t0 = time.perf_counter()
        calls = 0
        while calls < 3 or (time.perf_counter() - t0) * 1e3 < warm and calls < 1000:
            prepared.fn()
            calls += 1
            self._sync()
        extra["call_ms"] = round((time.perf_counter() - t0) * 1e3 / calls, 6)
        extra["warm_calls"] = calls
        chosen, note = self._timer(prepared.fn, timer or self.timer_hints.get(case.id))
        if note:
            extra["timer_note"] = note
        extra["timer"] = chosen.name
        rec = {**rec, "status": "ok", "correct": True, "extra": extra}
        return rec, Live(case, prepared.fn, chosen, rec, extra, state_before, (inputs, prepared))

    def measure_case(self, live: Live) -> dict[str, Any]:
        """Time a prepared case for the worker's budget (one ``run``'s measurement)."""
        from .environment import GpuSampler, throttled
        from .timing import measure

        timer, extra = live.timer, live.extra
        if self.device.is_gpu:
            events = getattr(timer, "events", timer)
            misses = events.hold_misses
            with GpuSampler(self.gpu) as sampler:
                m = measure(
                    live.fn,
                    timer,
                    budget_ms=self.budget_ms,
                    target_ci=self.target_ci,
                    min_time_ms=self.min_time_ms,
                )
            during = sampler.summary()
            extra["hold_misses"] = events.hold_misses - misses  # batches retaken (launch gaps)
        else:
            m = measure(live.fn, timer, budget_ms=self.budget_ms, target_ci=self.target_ci)
            during = {}
        state_after = self._gpu_state()

        extra.update(
            {
                "timer": m.timer,
                "stop": m.stop,
                "ci_width": m.ci_width,
                "measure_ms": round(m.elapsed_ms, 3),
            }
        )
        if self.device.is_gpu:
            extra["gpu_state"] = {
                "before": live.state_before,
                "during": during,
                "after": state_after,
            }
            extra["throttled"] = throttled(live.state_before, during, state_after)
        return {**live.rec, "samples": m.samples, "extra": extra}

    def refresh(self, live: Live) -> None:
        """New inputs for a live case, at a new place in memory: a pad of random size is
        allocated first and the old inputs are freed only afterwards.

        Where a tensor lands (DRAM channels, cache sets, page alignment) moves a kernel's time
        by up to ~2% on an H200 (measured: copies and softmax, both directions), and it is fixed
        for as long as the tensors live. A/B re-places the inputs at every block, so this
        offset becomes block-to-block noise the verdict is tested against instead of a
        difference between the two builds. On a GPU the L2 flush buffer moves with them
        (:meth:`EventTimer.move_flush`; not yet measured on a GPU).
        """
        import random as _random

        op = self.registry.operator(live.case.operator)
        prov = self.registry.provider(live.case.operator, live.case.provider_key)
        case = live.case
        pad = None
        if self.device.is_gpu:
            import torch

            pad = torch.empty(_random.randrange(1, 64) << 20 | _random.randrange(0, 1 << 20, 512),
                              dtype=torch.uint8, device="cuda")  # fmt: skip
        inputs = op.make_inputs(case.shape, case.dtype, self.dev, self.seed)
        if self._event_timer is not None:
            self._event_timer.move_flush()  # behind the same pad: its place moves too
        prepared = prov.prepare(inputs, case, self.device)
        prepared.fn()
        self._sync()
        timer = live.timer
        if getattr(timer, "name", "") == "graph":
            from .timing import GraphTimer

            # the same number of calls per replay as the first capture
            timer = GraphTimer(prepared.fn, 0, 1.0 / timer.calls, events=self._event_timer)
        live.fn, live.timer, live.keep = prepared.fn, timer, (inputs, prepared, pad)

    def time_segment(self, live: Live, budget_ms: float, fresh: bool = False) -> dict[str, Any]:
        """One A/B segment: (with ``fresh``, new inputs: see :meth:`refresh`), a call to settle
        (the other build just ran), then samples for ``budget_ms`` (at least
        SEGMENT_MIN_SAMPLES, at most SEGMENT_MAX_SAMPLES). No CI stop: a block's segments must
        be alike so that its ABBA order cancels drift."""
        from .timing import measure

        if fresh:
            self.refresh(live)
        live.fn()
        self._sync()
        m = measure(
            live.fn,
            live.timer,
            budget_ms=budget_ms,
            target_ci=0.0,
            min_samples=SEGMENT_MIN_SAMPLES,
            max_samples=SEGMENT_MAX_SAMPLES,
        )
        live.segments += 1
        return {"samples": m.samples, "elapsed_ms": round(m.elapsed_ms, 3)}

    def finish_live(self, live: Live) -> dict[str, Any]:
        """What the record of an A/B side adds once its segments are done (GPU state after)."""
        if not self.device.is_gpu:
            return {}
        from .environment import throttled

        after = self._gpu_state()
        return {
            "gpu_state": {"before": live.state_before, "after": after},
            "throttled": throttled(live.state_before, {}, after),
        }

    def run(self, cases: Sequence[Case], out: IO[str]) -> None:
        flags = _torch_flags()
        for i, case in enumerate(cases):
            _emit(out, {"event": "start", "index": i, "id": case.id})
            sticky = False
            try:
                rec = self.run_case(case)
            except Exception as e:  # noqa: BLE001 - any failure is this case's error result
                rec = {"case": case.to_json(), "status": "error", "error": describe(e)}
                sticky = is_device_error(e)
                del e
                # A traceback keeps the failed case's tensors alive in a cycle; only then is a
                # full collection worth its cost (~0.5 s with torch and triton loaded).
                gc.collect()
                sticky = not self._recover() or sticky
            finally:
                _restore_torch_flags(flags)  # a provider's TF32 choice ends with its case
            _emit(out, {"event": "result", "index": i, **rec})
            if sticky and i + 1 < len(cases):
                # A CUDA error poisons the context for good: every later case here would fail.
                _emit(out, {"event": "restart", "reason": rec.get("error", "")[:300]})
                return
            if self.device.is_gpu:
                import torch

                torch.cuda.empty_cache()
        _emit(out, {"event": "done"})

    def serve(self, cases: Sequence[Case], inp: IO[str], out: IO[str]) -> None:
        """A/B mode: answer the driver's commands, one JSON object per line on ``inp``, until
        ``quit`` or end of input. One case is live at a time:

        - ``{"do": "prepare", "index": i, "timer": T, "warm_ms": w}`` -> ``prepared``: the
          case's record so far (status ok: ready to time; else final); ``warm_ms`` (optional)
          replaces the warm-up's share of the budget;
        - ``{"do": "time", "index": i, "budget_ms": b, "fresh": f}`` -> ``segment``: samples
          for ~b ms (``fresh``: on new inputs, see :meth:`refresh`);
        - ``{"do": "drop", "index": i}`` -> ``dropped``: the case's memory freed.

        A failure answers the same event with status ``error``; after a sticky device error a
        ``restart`` event follows and the worker exits (the driver starts a fresh one).
        """
        flags = _torch_flags()
        live: dict[int, Live] = {}
        for line in inp:
            try:
                cmd = json.loads(line)
            except json.JSONDecodeError:
                continue
            do, i = cmd.get("do"), cmd.get("index")
            if do == "quit":
                break
            reply = {"prepare": "prepared", "time": "segment", "drop": "dropped"}.get(do)
            if reply is None or not isinstance(i, int) or not 0 <= i < len(cases):
                _emit(out, {"event": "error", "error": f"bad command {line.strip()[:200]}"})
                continue
            sticky = False
            try:
                if do == "prepare":
                    warm = cmd.get("warm_ms")
                    warm_ms = float(warm) if isinstance(warm, (int, float)) else None
                    rec, lv = self.prepare_case(cases[i], cmd.get("timer"), warm_ms)
                    if lv is not None:
                        live[i] = lv
                    else:
                        _restore_torch_flags(flags)
                    ev = {"event": reply, "index": i, **rec}
                elif do == "time":
                    fresh = bool(cmd.get("fresh"))
                    got = self.time_segment(live[i], float(cmd["budget_ms"]), fresh)
                    ev = {"event": reply, "index": i, **got}
                else:
                    lv = live.pop(i, None)
                    ev = {"event": reply, "index": i, **(self.finish_live(lv) if lv else {})}
                    del lv
                    _restore_torch_flags(flags)  # a provider's TF32 choice ends with its case
                    if self.device.is_gpu:
                        import torch

                        torch.cuda.empty_cache()
            except Exception as e:  # noqa: BLE001 - any failure is this case's error
                ev = {"event": reply, "index": i, "status": "error", "error": describe(e)}
                sticky = is_device_error(e)
                del e
                live.pop(i, None)
                _restore_torch_flags(flags)
                gc.collect()
                sticky = not self._recover() or sticky
            _emit(out, ev)
            if sticky:
                _emit(out, {"event": "restart", "reason": str(ev.get("error", ""))[:300]})
                return
        _emit(out, {"event": "done"})

    def _recover(self) -> bool:
        """Free the failed case's memory; False if the device is unusable (a sticky error)."""
        if self.device.is_gpu:
            import torch

            try:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001 - a sticky CUDA error: restart the worker
                return False
        return True


def _torch_flags() -> dict[str, Any]:
    """torch's global precision flags, which a provider may set for its case."""
    try:
        import torch
    except ImportError:
        return {}
    return {
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
    }


def _restore_torch_flags(flags: dict[str, Any]) -> None:
    if not flags:
        return
    import torch

    if torch.backends.cuda.matmul.allow_tf32 != flags["matmul_tf32"]:
        torch.backends.cuda.matmul.allow_tf32 = flags["matmul_tf32"]
    if torch.backends.cudnn.allow_tf32 != flags["cudnn_tf32"]:
        torch.backends.cudnn.allow_tf32 = flags["cudnn_tf32"]


def _warm_measuring() -> None:
    """Run the sampling loop once on a no-op before the first case: its first median imports
    numpy.ma (7-10 ms on a CPU), which a short A/B segment's budget counted, so the first
    segment of every worker stopped after two samples."""
    from .timing import WallTimer, measure

    measure(lambda: None, WallTimer(), budget_ms=0.1, target_ci=0.0)


def pin(cpus: Sequence[int]) -> None:
    """Keep every thread of this process on ``cpus`` (a thread's affinity is its own on Linux;
    threads started later inherit it)."""
    import contextlib

    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), set(cpus))


def _require(p: argparse.ArgumentParser, args: argparse.Namespace, names: list[str]) -> None:
    missing = ["--" + n.replace("_", "-") for n in names if getattr(args, n) is None]
    if missing:
        p.error(f"the following arguments are required: {', '.join(missing)}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tritonwatch.bench.worker")
    p.add_argument("--cases", help="JSON file with the cases to run, in order")
    p.add_argument(
        "--device", choices=("cpu", "cuda", "auto"), required=True, help="auto: the GPU if any"
    )
    p.add_argument("--gpu", type=int, default=0, help="physical GPU index (for NVML)")
    p.add_argument("--budget-ms", type=float)
    p.add_argument("--target-ci", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--plugin", action="append", default=[])
    p.add_argument("--calibrate", action="store_true", help="measure device peaks instead")
    p.add_argument(
        "--serve", action="store_true", help="A/B: answer commands on stdin (see Worker.serve)"
    )
    p.add_argument("--cpu-threads", type=int, default=0, help="torch threads on CPU (0: default)")
    p.add_argument(
        "--min-time-ms", type=float, default=0.0, help="GPU: sample at least this long per case"
    )
    p.add_argument("--tuning-dir", help="A/B: this build's autotuning results (bench.tuning)")
    p.add_argument(
        "--pin-cpus", help="A/B on a CPU: comma list of cores to time on, pinned after start-up"
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    # --serve without --cases: the rest comes in the first line on stdin, once the imports are
    # done (``{"do": "setup", "argv": [...]}``), so the driver can start its workers before it
    # has planned (bench.live.Crew).
    late = args.serve and args.cases is None
    if not late:
        _require(p, args, ["cases", "budget_ms", "target_ci", "seed"])
    if args.device == "auto":  # decided here, before anything imports triton
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    # Both must be set before triton is imported anywhere in this process.
    if args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    if args.tuning_dir:
        from .tuning import share_tuning

        share_tuning(os.environ, args.tuning_dir)
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray prints from kernels or libraries go to stderr
    sys.stdout = sys.stderr
    from .. import plugins
    from .environment import fingerprint, probe_device

    device = probe_device(args.device)
    if args.calibrate:
        _emit(proto, {"event": "ready", "fingerprint": fingerprint(device, gpu=args.gpu)})
        from .calibration import calibrate

        _emit(proto, {"event": "calibration", "peaks": calibrate(args.budget_ms)})
        return 0
    registry = plugins.load(args.plugin)
    _warm_measuring()
    if late:
        line = sys.stdin.readline()
        setup = json.loads(line) if line.strip() else {"do": "quit"}
        if setup.get("do") == "quit":
            return 0  # the driver stopped (a bad option, Ctrl-C) before it had planned
        if setup.get("do") != "setup":
            p.error(f"--serve without --cases: expected a setup line first, got {line[:200]!r}")
        device_flag = args.device
        args = p.parse_args([*argv, *setup["argv"]])
        args.device = device_flag
        _require(p, args, ["cases", "budget_ms", "target_ci", "seed"])
    with open(args.cases, encoding="utf-8") as f:
        text = f.read()
    cases = load_cases(text)
    cpus = [int(c) for c in args.pin_cpus.split(",")] if args.pin_cpus else None
    if cpus and not device.is_gpu:
        pin(cpus)  # after the imports, which the workers of an A/B run side by side
    _emit(
        proto,
        {
            "event": "ready",
            "fingerprint": fingerprint(device, gpu=args.gpu),
            "device": {"kind": device.kind, "arch": device.arch, "name": device.name},
        },
    )
    worker = Worker(device, registry, args.budget_ms, args.target_ci, args.seed, args.gpu)
    worker.timer_hints = load_timer_hints(text)
    worker.min_time_ms = args.min_time_ms
    if not device.is_gpu and args.cpu_threads > 0:
        import torch

        # Intra-op threads that wait on each other turn a busy machine's noise into 1000x outliers.
        torch.set_num_threads(args.cpu_threads)
        worker.cpu_threads = args.cpu_threads
    if cpus and not device.is_gpu:
        worker.cpus = cpus
    try:
        if args.serve:
            worker.serve(cases, sys.stdin, proto)
            # Nothing is left to write: skip the interpreter's teardown (half a second with
            # torch loaded), which the driver would otherwise wait for once per worker.
            proto.flush()
            sys.stderr.flush()
            os._exit(0)
        else:
            worker.run(cases, proto)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
