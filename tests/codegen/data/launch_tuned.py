"""Launches an autotuned kernel with a heuristic once: for `tritonwatch capture --interpret`.
The autotuner launches every config while tuning, so each config is a captured launch."""

import sys
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tuned_kernels import tuned  # noqa: E402

x = torch.zeros(1024)
tuned[lambda meta: (triton.cdiv(1024, meta["BLOCK"]),)](x, 1024)
