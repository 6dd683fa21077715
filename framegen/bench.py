"""``framegen bench``: time framegen's real train step and generator, its memory and host overhead, and optionally
PyTorch doing the same work in the same run (``--compare torch``; torch is the optional extra ``framegen[bench]``).

Every measurement is a flat dict (a JSON line with ``--json``); ``format_tables`` turns a list of them into the
markdown tables of experiments/bench/*.md. Timings are medians after warm-up; compile time is reported apart.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from framegen.config import PRECISIONS, DataConfig, ModelConfig, span_of

HIDDEN, LAYERS, RATE = ModelConfig.hidden, ModelConfig.layers, DataConfig.sample_rate  # framegen's defaults
CONFIGS = ((800, 100, 128), (40, 1000, 32), (4000, 50, 32), (100, 1000, 128))  # (F, T, B)
EXTRA_BATCH = 32  # B of an extra config given without --batch-size (its F and T default to train's)
GEN_FRAMES = (800, 40)
GEN_STREAMS = (1, 16)
MEMORY_CONFIG = (40, 10_000, 32)
HOST_CONFIG = (800, 100, 32)
QUICK = {"configs": ((40, 50, 4),), "gen_frames": (40,), "gen_streams": (1, 2), "gen_seconds": 0.5,
         "memory": (40, 200, 4), "steps": 3}


def threads() -> int:
    """CPU threads this process may use (XLA uses them all; torch is set to the same number)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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


