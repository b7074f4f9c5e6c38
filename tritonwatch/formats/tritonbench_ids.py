"""tritonbench's metric ids: what one names (benchmark, mode, dtype, input, provider, metric),
and the shape an input's ``x_val`` stands for, in a form that lines up night after night.

The ids are ``tritonbench_{benchmark}[x_{x_val}-{provider}]_{metric}`` per input,
``tritonbench_{benchmark}[{provider}]-{metric}-avg`` per provider and
``tritonbench_{benchmark}-pass`` in the nightly file (:mod:`.tritonbench` reads the files).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from .metrics import AVERAGE_SUFFIX, lookup
from .options import Tally

PREFIX = "tritonbench_"
# Provider names for results that belong to no backend.
INPUT_PROVIDER = "(input)"  # x-only metrics such as hw_roofline describe the input
BENCHMARK_PROVIDER = "(benchmark)"  # nightly's -pass flag is about the whole benchmark
MODES = ("fwd_no_grad", "fwd_bwd", "fwd", "bwd")
# tritonbench's HUD converter (.ci/test_infra/oss_ci_benchmark_v3.py) strips these dtype
# prefixes from the operator and keeps fp8/int8/int4 in it (they are part of the op's name).
_STRIPPED_DTYPES = ("fp16", "fp32", "bf16")
_KEPT_DTYPES = ("fp8", "int8", "int4")

# The x_val labels of tritonbench's operators (``@register_x_val(label=...)``), so imported
# tuple inputs get the dimension names tritonwatch's own series use.
OPERATOR_SHAPES: dict[str, tuple[str, ...]] = {
    **{
        op: ("M", "N", "K")
        for op in (
            "gemm",
            "addmm",
            "fp8_gemm",
            "fp8_gemm_rowwise",
            "fp8_gemm_blockwise",
            "fp8_fused_quant_gemm_rowwise",
            "bf16xint16_gemm",
            "int4_gemm",
        )
    },
    "fp8_gemm_rowwise_grouped": ("group_size", "M", "N", "K"),
    **{op: ("B", "T", "V") for op in ("cross_entropy", "jsd", "kl_div")},
    "embedding": ("B", "T", "D", "V"),
    **{op: ("B", "T", "H") for op in ("geglu", "swiglu")},
    "rms_norm": ("M", "H"),
    "rope": ("H", "T"),
    **{
        op: ("Batch", "Heads", "SeqLen", "SeqLen_KV", "Dhead")
        for op in ("flash_attention", "blackwell_attentions")
    },
    **{op: ("B*T", "H") for op in ("fused_linear_cross_entropy", "fused_linear_jsd")},
    "decoding_attention": ("Batch", "SeqLenQ", "SeqLenKV", "MaxLenKV", "HeadQ", "HeadKV", "HeadD"),
    "softmax": ("N",),
}


# -- metric ids -----------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricId:
    """One parsed id. ``x`` is None for per-provider averages and -pass/-target flags."""

    benchmark: str
    kind: str  # input | average | pass | target
    x: str | None = None
    provider: str = ""
    metric: str = ""
    key: str | None = None  # the entry of a dict metric (best_config-BLOCK_SIZE_M)


def _resolve(provider: str, text: str) -> tuple[str, str, str | None]:
    """(provider, metric, dict key) from the id's provider and metric parts.

    tritonbench split ``{label}-{metric}`` at the first ``-``: where the metric part is not a
    known metric, move its leading pieces back onto the provider until the rest is one.
    """
    if text == "":  # x-only metric: the header had no "-", so the provider part is the metric
        return INPUT_PROVIDER, provider, None
    if provider == "":  # the same, as some versions write it: [x_V-]_hw_roofline
        return INPUT_PROVIDER, text, None
    pieces = text.split("-")
    for i, head in enumerate(pieces):
        known = lookup(head)
        if known is None:
            continue
        rest = pieces[i + 1 :]
        full_provider = "-".join([provider, *pieces[:i]])
        if known.kind == "dict" and rest:
            return full_provider, head, "-".join(rest)
        if not rest:
            return full_provider, head, None
    return provider, text, None  # an operator's own metric, kept whole


def parse_id(key: str) -> MetricId | None:
    """Parse one tritonbench metric id, or None when it is not one."""
    if not key.startswith(PREFIX):
        return None
    body = key[len(PREFIX) :]
    if "[" not in body:
        for flag in ("pass", "target"):
            if body.endswith("-" + flag) and len(body) > len(flag) + 1:
                return MetricId(body[: -len(flag) - 1], flag)
        return None
    bench, _, tail = body.partition("[")
    inner, sep, rest = tail.rpartition("]")
    if not sep or not bench:
        return None
    if inner.startswith("x_") and rest.startswith("_"):
        x, dash, provider = inner[2:].rpartition("-")
        if not dash:
            return None
        return MetricId(bench, "input", x.strip(), *_resolve(provider, rest[1:]))
    if rest.startswith("-") and rest.endswith(AVERAGE_SUFFIX):
        text = rest[1 : -len(AVERAGE_SUFFIX)]
        resolved = _resolve(inner, text)
        return MetricId(bench, "average", None, *resolved)
    return None


def split_benchmark(name: str) -> tuple[str, str, str]:
    """(operator, mode, dtype) from ``{op}_{mode}`` with tritonbench's optional dtype prefix."""
    op, mode = name, "fwd"
    for m in MODES:
        if name.endswith("_" + m) and len(name) > len(m) + 1:
            op, mode = name[: -len(m) - 1], m
            break
    for d in _STRIPPED_DTYPES:
        if op.startswith(d + "_"):
            return op[len(d) + 1 :], mode, d
    for d in _KEPT_DTYPES:
        if op.startswith(d + "_"):
            return op, mode, d
    return op, mode, "unknown"


