"""The device's precision: which matmul operand type a device runs fastest, and the dtype of each precision name."""

from pathlib import Path

import jax
import jax.numpy as jnp

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


def fast_bf16(device=None) -> bool:
    """Whether ``device`` (default: JAX's first) multiplies bfloat16 faster than float32: every GPU and TPU; a CPU
    whose flags list ``amx_bf16`` or ``avx512_bf16`` (Linux /proc/cpuinfo; unknown elsewhere: no)."""
    platform = (device or jax.devices()[0]).platform
    if platform != "cpu":
        return True
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        return False
    return bool({"amx_bf16", "avx512_bf16"} & set(flags.split()))


def resolve_precision(precision: str) -> str:
    """"auto" -> "bf16" where the device has fast bfloat16 (``fast_bf16``), else "fp32"; others unchanged."""
    if precision == "auto":
        return "bf16" if fast_bf16() else "fp32"
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}")
    return precision
