"""framegen's own timers: its real jitted train step, the step's two matmul shapes, generation and the host
overhead of the training loop, each timed alternately with the PyTorch reference (``torch_ref``) when asked."""

import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

import framegen.bench.torch_ref as torch_ref
from framegen.bench.timing import HIDDEN, LAYERS, RATE, step_flops, timed
from framegen.config import span_of


def run_config(frame_size: int, seq_len: int, batch_size: int, precision: str = "fp32", tiers=(), **train):
    """The RunConfig of a bench step: framegen's defaults (GRU, MSE, Adam with clipping) at F, T, B, ``precision``
    and ``tiers`` (slower tiers above the frame GRU), no sample clips."""
    from framegen.config import RunConfig

    return RunConfig.from_options(frame_size=frame_size, seq_len=seq_len, batch_size=batch_size, precision=precision,
                                  tiers=tuple(tiers), **{"sample_every": 0, **train})


def tiers_name(tiers) -> str:
    """How rows and tables name a tower: "8,4"; "" for the flat model."""
    return ",".join(map(str, tiers))


def with_tiers(configs, tiers) -> list:
    """(F, T, B) configs with T rounded down to a multiple of the tiers' span (flat and tiered are timed at the same
    T, which a tower needs to hold whole spans), duplicates dropped."""
    span = span_of(tiers)
    return list(dict.fromkeys((f, max(span, t // span * span), b) for f, t, b in configs))


def noise_song(cfg, seed: int = 0, scale: int = 1) -> np.ndarray:
    """Random normal audio with room for ``scale`` validation examples of ``cfg`` (and 9x that for training)."""
    need = cfg.data.example_samples + cfg.data.frame_size
    n = int(np.ceil(scale * need / cfg.data.val_fraction)) + 2 * cfg.data.frame_size
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)



# ------------------------------------------------------------------------------------------------ train step


class FramegenStep:
    """framegen's real jitted train step (``train.make_train_step``) on a random-noise song; call = one step."""

    impl = "framegen"

    def __init__(self, f: int, t: int, b: int, precision: str = "fp32", tiers=()):
        import jax.numpy as jnp

        from framegen import data, train

        self.precision, self.tiers = precision, tiers_name(tiers)
        cfg = run_config(f, t, b, precision, tiers)
        song = noise_song(cfg)
        split = data.check_fits(len(song), cfg.data)
        mesh = train.data_mesh(b)
        self.state, self.song = train.replicate((train.init_state(cfg, 10_000), jnp.asarray(song)), mesh)
        t0 = time.perf_counter()
        self.fn = train.make_train_step(cfg, split, 10_000).lower(self.state, self.song).compile()
        self.compile_s = time.perf_counter() - t0

    def __call__(self) -> float:
        self.state, loss = self.fn(self.state, self.song)
        return float(loss)  # blocks: the step is done



def _key(r) -> str:
    return f"{r.impl} {getattr(r, 'mode', r.precision)} {getattr(r, 'tiers', '')}"


def bench_train(configs, steps: int, compare: bool, gflops: float, log=print, precisions=("fp32",),
                probe: bool = False, tiers=()) -> list[dict]:
    """Per config: framegen's step at each of ``precisions`` (and torch's: fp32, autocast and bf16-cast for bf16),
    all timed alternately step by step, median ms of ``steps`` after a warm-up. With ``probe``, torch's two bf16
    modes are first timed 2 steps each and only the faster is timed alongside the rest (the other's row says
    ``probe_only``): on a loaded CPU a torch step can take a minute.

    ``ratio_vs_torch``: against torch's fastest of all its modes (its best precision); ``ratio_vs_torch_same``:
    against torch's fastest at the row's precision. The floor is float32 FLOPs / the float32 matmul rate (of the
    flat model). With ``tiers`` the tiered step is timed too, alternately with the flat one at the same F, T, B and
    precision: its ``ratio_vs_flat`` is what the tower costs."""
    rows = []
    for f, t, b in configs:
        runners = [FramegenStep(f, t, b, p) for p in precisions]
        runners += [FramegenStep(f, t, b, p, tiers) for p in precisions if tiers]
        probed = []  # torch bf16's slower mode: 2 steps to show it lost, not timed alongside
        if compare:
            for p in precisions:
                modes = [torch_ref.TorchStep(f, t, b, m) for m in torch_ref.TORCH_MODES[p]]
                for r in modes:
                    r()  # warm-up
                if len(modes) > 1 and probe:
                    probe_ms = [statistics.median(timed(r, 2)) * 1e3 for r in modes]
                    order = sorted(range(len(modes)), key=probe_ms.__getitem__)
                    probed += [(modes[i], probe_ms[i]) for i in order[1:]]
                    modes = [modes[order[0]]]
                runners += modes
        for r in runners:
            r()  # warm-up (first real step after compile)
        times = {_key(r): [] for r in runners}
        for _ in range(steps):
            for r in runners:  # alternated, so all see the same machine state
                times[_key(r)] += timed(r, 1)
        floor_ms = step_flops(f, t, b) / gflops / 1e6
        base = {"what": "train_step", "frame_size": f, "seq_len": t, "batch_size": b, "steps": steps,
                "floor_ms": round(floor_ms, 2), "gflop": round(step_flops(f, t, b) / 1e9, 2)}
        ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        ms.update({_key(r): p_ms for r, p_ms in probed})
        torch_ms = {r.precision: [] for r in runners if r.impl == "torch"}
        for r in runners:
            if r.impl == "torch":
                torch_ms[r.precision].append(ms[_key(r)])
        for r in runners + [r for r, _ in probed]:
            mine = ms[_key(r)]
            row = {**base, "impl": r.impl, "precision": r.precision, "median_ms": round(mine, 2),
                   "compile_s": round(r.compile_s, 2), "samples_per_s": round(b * t * f / mine * 1e3),
                   "pct_floor": round(100 * floor_ms / mine, 1)}
            if r.impl == "torch":
                row["mode"] = r.mode
            if getattr(r, "tiers", ""):
                row["tiers"] = r.tiers
                row["ratio_vs_flat"] = round(mine / ms[f"{r.impl} {r.precision} "], 4)
            if any(r is q for q, _ in probed):
                row["steps"] = 2  # probed only (and lost); not in the ratios
                row["probe_only"] = True
            if torch_ms:
                row["ratio_vs_torch"] = round(mine / min(min(v) for v in torch_ms.values()), 4)
                if r.precision in torch_ms:
                    row["ratio_vs_torch_same"] = round(mine / min(torch_ms[r.precision]), 4)
            rows.append(row)
            log(row)
    return rows



def _matmul_fns(f: int, t: int, b: int, compare: bool) -> dict:
    """impl -> {"recurrent": fn, "input": fn}, each fn one timed run of that shape (see ``bench_matmul``)."""
    import jax

    g = 3 * HIDDEN
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    h, w_h = jax.random.normal(k1, (b, HIDDEN)), 0.05 * jax.random.normal(k2, (HIDDEN, g))
    x, w_i = jax.random.normal(k3, (t * b, f)), 0.05 * jax.random.normal(k4, (f, g))
    chain = jax.jit(lambda h, w: jax.lax.fori_loop(0, t, lambda _, h: (h @ w)[:, :HIDDEN] * 0.5 + h, h))
    proj = jax.jit(lambda x, w: x @ w)
    fns = {"framegen": {"recurrent": lambda: chain(h, w_h).block_until_ready(),
                        "input": lambda: proj(x, w_i).block_until_ready()}}
    if compare:
        fns["torch"] = torch_ref.matmul_fns(h, w_h, x, w_i, t)
    return fns


def bench_matmul(configs, compare: bool, reps: int = 5, log=print) -> list[dict]:
    """The two matmul shapes a train step is made of, alone, in each implementation: where a step's time goes.

    ``recurrent``: T dependent (B, H) x (H, 3H) products, as inside the GRU's time loop (ms per product; torch's
    loop is Python, ~3 ops of overhead per product); ``input``: one (T*B, F) x (F, 3H) product, layer 1's input
    projection. Same threads, float32, random data."""
    rows = []
    for f, t, b in configs:
        fns = _matmul_fns(f, t, b, compare)
        for what, flop, n in (("recurrent", 2 * b * HIDDEN * 3 * HIDDEN, t), ("input", 2 * t * b * f * 3 * HIDDEN, 1)):
            secs = {}
            for impl, fn in fns.items():
                fn[what]()  # warm-up (and compile)
                secs[impl] = statistics.median(timed(fn[what], reps))
            for impl, sec in secs.items():
                row = {"what": "matmul", "impl": impl, "frame_size": f, "seq_len": t, "batch_size": b, "shape": what,
                       "ms": round(sec / n * 1e3, 4), "gflops": round(flop * n / sec / 1e9, 3), "compile_s": None}
                if "torch" in secs:
                    row["ratio_vs_torch"] = round(sec / secs["torch"], 3)
                rows.append(row)
                log(row)
    return rows


# ------------------------------------------------------------------------------------------------ generation


def bench_generate(frame_sizes, streams_list, seconds: float, compare: bool, reps: int = 3, log=print,
                   precisions=("fp32",), tiers=()) -> list[dict]:
    """Seconds of audio per wall second (all streams together) for ``seconds`` of audio, compile excluded; framegen
    at each of ``precisions`` (flat, and with ``tiers`` of 256 units when given), torch in float32 (and with its
    model cast to bfloat16 when bf16 is asked for)."""
    import jax

    from framegen.rollout import rollout
    from framegen.model import FrameGRU, init_params

    rows = []
    for f in frame_sizes:
        n_frames = -(-int(seconds * RATE) // f)
        for streams in streams_list:
            prompt = jax.random.normal(jax.random.key(streams), (streams, 10, f)) * 0.3
            impls = []
            for p, tower in [(p, tw) for tw in ([()] + ([tuple(tiers)] if tiers else [])) for p in precisions]:
                model = FrameGRU(frame_size=f, hidden=HIDDEN, layers=LAYERS, precision=p, tiers=tuple(tower))
                params = init_params(model, jax.random.key(0))
                call = partial(lambda *args: jax.block_until_ready(rollout(*args)), model, params, prompt, n_frames)
                first = timed(call, 1)[0]  # compile + one run
                fg = statistics.median(timed(call, reps))
                impls.append(("framegen", p, fg, max(first - fg, 0.0), tiers_name(tower)))
            if compare:
                for p in precisions:
                    wall = torch_ref.generate_seconds(f, streams, n_frames, reps, precision=p)
                    impls.append(("torch", p, wall, 0.0, ""))
            for impl, precision, wall, compile_s, tower in impls:
                row = {"what": "generate", "impl": impl, "precision": precision, "frame_size": f,
                       "seq_len": n_frames, "batch_size": streams,
                       "streams": streams, "seconds": seconds, "wall_s": round(wall, 4),
                       "realtime_factor": round(streams * seconds / wall, 1),
                       "realtime_factor_per_stream": round(seconds / wall, 1), "compile_s": round(compile_s, 2),
                       "us_per_frame": round(wall / n_frames * 1e6, 1), **({"tiers": tower} if tower else {})}
                rows.append(row)
                log(row)
    return rows



# ------------------------------------------------------------------------------------------------ host overhead


def bench_host_overhead(config, steps: int = 20, log_every: int = 5, log=print) -> list[dict]:
    """Wall time per step of the real training loop (``train.train``, syncing every ``log_every`` steps) minus
    the step's own time (each call blocked on): what dispatch and the loop cost per step."""
    from framegen import train

    f, t, b = config
    cfg = run_config(f, t, b, max_steps=steps + log_every, log_every=log_every, epochs=1000)
    song = noise_song(cfg, seed=1, scale=4)  # ~100 steps per epoch: no validation inside the timed steps
    device = FramegenStep(f, t, b)
    device()
    blocked = timed(device, max(5, steps // 2))

    marks = []  # (step, time) at each host sync of the loop; the first excludes compile and warm-up

    class Clock(train.Reporter):
        def update(self, *, step, epoch, loss):
            marks.append((step, time.perf_counter()))

    with tempfile.TemporaryDirectory() as d:
        res = train.train(cfg, Path(d) / "run", song, reporter=Clock())
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    wall_ms = (t1 - t0) / (s1 - s0) * 1e3
    device_ms = statistics.median(blocked) * 1e3
    row = {"what": "host_overhead", "impl": "framegen", "frame_size": f, "seq_len": t, "batch_size": b,
           "loop_ms_per_step": round(wall_ms, 2), "median_ms": round(device_ms, 2),
           "overhead_ms": round(wall_ms - device_ms, 2), "compile_s": round(res.compile_seconds, 2),
           "steps_timed": s1 - s0, "sync_every": log_every}
    log(row)
    return [row]