def torch_device() -> str:
    """Where torch runs: the GPU when there is one (cuDNN's GRU), as JAX does, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


TORCH_MODES = {"fp32": ("fp32",), "bf16": ("autocast", "bf16-cast")}


class TorchStep:
    """The same step in PyTorch: nn.GRU(2 layers, batch_first) + nn.Linear, MSE, Adam (no clipping: conservative
    for the ratio), fresh random batches (two, alternated), ``torch.set_num_threads`` = ``threads()``; on the GPU
    when there is one. ``mode``: "fp32"; "autocast" (``torch.autocast(bfloat16)``, float32 weights); "bf16-cast"
    (model, Adam and data all bfloat16: what a PyTorch user gets by casting, fastest on CPU)."""

    impl = "torch"
    compile_s = 0.0

    def __init__(self, f: int, t: int, b: int, mode: str = "fp32"):
        import torch

        torch.set_num_threads(threads())
        torch.manual_seed(0)
        self.torch, self.mode, self.device = torch, mode, torch_device()
        self.precision = "fp32" if mode == "fp32" else "bf16"
        dtype = torch.bfloat16 if mode == "bf16-cast" else torch.float32
        self.gru = torch.nn.GRU(f, HIDDEN, num_layers=LAYERS, batch_first=True).to(self.device, dtype)
        self.head = torch.nn.Linear(HIDDEN, f).to(self.device, dtype)
        self.opt = torch.optim.Adam([*self.gru.parameters(), *self.head.parameters()], lr=1e-3)
        self.batches = [(torch.randn(b, t, f, device=self.device, dtype=dtype),
                         torch.randn(b, t, f, device=self.device, dtype=dtype)) for _ in range(2)]
        self.i = 0

    def __call__(self) -> float:
        torch = self.torch
        x, y = self.batches[self.i % 2]
        self.i += 1
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device, torch.bfloat16, enabled=self.mode == "autocast"):
            out, _ = self.gru(x)
            pred = self.head(out)
        loss = torch.nn.functional.mse_loss(pred.float(), y.float())
        loss.backward()
        self.opt.step()
        return loss.item()  # blocks (GPU too): the step is done


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
                modes = [TorchStep(f, t, b, m) for m in TORCH_MODES[p]]
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
        import torch

        torch.set_num_threads(threads())
        th, tw_h, tx, tw_i = (torch.from_numpy(np.asarray(a)) for a in (h, w_h, x, w_i))

        def torch_chain():
            hh = th
            for _ in range(t):
                hh = (hh @ tw_h)[:, :HIDDEN] * 0.5 + hh

        fns["torch"] = {"recurrent": torch_chain, "input": lambda: tx @ tw_i}
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
                    impls.append(("torch", p, _torch_generate(f, streams, n_frames, reps, precision=p), 0.0, ""))
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


def _torch_generate(f: int, streams: int, n_frames: int, reps: int, budget_s: float = 5.0,
                    precision: str = "fp32") -> float:
    """Wall seconds a stateful PyTorch loop (one frame per GRU call, hidden state carried) needs for ``n_frames``:
    the median of ``reps`` runs, each stopped after ``budget_s`` and scaled to n_frames (the cost per frame is
    constant, and under CPU contention PyTorch's OpenMP loop can take milliseconds a frame). bf16: the model and
    prompt cast to bfloat16."""
    import torch

    torch.set_num_threads(threads())
    torch.manual_seed(0)
    device, dtype = torch_device(), torch.bfloat16 if precision == "bf16" else torch.float32
    gru = torch.nn.GRU(f, HIDDEN, num_layers=LAYERS, batch_first=True).to(device, dtype)
    head = torch.nn.Linear(HIDDEN, f).to(device, dtype)
    prompt = 0.3 * torch.randn(streams, 10, f, device=device, dtype=dtype)

    def run(frames_max):
        t0 = time.perf_counter()
        with torch.inference_mode():
            out, h = gru(prompt)
            frame = head(out[:, -1:])
            frames = []
            while len(frames) < frames_max and time.perf_counter() - t0 < budget_s:
                frames.append(frame)
                out, h = gru(frame, h)
                frame = head(out)
            torch.cat(frames, dim=1).sum().item()  # waits for the GPU
        return (time.perf_counter() - t0) * n_frames / len(frames)

    run(10)  # warm-up
    return statistics.median(run(n_frames) for _ in range(reps))


# ------------------------------------------------------------------------------------------------ memory


def peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux the kernel's VmHWM, which starts afresh at exec: getrusage's
    ru_maxrss survives exec, so a child forked from a big parent (the bench itself, several GB after its train
    part) would report the parent's size (measured: 3,978 MB for a child that peaked at 1,560)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def memory_child(impl: str, f: int, t: int, b: int, steps: int, precision: str = "fp32", tiers=()) -> dict:
    """Run ``steps`` train steps in this (fresh) process and report its peak resident memory (and, on a GPU, the
    device's peak bytes in use)."""
    if impl == "framegen":
        runner = FramegenStep(f, t, b, precision, tiers)
    else:
        runner = TorchStep(f, t, b, "fp32" if precision == "fp32" else "bf16-cast")
    times = timed(runner, steps)
    row = {"what": "memory", "impl": impl, "precision": precision, "frame_size": f, "seq_len": t, "batch_size": b,
           "peak_rss_mb": round(peak_rss_mb()), "compile_s": round(runner.compile_s, 2),
           "step_ms": round(statistics.median(times[1:] or times) * 1e3, 1)}
    if tiers:
        row["tiers"] = tiers_name(tiers)
    if impl == "framegen":  # XLA's own figure: the step's scratch buffer, allocated per call
        import jax

        row["xla_temp_mb"] = round(runner.fn.memory_analysis().temp_size_in_bytes / 2**20)
        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats and jax.default_backend() != "cpu":
            row["device_peak_mb"] = round(stats["peak_bytes_in_use"] / 2**20)
    elif runner.device == "cuda":
        row["device_peak_mb"] = round(runner.torch.cuda.max_memory_allocated() / 2**20)
    return row


def bench_memory(config, compare: bool, steps: int = 2, log=print, precisions=("fp32",), tiers=()) -> list[dict]:
    """Peak RSS of training at ``config``, each implementation, precision (and the tower, with ``tiers``) in its own
    subprocess."""
    rows = []
    jobs = [(i, p, ()) for i in ["framegen"] + (["torch"] if compare else []) for p in precisions]
    jobs += [("framegen", p, tuple(tiers)) for p in precisions if tiers]
    for impl, precision, tower in jobs:
        f, t, b = config
        code = f"import json; from framegen.bench import memory_child; print('RESULT', json.dumps(memory_child(" \
               f"{impl!r}, {f}, {t}, {b}, {steps}, {precision!r}, {tower!r})))"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
        if lines:
            row = json.loads(lines[-1][len("RESULT "):])
        else:
            row = {"what": "memory", "impl": impl, "precision": precision, "frame_size": f, "seq_len": t,
                   "batch_size": b, **({"tiers": tiers_name(tower)} if tower else {}),
                   "peak_rss_mb": None, "compile_s": None, "error": f"rc={r.returncode}: {r.stderr[-300:]}"}
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


# ------------------------------------------------------------------------------------------------ driver


PARTS = ("train", "matmul", "generate", "memory", "host")
TIMED_PRECISIONS = ("fp32", "bf16")  # framegen's (and torch's) precisions timed unless asked for others


def parse_flags(*, frame_size=None, seq_len=None, batch_size=None, steps=None, only=None, precisions=None,
                tiers=None) -> dict:
    """``run``'s arguments from ``framegen bench``'s flags, checked: an extra (F, T, B) config when any of them is
    given (the others default to train's F and T and ``EXTRA_BATCH``), the parts of ``only`` and the precisions
    (comma-separated), and the tiers (parsed and checked as train's --tiers)."""
    from framegen.errors import UsageError

    extra = []
    if frame_size is not None or seq_len is not None or batch_size is not None:
        extra.append((frame_size or DataConfig.frame_size, seq_len or DataConfig.seq_len, batch_size or EXTRA_BATCH))
    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    parts = PARTS if only is None else tuple(x.strip() for x in only.split(","))
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise UsageError(f"unknown --only part(s) {', '.join(unknown)}: pass some of {', '.join(PARTS)}")
    precisions = TIMED_PRECISIONS if precisions is None else tuple(p.strip() for p in precisions.split(","))
    bad = sorted(set(precisions) - set(PRECISIONS))
    if bad:
        raise UsageError(f"unknown --precision {', '.join(bad)}: pass some of {', '.join(PRECISIONS)}")
    return dict(extra_configs=extra, steps=steps, parts=parts, precisions=precisions,
                tiers=ModelConfig(tiers=tiers).tiers)


def run(extra_configs=(), *, compare: str | None = None, quick: bool = False, steps: int | None = None,
        parts=PARTS, log=print, precisions=TIMED_PRECISIONS, tiers=()) -> list[dict]:
    """Every measurement of ``framegen bench`` (or only ``parts`` of it) as a list of rows, each row logged as
    soon as it is made; framegen at each of ``precisions`` (fp32, bf16, auto), torch at the same ones. With
    ``tiers`` (ratios), framegen's tower is timed and measured beside the flat model at the same F, T, B (T rounded
    down to a multiple of the tiers' span)."""
    from framegen.device import resolve_precision

    precisions = tuple(dict.fromkeys(resolve_precision(p) for p in precisions))
    if compare not in (None, "torch"):
        raise ValueError(f"unknown --compare {compare!r}")
    if compare:
        try:
            import torch  # noqa: F401
        except ImportError:
            from framegen.errors import UsageError

            raise UsageError("--compare torch needs PyTorch: pip install 'framegen[bench]'") from None
    with_torch = compare == "torch"
    q = QUICK if quick else {}
    configs = list(q.get("configs", CONFIGS)) + [c for c in extra_configs if c not in CONFIGS]
    if quick and extra_configs:
        configs = list(extra_configs)
    steps = steps or q.get("steps", 10)
    tiers = tuple(tiers)
    memory_config = q.get("memory", MEMORY_CONFIG)
    if tiers:
        configs, (memory_config,) = with_tiers(configs, tiers), with_tiers([memory_config], tiers)
    import jax

    rows = [{"what": "machine", "impl": "framegen", "threads": threads(), "devices": len(jax.local_devices()),
             "backend": jax.default_backend(), "load_avg_1m": round(os.getloadavg()[0], 2),
             "jax": jax.__version__, "matmul_gflops": round(matmul_gflops(512 if quick else 2048), 1),
             "device": jax.devices()[0].device_kind, "precisions": list(precisions), "tiers": tiers_name(tiers)}]
    if with_torch:
        import torch

        rows[0]["torch"] = torch.__version__
    log(rows[0])
    gflops = rows[0]["matmul_gflops"]
    if "train" in parts:
        rows += bench_train(configs, steps, with_torch, gflops, log=log, precisions=precisions,
                            probe=jax.default_backend() == "cpu", tiers=tiers)
    if "matmul" in parts:
        rows += bench_matmul(configs, with_torch, reps=2 if quick else 5, log=log)
    if "generate" in parts:
        rows += bench_generate(q.get("gen_frames", GEN_FRAMES), q.get("gen_streams", GEN_STREAMS),
                               q.get("gen_seconds", 30.0), with_torch, reps=1 if quick else 3, log=log,
                               precisions=precisions, tiers=tiers)
    if "memory" in parts:
        rows += bench_memory(memory_config, with_torch, log=log, precisions=precisions, tiers=tiers)
    if "host" in parts and not quick:
        rows += bench_host_overhead(HOST_CONFIG, log=log)
    rows.append({"what": "end", "impl": "framegen", "load_avg_1m": round(os.getloadavg()[0], 2)})
    log(rows[-1])
    return rows


def format_tables(rows: list[dict]) -> str:
    """Markdown tables of ``run``'s rows: train step, generation, memory, host overhead."""
    out = []
    m = next((r for r in rows if r["what"] == "machine"), None)
    if m:
        out.append(f"{m['backend']} x{m['devices']} ({m.get('device', '')}), {m['threads']} threads, matmul "
                   f"{m['matmul_gflops']} GFLOP/s fp32, load average {m['load_avg_1m']} at start")

    def table(what: str, header: list[str], cells) -> None:
        picked = [r for r in rows if r["what"] == what]
        if picked:
            out.extend(["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)])
            out.extend("| " + " | ".join(str(c) for c in cells(r)) + " |" for r in picked)

    def shape(r):
        return f"{r['frame_size']}x{r['seq_len']}x{r['batch_size']}"

    def ratio(r, key="ratio_vs_torch"):
        return f"{r[key]:.2f}" if key in r else ""

    def impl(r):  # "framegen bf16", "torch bf16-cast", "framegen bf16 tiers 8"; old rows: the impl alone
        probe = " (2-step probe, lost)" if r.get("probe_only") else ""
        tower = f" tiers {r['tiers']}" if r.get("tiers") else ""
        return f"{r['impl']} {r.get('mode', r.get('precision', ''))}".strip() + tower + probe

    towers = any(r.get("tiers") for r in rows if r["what"] == "train_step")
    table("train_step", ["F x T x B", "impl", "median ms", "/ torch best", "/ torch same precision"]
          + (["/ flat"] if towers else []) + ["% of floor", "floor ms", "audio samples/s", "compile s"],
          lambda r: [shape(r), impl(r), f"{r['median_ms']:.1f}", ratio(r), ratio(r, "ratio_vs_torch_same")]
          + ([ratio(r, "ratio_vs_flat")] if towers else [])
          + [f"{r['pct_floor']:.0f}%", f"{r['floor_ms']:.1f}", f"{r['samples_per_s']:,}", f"{r['compile_s']:.1f}"])
    table("matmul", ["F x T x B", "matmul", "impl", "ms per product", "GFLOP/s", "/ torch"],
          lambda r: [shape(r), r["shape"], r["impl"], f"{r['ms']:.3f}", f"{r['gflops']:.0f}", ratio(r)])
    table("generate", ["F", "streams", "impl", "x real time (all streams)", "x real time per stream", "us/frame",
                       "compile s"],
          lambda r: [r["frame_size"], r["streams"], impl(r), f"{r['realtime_factor']:.0f}",
                     f"{r['realtime_factor_per_stream']:.1f}", f"{r['us_per_frame']:.0f}", f"{r['compile_s']:.1f}"])
    table("memory", ["F x T x B", "impl", "peak RSS MB", "device peak MB", "XLA temp MB", "step ms", "compile s"],
          lambda r: [shape(r), impl(r),
                     r["peak_rss_mb"] if r["peak_rss_mb"] is not None else f"failed ({r.get('error', '')[:60]})",
                     r.get("device_peak_mb", ""), r.get("xla_temp_mb", ""), r.get("step_ms", ""), r["compile_s"]])
    table("host_overhead", ["F x T x B", "loop ms/step", "step ms (blocked)", "host overhead ms/step",
                            "host sync every"],
          lambda r: [shape(r), f"{r['loop_ms_per_step']:.1f}", f"{r['median_ms']:.1f}", f"{r['overhead_ms']:.1f}",
                     f"{r['sync_every']} steps"])
    end = next((r for r in rows if r["what"] == "end"), None)
    if end:
        out.append(f"\nload average {end['load_avg_1m']} at the end")
    return "\n".join(out) + "\n"

