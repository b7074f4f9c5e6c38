"""How the store writes JSON columns: ``json.dumps``, as SQLAlchemy and psycopg do by default, or
JSON text a bulk write made with orjson (several times faster) where orjson writes the same values.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Values orjson would write differently from json.dumps and pydantic, or that json.dumps refuses
# (a time, a dataclass, a subclass of a JSON type) are handed to _refuse, so they take the old way;
# so are an integer past 64 bits and a key that is not text, which orjson refuses itself. NaN and
# Infinity never reach a writer: the store refuses them first (limits.run_problem).
_AS_JSON_DUMPS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


class JsonText(str):
    """A JSON column's value already written as JSON text: stored as it is (see json_text)."""


def json_text(value: Any) -> str:
    """The engine's JSON serializer: ``json.dumps``, except for a :class:`JsonText`, kept."""
    return str(value) if type(value) is JsonText else json.dumps(value)


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def orjson_text(value: Any) -> str | None:
    """``value`` as JSON text by orjson, or None where orjson would not write what json.dumps
    (or pydantic's JSON dump) writes for it."""
    try:
        return orjson.dumps(value, default=_refuse, option=_AS_JSON_DUMPS).decode()
    except TypeError:
        return None
