"""Analysis: statistics, change points, the detect pass, notifications and the release gate.

``stats`` and ``changepoint`` are pure functions on arrays; ``detect`` and ``gate`` read the
Store and hand results (dataclasses) to the renderers in ``tritonwatch.report``.
"""
