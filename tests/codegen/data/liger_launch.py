"""Runs Liger-Kernel's GeGLU, SwiGLU, RMSNorm, RoPE and cross-entropy forward passes on small
bf16/fp32 CPU tensors, as a library's own tests would, for `tritonwatch capture --interpret`.

Some of these kernels use functions Triton's interpreter cannot run (libdevice tanh, for one);
the launch is recorded before the kernel runs, so each call is tried and a failure only printed.
"""

import torch
from liger_kernel.ops.cross_entropy import LigerCrossEntropyFunction
from liger_kernel.ops.geglu import LigerGELUMulFunction
from liger_kernel.ops.rms_norm import LigerRMSNormFunction
from liger_kernel.ops.rope import LigerRopeFunction
from liger_kernel.ops.swiglu import LigerSiLUMulFunction

torch.manual_seed(0)
bf16 = torch.bfloat16
a, b = torch.randn(4, 256, dtype=bf16), torch.randn(4, 256, dtype=bf16)
q, k = torch.randn(1, 4, 8, 64, dtype=bf16), torch.randn(1, 4, 8, 64, dtype=bf16)
cos, sin = torch.randn(1, 8, 64, dtype=bf16), torch.randn(1, 8, 64, dtype=bf16)
logits = torch.randn(8, 512, requires_grad=True)
target = torch.randint(0, 512, (8,))
calls = {
    "geglu": lambda: LigerGELUMulFunction.apply(a, b),
    "swiglu": lambda: LigerSiLUMulFunction.apply(a, b),
    "rms_norm": lambda: LigerRMSNormFunction.apply(a, torch.ones(256, dtype=bf16), 1e-6),
    "rope": lambda: LigerRopeFunction.apply(q, k, cos, sin),
    "cross_entropy": lambda: LigerCrossEntropyFunction.apply(logits, target, None),
}
for name, call in calls.items():
    try:
        call()
        print(f"{name}: ran")
    except Exception as e:  # noqa: BLE001 - the interpreter's limits, not the capture's
        print(f"{name}: the interpreter could not run it ({type(e).__name__})")
