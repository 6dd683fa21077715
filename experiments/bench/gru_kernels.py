"""Time GRU kernel variants (a full train step) against PyTorch on CPU; see gru-kernels-cpu.md for results.

A step is: 2-layer GRU-256 (time-major scan) + linear head to F outputs, MSE next-frame loss, grads,
global-norm clipping + Adam (optax). PyTorch: nn.GRU(num_layers=2, batch_first=True) + nn.Linear + MSE + Adam
(no clipping: conservative for the ratio). Steps of every variant and torch are interleaved round by round and
the median is reported.

    python experiments/bench/gru_kernels.py                          # the 4 target configs, all variants
    python experiments/bench/gru_kernels.py --configs 40x1000x32 --variants vjp,vjp_u2 --steps 15
    python experiments/bench/gru_kernels.py --memory --variants x_c100  # peak RSS at T=10000, F=40, B=32
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from framegen import gru  # noqa: E402

HIDDEN = 256
CONFIGS = {"800x100x128": (800, 100, 128), "40x1000x32": (40, 1000, 32), "4000x50x32": (4000, 50, 32),
           "100x1000x128": (100, 1000, 128)}


# ---- reference variants: autodiff through a plain scan -------------------------------------------------------
def _plain_layer(sigmoid):
    def layer(w_h, b_h, gx, h0):
        hidden = h0.shape[-1]

        def step(h, gx_t):
            gh = h @ w_h + b_h
            r = sigmoid(gx_t[:, :hidden] + gh[:, :hidden])
            z = sigmoid(gx_t[:, hidden : 2 * hidden] + gh[:, hidden : 2 * hidden])
            n = jnp.tanh(gx_t[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
            h = (1.0 - z) * n + z * h
            return h, h

        return jax.lax.scan(step, h0, gx)[1]

    return layer


def _remat_layer(w_h, b_h, gx, h0):
    step = jax.checkpoint(lambda h, g: (gru.gru_cell(w_h, b_h, g, h),) * 2)
    return jax.lax.scan(step, h0, gx)[1]


VARIANTS = {
    "autodiff": _plain_layer(jax.nn.sigmoid),  # the straightforward GRU
    "autodiff_tanh": _plain_layer(lambda x: 0.5 * jnp.tanh(0.5 * x) + 0.5),
    "autodiff_remat": _remat_layer,  # whole-body remat
    "vjp": lambda *a: gru.gru_layer(*a),  # framegen.gru: custom VJP, tanh-sigmoid
    "vjp_u2": lambda *a: gru.gru_layer(*a, unroll=2),
    "vjp_u4": lambda *a: gru.gru_layer(*a, unroll=4),
}
# fused input projection + chunked time (framegen.gru.gru_layer_x): take (w_i, b_i, w_h, b_h, x, h0)
FUSED = {
    "x_c50": lambda *a: gru.gru_layer_x(*a, chunk=50),
    "x_c100": lambda *a: gru.gru_layer_x(*a, chunk=100),
    "x_c250": lambda *a: gru.gru_layer_x(*a, chunk=250),
}
VARIANTS.update(FUSED)


def init_params(key, f):
    ks = jax.random.split(key, 7)
    s = HIDDEN**-0.5
    u = lambda k, shape: jax.random.uniform(k, shape, jnp.float32, -s, s)  # noqa: E731
    return {
        "w_i1": u(ks[0], (f, 3 * HIDDEN)), "b_i1": u(ks[1], (3 * HIDDEN,)),
        "w_h1": u(ks[2], (HIDDEN, 3 * HIDDEN)), "b_h1": jnp.zeros(3 * HIDDEN),
        "w_i2": u(ks[3], (HIDDEN, 3 * HIDDEN)), "b_i2": u(ks[4], (3 * HIDDEN,)),
        "w_h2": u(ks[5], (HIDDEN, 3 * HIDDEN)), "b_h2": jnp.zeros(3 * HIDDEN),
        "w_o": u(ks[6], (HIDDEN, f)), "b_o": jnp.zeros(f),
    }


def make_step(name):
    layer = VARIANTS[name]
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))

    def loss_fn(p, x, y):  # x, y: (B, T, F)
        b = x.shape[0]
        h = jnp.swapaxes(x, 0, 1)  # time-major (T, B, F)
        for i in (1, 2):
            h0 = jnp.zeros((b, HIDDEN), x.dtype)
            if name in FUSED:
                h = layer(p[f"w_i{i}"], p[f"b_i{i}"], p[f"w_h{i}"], p[f"b_h{i}"], h, h0)
            else:
                h = layer(p[f"w_h{i}"], p[f"b_h{i}"], h @ p[f"w_i{i}"] + p[f"b_i{i}"], h0)
        pred = h @ p["w_o"] + p["b_o"]
        return jnp.mean((pred - jnp.swapaxes(y, 0, 1)) ** 2)

    @jax.jit
    def step(p, s, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    return step, opt


def step_flops(f, t, b):
    """Matmul FLOPs of one train step (fwd + bwd; no dx for the network input)."""
    h3 = 3 * HIDDEN
    fwd = [2 * t * b * f * h3, 2 * t * b * HIDDEN * h3, 2 * t * b * HIDDEN * h3, 2 * t * b * HIDDEN * h3,
           2 * t * b * HIDDEN * f]  # in1, rec1, in2, rec2, head
    return sum(fwd) + sum(2 * x for x in fwd) - fwd[0]


def matmul_gflops():
    """Measured f32 matmul throughput of this machine (XLA CPU), a large square GEMM."""
    a = jnp.ones((2048, 2048), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    mm(a).block_until_ready()
    ts = []
    for _ in range(10):
        t0 = time.perf_counter()
        mm(a).block_until_ready()
        ts.append(time.perf_counter() - t0)
    return 2 * 2048**3 / min(ts) / 1e9


class TorchStep:
    def __init__(self, f, t, b):
        import torch

        torch.set_num_threads(2)
        self.torch = torch
        self.gru = torch.nn.GRU(f, HIDDEN, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, f)
        self.opt = torch.optim.Adam(list(self.gru.parameters()) + list(self.head.parameters()), lr=1e-3)
        self.x = torch.randn(b, t, f)
        self.y = torch.randn(b, t, f)

    def __call__(self):
        self.opt.zero_grad()
        out, _ = self.gru(self.x)
        loss = torch_mse = self.torch.nn.functional.mse_loss(self.head(out), self.y)
        torch_mse.backward()
        self.opt.step()
        return loss.item()


def bench(configs, variants, steps, with_torch=True):
    gf = matmul_gflops()
    print(f"matmul throughput (2048^3 f32, XLA CPU): {gf:.1f} GFLOP/s")
    rows = []
    for cname in configs:
        f, t, b = CONFIGS[cname]
        kx, ky = jax.random.split(jax.random.PRNGKey(0))
        x = jax.random.normal(kx, (b, t, f))
        y = jax.random.normal(ky, (b, t, f))
        runners = {}
        for v in variants:
            step, opt = make_step(v)
            p = init_params(jax.random.PRNGKey(1), f)
            state = [p, opt.init(p)]
            t0 = time.perf_counter()
            state[0], state[1], loss = step(*state, x, y)
            loss.block_until_ready()
            compile_s = time.perf_counter() - t0

            def run(step=step, state=state, x=x, y=y):
                state[0], state[1], loss = step(*state, x, y)
                loss.block_until_ready()

            run()
            runners[v] = (run, compile_s)
        if with_torch:
            ts = TorchStep(f, t, b)
            ts()
            ts()
            runners["torch"] = (ts, 0.0)
        times = {k: [] for k in runners}
        for _ in range(steps):  # interleaved rounds
            for k, (run, _) in runners.items():
                t0 = time.perf_counter()
                run()
                times[k].append(time.perf_counter() - t0)
        floor_ms = step_flops(f, t, b) / gf / 1e6
        tt = statistics.median(times["torch"]) * 1e3 if with_torch else float("nan")
        for k in runners:
            ms = statistics.median(times[k]) * 1e3
            rows.append((cname, k, ms, ms / tt, floor_ms / ms, runners[k][1]))
        print(f"-- {cname}: floor {floor_ms:.1f} ms", flush=True)
        for r in rows[-len(runners):]:
            print(f"   {r[1]:15s} {r[2]:9.1f} ms  x{r[3]:.2f} torch  {100 * r[4]:5.1f}% floor  compile {r[5]:.1f}s",
                  flush=True)
    print("\n| config FxTxB | variant | ms/step | / torch | % of floor | compile s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.2f} | {100 * r[4]:.0f}% | {r[5]:.1f} |")


def memory_child(variant, f, t, b, steps):
    import psutil

    if variant == "torch":
        run = TorchStep(f, t, b)
    else:
        step, opt = make_step(variant)
        p = init_params(jax.random.PRNGKey(1), f)
        state = [p, opt.init(p)]
        x = jax.random.normal(jax.random.PRNGKey(0), (b, t, f))
        y = jax.random.normal(jax.random.PRNGKey(2), (b, t, f))

        def run():
            state[0], state[1], loss = step(*state, x, y)
            return float(loss)

    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t0)
    # ru_maxrss is the peak of this process (kB on Linux)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"MEM {variant} T={t}: peak RSS {peak:.2f} GB, step {1e3 * statistics.median(ts[1:]):.0f} ms "
          f"(rss now {psutil.Process().memory_info().rss / 1e9:.2f} GB)", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--steps", type=int, default=11)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--memory", action="store_true", help="peak RSS, one fresh process per variant")
    ap.add_argument("--mem-t", type=int, default=10000)
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        v, f, t, b, s = a.child
        memory_child(v, int(f), int(t), int(b), int(s))
        return
    if a.memory:
        for v in a.variants.split(","):
            cmd = [sys.executable, __file__, "--child", v, "40", str(a.mem_t), "32", "3"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            out = [ln for ln in r.stdout.splitlines() if ln.startswith("MEM")]
            print(out[0] if out else f"MEM {v}: failed rc={r.returncode} {r.stderr[-300:]}", flush=True)
        return
    bench(a.configs.split(","), a.variants.split(","), a.steps, not a.no_torch)


if __name__ == "__main__":
    main()
