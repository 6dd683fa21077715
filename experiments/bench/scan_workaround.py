"""Is framegen.gru._scan still faster than lax.scan on the installed JAX? A GRU layer's forward + backward with each,
compiled once, timed alternately in one process (median of 7).

    python experiments/bench/scan_workaround.py T B      # e.g. 1000 32, and 100 128

Measured 2026-12-01, jax 0.10.2, 2-core Xeon (shared, loaded):
    T=1000 B=32: _scan 623-753 ms, lax.scan 741-869 ms;  T=100 B=128: _scan 272 ms, lax.scan 294 ms
"""
import os
import statistics
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
import jax
import jax.numpy as jnp

from framegen import gru

def plain_scan(f, init, xs, *, reverse=False, unroll=1):
    return jax.lax.scan(f, init, xs, reverse=reverse, unroll=unroll)

T, B, H = int(sys.argv[1]), int(sys.argv[2]), 256
k = jax.random.split(jax.random.key(0), 4)
w_h = 0.05 * jax.random.normal(k[0], (H, 3 * H))
b_h = jnp.zeros(3 * H)
gx = jax.random.normal(k[1], (T, B, 3 * H))
h0 = jnp.zeros((B, H))
fns = {}
orig = gru._scan
for name, impl in (("_scan", orig), ("lax.scan", plain_scan)):
    gru._scan = impl
    fn = jax.jit(jax.grad(lambda w, g: jnp.sum(gru.gru_layer(w, b_h, g, h0) ** 2), argnums=(0, 1)))
    jax.block_until_ready(fn(w_h, gx))  # compile while this _scan is in place
    fns[name] = fn
gru._scan = orig
times = {n: [] for n in fns}
for _ in range(7):
    for n, fn in fns.items():
        t = time.perf_counter()
        jax.block_until_ready(fn(w_h, gx))
        times[n].append(time.perf_counter() - t)
print(f"jax {jax.__version__} T={T} B={B} H={H}: "
      + ", ".join(f"{n} {1e3 * statistics.median(v):.1f} ms" for n, v in times.items()))
