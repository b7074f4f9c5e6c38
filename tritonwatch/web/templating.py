"""The Jinja2 environment of the dashboard: autoescaping on, and the filters the pages use."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from .. import __version__
from ..formats.options import parse_time
from ..naming import build_text, canonical_shape, shape_text, version_text
from ..report.blast import TEMPLATES as BLAST_TEMPLATES
from ..runformat import FAILURES, OUTCOME_TEXT, outcome
from ..store.alerts import severity_class
from .export import jsonable, parquet_available

templates = Jinja2Templates(
    env=jinja2.Environment(
        # The report package's templates too: the blast-radius report is one template for the
        # CLI's HTML file and the codegen page.
        loader=jinja2.FileSystemLoader(
            [str(Path(__file__).parent / "templates"), str(BLAST_TEMPLATES)]
        ),
        autoescape=True,
    )
)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:.{digits}g}"
    return str(v)


def _when(t: datetime | None) -> str:
    return "–" if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


def _build_view(info: dict[str, Any]) -> dict[str, Any]:
    """A run's build section as a person reads it: a dependency known only by its commit (PyTorch
    HUD names none by version) shows the commit once, and a commit time written as tritonbench
    and HUD write it (``20250813210411``) reads as a date."""
    out: dict[str, Any] = {}
    for name, dep in info.items():
        if isinstance(dep, dict):
            dep = dict(dep)
            if dep.get("version") and dep.get("version") == dep.get("commit"):
                del dep["version"]
            when = parse_time(dep["commit_time"]) if dep.get("commit_time") else None
            if when is not None:
                dep["commit_time"] = _when(when)
        out[name] = dep
    return out


def _pct(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "–"
    return f"{(ratio - 1) * 100:+.1f}%"


def _qs(params: dict[str, Any], **more: Any) -> str:
    merged = {k: v for k, v in {**params, **more}.items() if v not in (None, "")}
    return urlencode(merged)


def _json_script(value: Any, element_id: str) -> Markup:
    """Data for the page's script, in a non-executing tag; ``<>&'`` are \\u-escaped."""
    text = json.dumps(jsonable(value), separators=(",", ":"))
    text = (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("'", "\\u0027")
    )
    return Markup(f'<script type="application/json" id="{element_id}">{text}</script>')


def _canon(shape: Any) -> str:
    """A shape as stored in ``series.shape`` (canonical JSON), for filter links."""
    if isinstance(shape, str):
        return shape
    return canonical_shape(shape)


def _cirange(ci: Any) -> str:
    """An alert's CI of the ratio, as a percent range; tolerant of the forms it may take."""
    if isinstance(ci, dict):
        ci = (ci.get("low", ci.get("ci_low")), ci.get("high", ci.get("ci_high")))
    if (
        isinstance(ci, (list, tuple))
        and len(ci) == 2
        and all(isinstance(x, (int, float)) for x in ci)
    ):
        return f"{_pct(float(ci[0]))} … {_pct(float(ci[1]))}"
    return "–"


def _build(b: Any) -> str:
    """A build as the CLI writes it, ``3.9.0 (abc1234567)`` (alerts carry builds as dicts)."""
    return build_text(b) if isinstance(b, dict) else _fmt(b)


def _measured(extra: dict[str, Any] | None) -> str:
    """How a result was measured, in one line: timer, why sampling stopped, the GPU's clocks,
    power and temperature while it was timed, and any throttle seen (details hold the rest)."""
    x = extra or {}
    parts = []
    if x.get("timer"):
        retaken = x.get("hold_misses")
        parts.append(f"{x['timer']} timer" + (f" ({retaken} batches retaken)" if retaken else ""))
    if x.get("stop"):
        parts.append({"ci": "CI reached", "budget": "budget spent"}.get(x["stop"], x["stop"]))
    during = (x.get("gpu_state") or {}).get("during") or {}
    lo, hi = during.get("sm_clock_min_mhz"), during.get("sm_clock_max_mhz")
    if lo:
        parts.append(f"SM {lo} MHz" if lo == hi else f"SM {lo}-{hi} MHz")
    if during.get("power_max_w") is not None:
        parts.append(f"up to {during['power_max_w']:.0f} W")
    if during.get("temperature_max_c") is not None:
        parts.append(f"up to {during['temperature_max_c']} °C")
    if during:
        reasons = during.get("throttle_reasons") or []
        parts.append("throttled: " + ", ".join(reasons) if reasons else "no throttling")
    return " · ".join(parts)


def _without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


env = templates.env
env.filters.update(
    fmt=_fmt,
    when=_when,
    pct=_pct,
    shape=shape_text,
    severity=severity_class,
    canon=_canon,
    build=_build,
    build_view=_build_view,
    cirange=_cirange,
    dict_without=_without,
    measured=_measured,
    outcome=lambda r: outcome(r.status, r.correct),
)
env.globals.update(
    qs=_qs,
    json_script=_json_script,
    outcome_text=OUTCOME_TEXT,
    failures=FAILURES,
    version=__version__,
    parquet=parquet_available(),
    version_text=version_text,
)
