"""What a benchmark is: an Operator (inputs, reference, FLOPs, bytes, shapes), the Providers that
compute it, and the Cases (operator x provider x shape x dtype) a suite expands into.

Worker side: imports only the stdlib (operators bring torch and triton themselves).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The dtype names a user types, in the order tables show them.
# tf32 is fp32 data multiplied on TF32 matrix units (a separate series from true fp32).
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8e4m3")
MODES = ("fwd",)

Shape = dict[str, int]


@dataclass(frozen=True)
class DeviceInfo:
    """Where cases will run, as far as availability checks need to know.

    ``kind`` is cuda, rocm or cpu; ``arch`` is ``sm90``/``gfx942``/``cpu``; ``interpreter`` is
    true when Triton kernels run under ``TRITON_INTERPRET=1``.
    """

    kind: str
    arch: str
    name: str = ""
    capability: tuple[int, int] | None = None
    sm_count: int | None = None
    interpreter: bool = False
    count: int | None = None  # GPUs visible to the runner (workers may each see only one)

    @property
    def is_gpu(self) -> bool:
        return self.kind != "cpu"

    @property
    def has_fp8(self) -> bool:
        if self.kind == "cuda" and self.capability is not None:
            return self.capability >= (8, 9)
        return self.kind == "rocm" and self.arch in ("gfx942", "gfx950")

    @property
    def has_tma(self) -> bool:
        return self.kind == "cuda" and self.capability is not None and self.capability >= (9, 0)


@dataclass
class Prepared:
    """A provider made ready for one case: ``fn()`` runs it once and returns the output.

    ``config`` describes what was chosen (autotune config, block sizes) once ``fn`` has run
    at least once; it is a callable because autotuners only know after the first call.
    """

    fn: Callable[[], Any]
    config: Callable[[], dict[str, Any]] = field(default=lambda: {})
    # Under the interpreter some dtypes are computed in fp32 (see Provider.interpreter_upcast).
    note: str | None = None


@dataclass(frozen=True)
class Provider:
    """One implementation of an operator.

    ``prepare(inputs, case, device)`` returns a :class:`Prepared`; ``available(device, dtype)``
    returns None when it can run, else the reason it cannot.
    """

    operator: str
    name: str
    prepare: Callable[[Any, Case, DeviceInfo], Prepared]
    variant: str = ""
    kind: str = "triton"  # triton | torch | inductor | other
    dtypes: tuple[str, ...] | None = None
    available: Callable[[DeviceInfo, str], str | None] = field(default=lambda d, t: None)
    description: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}/{self.variant}" if self.variant else self.name


@dataclass(frozen=True)
class Operator:
    """One computation with its shapes per suite, inputs, reference and cost model.

    ``make_inputs(shape, dtype, device, seed)`` returns the inputs (fresh random data from the
    seed); ``reference(inputs, shape, dtype)`` returns the exact answer computed in higher
    precision; ``flops``/``bytes`` return the work and traffic of one call.
    ``tolerance`` maps a dtype to the largest accepted error relative to ``max|reference|``.
    """

    name: str
    family: str
    shapes: Mapping[str, list[Shape]]
    dtypes: tuple[str, ...]
    make_inputs: Callable[[Shape, str, str, int], Any]
    reference: Callable[[Any, Shape, str], Any]
    flops: Callable[[Shape], float]
    bytes: Callable[[Shape, str], float]
    tolerance: Mapping[str, float]
    description: str = ""
    mode: str = "fwd"


@dataclass(frozen=True)
class Case:
    """One thing to measure. Plain data: it crosses the process boundary as JSON."""

    operator: str
    provider: str
    variant: str
    shape: Shape
    dtype: str
    mode: str = "fwd"

    @property
    def provider_key(self) -> str:
        return f"{self.provider}/{self.variant}" if self.variant else self.provider

    @property
    def id(self) -> str:
        dims = ",".join(f"{k}={v}" for k, v in self.shape.items())
        return f"{self.operator}[{dims}]/{self.dtype}/{self.provider_key}"

    def to_json(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "provider": self.provider,
            "variant": self.variant,
            "shape": dict(self.shape),
            "dtype": self.dtype,
            "mode": self.mode,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Case:
        return cls(
            operator=d["operator"],
            provider=d["provider"],
            variant=d.get("variant", ""),
            shape={k: v for k, v in d["shape"].items()},
            dtype=d["dtype"],
            mode=d.get("mode", "fwd"),
        )

    def matches(self, pattern: str) -> bool:
        """``-k`` matching: a case-insensitive substring of the id, or a glob (``*?[``)."""
        text = self.id.lower()
        pat = pattern.lower()
        if pat in text:
            return True
        return any(c in pat for c in "*?[") and fnmatch.fnmatchcase(text, f"*{pat}*")


def dump_cases(cases: list[Case], timers: Mapping[str, str] | None = None) -> str:
    """The worker's cases file; ``timers`` (case id -> timer) are the sticky timer choices."""
    timers = timers or {}
    return json.dumps(
        [{**c.to_json(), **({"timer": timers[c.id]} if c.id in timers else {})} for c in cases]
    )


def load_cases(text: str) -> list[Case]:
    return [Case.from_json(d) for d in json.loads(text)]


def load_timer_hints(text: str) -> dict[str, str]:
    """The sticky timer choices a cases file carries (see :func:`dump_cases`)."""
    return {Case.from_json(d).id: d["timer"] for d in json.loads(text) if d.get("timer")}
