"""What every bench measurement shares: framegen's model size, this machine's threads and matmul rate, a step's
FLOPs, and the wall-clock timer."""

import os
import time

from framegen.config import DataConfig, ModelConfig

HIDDEN, LAYERS, RATE = ModelConfig.hidden, ModelConfig.layers, DataConfig.sample_rate  # framegen's defaults


def threads() -> int:
    """CPU threads this process may use (XLA uses them all; torch is set to the same number)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1



def step_flops(f: int, t: int, b: int, h: int = HIDDEN) -> int:
    """Matmul FLOPs of one train step: forward, plus twice that backward, less the unneeded dx of the input."""
    g = 3 * h
    fwd = [2 * t * b * f * g, 2 * t * b * h * g, 2 * t * b * h * g, 2 * t * b * h * g, 2 * t * b * h * f]
    return sum(fwd) + 2 * sum(fwd) - fwd[0]  # in1, rec1, in2, rec2, head


def timed(fn, reps: int) -> list[float]:
    """Wall seconds of each of ``reps`` calls of ``fn`` (which must block until its work is done)."""
    seconds = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return seconds


def matmul_gflops(n: int = 2048, reps: int = 7) -> float:
    """This machine's f32 matmul throughput through XLA (best of ``reps`` n^3 products): the floor's rate."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    mm(a).block_until_ready()
    return 2 * n**3 / min(timed(lambda: mm(a).block_until_ready(), reps)) / 1e9

