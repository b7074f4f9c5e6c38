"""Query and path parameters the JSON API and the HTML pages share: page sizes, offsets, ids.

Every number a request carries is bounded here before it reaches the database, so a number no
row can have is a 404 or a 422 on both backends instead of a driver's overflow.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from ..errors import NotFoundError
from ..store.limits import INT64_MAX

MAX_LIMIT = 1000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size (1 to {MAX_LIMIT}).")]
# Bounded so no request can carry a number the database's BIGINT cannot hold.
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="Rows to skip.")]
Points = Annotated[int, Query(ge=1, le=5000, description="Points per series (1 to 5000).")]


def known_id(value: int, what: str) -> int:
    """Ids no database row can have are simply not found (and never reach the database)."""
    if not 1 <= value <= INT64_MAX:
        raise NotFoundError(f"no {what} {value}")
    return value
