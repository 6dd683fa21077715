"""Why one-stream generation is memory-bound on a 2-core CPU: time a chain of 1 x 256 by 256 x 768 matrix-vector
products (one generated frame's GRU work is 3-4 of them) with 1, 2, 3 and 4 distinct weight matrices (0.75 MB
each, float32) in one XLA loop, and also the real ``generate.rollout`` at F=800 and F=40.

While all the matrices fit in a core's L2 (2 MiB here) each product costs ~9-11 us; past it they stream from L3
and each costs 17-25 us. Numbers: experiments/bench/cpu-2core-xeon-sapphire-rapids.md.

    python experiments/bench/generation_l2.py
"""

import statistics

import jax
import jax.numpy as jnp

from framegen.bench.timing import timed
from framegen.rollout import rollout
from framegen.model import FrameGRU, init_params

FRAMES = 6000


def median_s(fn, reps=7):
    def call():
        jax.block_until_ready(fn())

    call()  # warm-up (and compile)
    return statistics.median(timed(call, reps))


def chain(k):
    @jax.jit
    def run(ws, h):
        def body(_, h):
            for w in ws[:k]:
                h = jnp.tanh(h @ w)[:, :256]
            return h

        return jax.lax.fori_loop(0, FRAMES, body, h)

    return run


def main():
    ws = [0.05 * jax.random.normal(jax.random.key(i), (256, 768)) for i in range(4)]
    h = jnp.zeros((1, 256))
    for k in (1, 2, 3, 4):
        run = chain(k)  # compiled once, by the warm-up call
        us = median_s(lambda run=run: run(ws, h)) / FRAMES * 1e6
        print(f"{k} distinct matrices ({0.75 * k:.2f} MB): {us:6.1f} us per loop step, {us / k:5.1f} us per product")
    for f in (800, 40):
        model = FrameGRU(frame_size=f)
        params = init_params(model, jax.random.key(0))
        n = -(-30 * 16_000 // f)
        seed = 0.3 * jax.random.normal(jax.random.key(1), (1, 10, f))
        us = median_s(lambda model=model, params=params, n=n, seed=seed: rollout(model, params, seed, n)) / n * 1e6
        print(f"rollout F={f}: {us:6.1f} us per frame = {f / 16_000 / us * 1e6:5.0f}x real time at 16 kHz")


if __name__ == "__main__":
    main()
