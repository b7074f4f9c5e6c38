"""Liger-Kernel kernels named as module:name, for the acceptance test (liger-kernel installed
with --no-deps; see test_acceptance_liger.py). Types as Liger launches them in bf16."""

COMPILE_SPECS = [
    {
        "name": "geglu_fwd_bf16",
        "kernel": "liger_kernel.ops.geglu:_geglu_tanh_forward_kernel",
        "signature": {"a": "*bf16", "b": "*bf16", "c": "*bf16", "stride": "i32"},
        "constexprs": {"n_cols": 4096, "BLOCK_SIZE": 4096},
        "divisibility": ["a", "b", "c", "stride"],
        "num_warps": 16,
    },
    {
        "name": "swiglu_fwd_bf16",
        "kernel": "liger_kernel.ops.swiglu:_swiglu_forward_kernel",
        "signature": {
            "a_ptr": "*bf16",
            "b_ptr": "*bf16",
            "c_ptr": "*bf16",
            "stride": "i32",
            "gate_multiplier": "fp32",
        },
        "constexprs": {"n_cols": 4096, "BLOCK_SIZE": 4096},
        "divisibility": ["a_ptr", "b_ptr", "c_ptr", "stride"],
        "num_warps": 16,
    },
    {
        "name": "rms_norm_fwd_bf16",
        "kernel": "liger_kernel.ops.rms_norm:_rms_norm_forward_kernel",
        "signature": {
            "Y_ptr": "*bf16",
            "Y_row_stride": "i32",
            "X_ptr": "*bf16",
            "X_row_stride": "i32",
            "W_ptr": "*bf16",
            "W_row_stride": "i32",
            "RSTD_ptr": "*fp32",
            "RSTD_row_stride": "i32",
            "n_cols": "i32",
            "eps": "fp32",
            "offset": "fp32",
        },
        "constexprs": {"casting_mode": 0, "elementwise_affine": True, "BLOCK_SIZE": 4096},
        "divisibility": [
            "Y_ptr",
            "X_ptr",
            "W_ptr",
            "RSTD_ptr",
            "Y_row_stride",
            "X_row_stride",
            "n_cols",
        ],
        "num_warps": 16,
    },
    {
        "name": "dyt_fwd_bf16",
        "kernel": "liger_kernel.ops.dyt:_dyt_fwd_kernel",
        "signature": {
            "X": "*bf16",
            "Y": "*bf16",
            "Alpha": "*bf16",
            "Gamma": "*bf16",
            "Beta": "*bf16",
        },
        "constexprs": {"HAVE_BETA": True, "N": 4096},
        "divisibility": ["X", "Y", "Gamma", "Beta"],
        "configs": [0, 3],
    },
]
