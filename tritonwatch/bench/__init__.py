"""Measuring: specs, registry, timers, fingerprint, workers and the runner.

Nothing is imported here on purpose: the worker process imports only what it needs (stdlib,
numpy, torch, triton), and ``tritonwatch`` itself stays cheap to import.
"""
