"""Store queries for organisations, tokens, saved views and pushes (issues #6 and #8).

Mixed into :class:`tritonwatch.store.Store`; methods use ``self.engine`` and the tables in
``schema``.
"""

from __future__ import annotations


class AccessMixin:
    """Store methods for organisations, tokens, saved views and pushes (issues #6 and #8)."""