def tuple_items(text: str) -> list[str] | None:
    """The items of a tuple as tritonbench prints one (an x_val ``(4096, 4096, 512)``, a CSV
    label ``(M, N, K)``, a tuple-valued metric in the CSV); None for any other text."""
    s = text.strip()
    if not (s.startswith("(") and s.endswith(")")):
        return None
    return [p.strip() for p in s[1:-1].split(",") if p.strip()]


def _number(text: str) -> int | float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    if not math.isfinite(v):
        return None
    return int(v) if v.is_integer() else v


def shape_of(
    operator: str, x: str, names: tuple[str, ...] | None, tally: Tally | None = None
) -> dict[str, int | float | str]:
    if tally is None:  # bulk HUD imports see the same few inputs again and again
        return dict(_shape_cached(operator, x, names))
    return _shape(operator, x, names, tally)


@functools.lru_cache(maxsize=4096)
def _shape_cached(
    operator: str, x: str, names: tuple[str, ...] | None
) -> tuple[tuple[str, int | float | str], ...]:
    return tuple(_shape(operator, x, names, None).items())


def _shape(
    operator: str, x: str, names: tuple[str, ...] | None, tally: Tally | None
) -> dict[str, int | float | str]:
    """The shape of one tritonbench input, in a form that lines up night after night.

    A tuple of numbers becomes named sizes (``names``, else the operator's tritonbench label,
    else ``x0, x1, ...``); a number becomes ``{N: ...}`` by the same rule (``x`` when unnamed);
    anything else is kept as ``{"input": text}``.
    """
    s = x.strip()
    items = tuple_items(s)
    parts = items if items is not None else [s]
    values = [_number(p) for p in parts]
    if not parts or any(v is None for v in values):
        return {"input": s}
    chosen = names or OPERATOR_SHAPES.get(operator)
    if chosen is not None and len(chosen) != len(values):
        if tally is not None and names:
            tally.warn(f"--shape-names has {len(names)} names but inputs have {len(values)}")
        chosen = None
    if chosen is None:
        chosen = ("x",) if items is None else tuple(f"x{i}" for i in range(len(values)))
    return dict(zip(chosen, values, strict=True))  # type: ignore[arg-type]
