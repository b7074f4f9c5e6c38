"""File formats at the edge: tritonwatch.run/1 JSONL, CSV, Parquet, tritonbench and PyTorch HUD v3.

One module per format, each built on the Store's public API; ``reader`` tells a file's format and
streams its runs, ``jsontext`` reads JSON fast and in bounded memory, and ``exchange`` holds the
library functions behind ``tritonwatch import`` and ``export``. ``metrics`` is the
one metric table every importer uses. Nothing in ``store/`` imports this package (``metrics`` is
a leaf the run format reads), and this ``__init__`` imports nothing, so reading the table never
loads the database code.
"""
