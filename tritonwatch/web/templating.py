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
from .data import severity, shape_text
from .export import jsonable, parquet_available

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")), autoescape=True
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
    return json.dumps(shape, sort_keys=True, separators=(",", ":"))


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
    """A build as ``3.9.0 @ abc1234567`` (alerts carry builds as dicts)."""
    if not isinstance(b, dict):
        return _fmt(b)
    text = str(b.get("triton_version") or b.get("version") or "?")
    commit = b.get("triton_commit") or b.get("commit")
    return f"{text} @ {str(commit)[:10]}" if commit else text


def _without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


env = templates.env
env.filters.update(
    fmt=_fmt,
    when=_when,
    pct=_pct,
    shape=shape_text,
    severity=severity,
    canon=_canon,
    build=_build,
    cirange=_cirange,
    dict_without=_without,
)
env.globals.update(
    qs=_qs, json_script=_json_script, version=__version__, parquet=parquet_available()
)
