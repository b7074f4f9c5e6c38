"""The results database: SQLAlchemy Core tables, Alembic migrations and the Store API."""

from __future__ import annotations

from .rows import AddedRun, Point, ResultRow, RunDetail, RunSummary, SeriesInfo, StoreInfo
from .store import Store

__all__ = [
    "AddedRun",
    "Point",
    "ResultRow",
    "RunDetail",
    "RunSummary",
    "SeriesInfo",
    "Store",
    "StoreInfo",
]
