"""Reading JSON text at the speed a bulk import needs.

orjson parses several times faster than the standard library; where it refuses what the
standard library accepts (``NaN``/``Infinity``, ``1e400``, lone surrogates, a byte-order mark,
UTF-16 text), the standard library decides, so the files accepted and the errors raised are the
standard library's. One difference remains: an integer past 64 bits reads as a float.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

JSONDecodeError = json.JSONDecodeError


def loads(text: str | bytes) -> Any:
    """``json.loads``, through orjson when it can."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
