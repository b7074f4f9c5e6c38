"""Store queries for codegen metrics and blast-radius reports (issue #5).

Mixed into :class:`tritonwatch.store.Store`; methods use ``self.engine`` and the tables in
``schema``.
"""

from __future__ import annotations


class CodegenMixin:
    """Store methods for codegen metrics and blast-radius reports (issue #5)."""
