"""Helpers the test tiers share: a free port, a `tritonwatch serve` child process, fake build
environments, and the PostgreSQL and torch/triton probes.

Tests import it as ``support`` (pytest puts ``tests/`` on ``sys.path``; tests are not a package).
"""
