"""Launches the sample kernels the way a library's test would: for `tritonwatch capture`.
On the CPU by default (run it under TRITON_INTERPRET=1); TW_DEVICE=cuda launches on a GPU."""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import kernels_sample as ks  # noqa: E402

x = torch.randn(1000, device=os.environ.get("TW_DEVICE", "cpu"))
out = torch.empty_like(x)
ks.scale_kernel[(4,)](x, out, 1000, BLOCK=256)
ks.scale_kernel[(4,)](x, out, 1000, BLOCK=256)  # the same specialisation again
ks.scale_kernel[(1,)](x[1:], out, 1, BLOCK=256, num_warps=2)  # unaligned pointer, n == 1
ks.scale_kernel[(1,)](x, out, 4096, BLOCK=128)  # n divisible by 16
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
