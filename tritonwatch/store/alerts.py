"""Store queries for alerts and their triage history (detection issue #4).

Mixed into :class:`tritonwatch.store.Store`; methods use ``self.engine`` and the tables in
``schema``.
"""

from __future__ import annotations


class AlertsMixin:
    """Store methods for alerts and their triage history (detection issue #4)."""
