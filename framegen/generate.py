"""Generation: warm the GRU on seed frames from the song, then feed each prediction back inside one ``lax.scan``.

``rollout`` is the pure core (params, seed frames -> new frames, O(1) work per frame); ``generate`` is the edge that
finds a run, restores its checkpoint, takes the seed from the song, strips it and writes the WAV.
"""

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from framegen import audio, checkpoint, clock, vq
from framegen.audio import load_song_for  # noqa: F401 - re-exported: where generate's callers found it
from framegen.config import RunConfig, load_config
from framegen.data import seed_of, split_song, stream_seeds  # noqa: F401 - seed_of re-exported likewise
from framegen.errors import RunError, UsageError
from framegen.evaluate import score_clip
from framegen.gru import dot, gru_cell
from framegen.model import FrameGRU, build, init_params
from framegen.units import Units, bars_in, code_grid, rollout_units


ROLLOUT_UNROLL = 8  # scan steps per loop iteration: fewer loop-control ops per frame (measured, bench notes)


@partial(jax.jit, static_argnames=("model", "n_frames", "unroll"))
def rollout(model: FrameGRU, params, seed, n_frames: int, unroll: int = ROLLOUT_UNROLL, seed_clock=None,
            clock_in=None):
    """Continue each stream of ``seed`` (B, S, F) by ``n_frames`` predicted frames -> (B, n_frames, F).

    The seed is run through the GRU once to set its state; the output after the seed's last frame is the first
    new frame, and every new frame is fed back as the next input. The seed itself is not returned.

    The same function as feeding ``FrameGRU.step``'s output back (tests/test_generate.py), arranged for speed
    for the flat model (MSE mode only: the fed-back frame is the head's output itself): the loop carries the top
    layer's state and layer 0's input gates; the head runs once on all frames after the loop; and when F > 3H/4 the
    head and layer 0's input projection are folded into one (H, 3H) matrix, W_o W_i0, which is smaller than the
    two. A tiered model is fed back through ``step`` itself (its tiers step inside it).
    A model with a beat clock reads ``seed_clock`` (B, S, C) with the seed and ``clock_in`` (n_frames, B, C) with
    each generated frame (its gates add ``clock @ W_c``).
    A bf16 model reads its weights in bfloat16 inside the loop (cast once, before it; half the bytes per frame).
    """
    variables = {"params": params}
    out, state = model.apply(variables, seed, clock=seed_clock)
    first = out[:, -1]
    if model.tiers:  # the tower steps its tiers inside FrameGRU.step: feed each output back through it
        def step_tower(carry, clk):
            frame, st = carry
            nxt, st = model.apply(variables, frame, st, clk, method=FrameGRU.step)
            return (nxt, st), frame

        _, frames = jax.lax.scan(step_tower, (first, state), clock_in, length=n_frames, unroll=unroll)
        return jnp.swapaxes(frames, 0, 1)
    low = (lambda w: w.astype(model.dtype)) if model.precision == "bf16" else (lambda w: w)
    cells = [(low(params[f"w_i_{i}"]), params[f"b_i_{i}"], low(params[f"w_h_{i}"]), params[f"b_h_{i}"])
             for i in range(model.layers)]
    w_o, b_o = params["head"]["kernel"], params["head"]["bias"]
    w_i0, b_i0 = params["w_i_0"], params["b_i_0"]
    w_c, w_i0 = low(w_i0[model.frame_size :]), w_i0[: model.frame_size]  # the clock's rows (none without a clock)
    fold = 4 * model.frame_size > 3 * model.hidden  # H*3H < H*F + F*3H
    w_fold, b_fold = low(w_o @ w_i0), b_o @ w_i0 + b_i0  # folded in float32, then cast
    w_o_low, w_i0_low = low(w_o), low(w_i0)

    def feed_back(top, clk):  # layer 0's input gates of the frame the head makes from the top state: (B, H) -> (B, 3H)
        gx = dot(top, w_fold) + b_fold if fold else dot(dot(top, w_o_low) + b_o, w_i0_low) + b_i0
        return gx if clk is None else gx + dot(clk, w_c)

    def step(carry, clk):
        gx0, h = carry
        x, new = None, []
        for i, (w_i, b_i, w_h, b_h) in enumerate(cells):
            x = gru_cell(w_h, b_h, gx0 if i == 0 else dot(x, w_i) + b_i, h[i])
            new.append(x)
        return (feed_back(x, clk), jnp.stack(new)), x

    gx_first = dot(first, w_i0_low) + b_i0 + (0.0 if clock_in is None else dot(clock_in[0], w_c))
    _, tops = jax.lax.scan(step, (gx_first, state), None if clock_in is None else clock_in[1:],
                           length=max(n_frames - 1, 0), unroll=unroll)
    frames = jnp.concatenate([first[None], dot(tops, w_o_low) + b_o], axis=0)[:n_frames]  # (n_frames, B, F)
    return jnp.swapaxes(frames, 0, 1)


@partial(jax.jit, static_argnames=("model", "n_frames", "temperature", "top_k"))
def rollout_vq(model: FrameGRU, params, seed, n_frames: int, table, key, temperature: float = 1.0, top_k: int = 0,
               seed_clock=None, clock_in=None):
    """VQ mode: continue each stream of ``seed`` (B, S, F) by ``n_frames`` frames.

    After the seed, each step samples a code from the model's logits (``vq.sample_codes``: temperature, top-k),
    emits one of that code's E frames in ``table`` (K, E, F) chosen uniformly, and feeds the emitted frame back.
    One ``lax.scan``; the PRNG key is carried through it, split once per frame.
    Returns frames (B, n, F), codes (B, n) and the row of each code's E frames that was emitted (B, n).
    Clock models read ``seed_clock`` (B, S, C) and ``clock_in`` (n, B, C) as in ``rollout``.
    """
    variables = {"params": params}
    out, state = model.apply(variables, seed, clock=seed_clock)

    def step(carry, clk):
        logits, h, k = carry
        k, k_code, k_which = jax.random.split(k, 3)
        code = vq.sample_codes(k_code, logits, temperature, top_k)
        which = jax.random.randint(k_which, code.shape, 0, table.shape[1])
        frame = table[code, which]
        nxt, h = model.apply(variables, frame, h, clk, method=FrameGRU.step)
        return (nxt, h, k), (frame, code, which)

    _, (frames, codes, which) = jax.lax.scan(step, (out[:, -1], state, key), clock_in, length=n_frames)
    return jnp.swapaxes(frames, 0, 1), jnp.swapaxes(codes, 0, 1), jnp.swapaxes(which, 0, 1)


def smooth_seams(y: np.ndarray, frame_size: int, width: int) -> np.ndarray:
    """Remove the step at every frame border of ``y`` (..., N) (borders at multiples of ``frame_size``) with a
    raised-cosine correction ramp; the length is unchanged.

    At a border b (between y[b-1] and y[b]) the excess jump is
        d = (y[b] - y[b-1]) - (y[b-1] - y[b-2] + y[b+1] - y[b]) / 2,
    the step minus the local slope, so a smooth waveform crossing the border is left (nearly) alone. Then
        y[b-1-j] += d/2 * w(j)   and   y[b+j] -= d/2 * w(j),   w(j) = (1 + cos(pi (j + 1/2) / L)) / 2,
    for j = 0..L-1, L = ``width`` (at most F/2, so neighbouring ramps never overlap): the two sides meet half way
    and the step becomes a raised-cosine slope over 2L samples. Frames have no samples beyond their borders to
    overlap-add, so the ramp bends each frame's own edges instead. Borders with fewer than 2 samples on a side of
    the signal are left alone.
    """
    y = np.array(y, np.float32, copy=True)
    n = y.shape[-1]
    width = min(int(width), frame_size // 2)
    seams = np.arange(frame_size, n - 1, frame_size)
    seams = seams[seams >= 2]
    if width < 1 or len(seams) == 0:
        return y
    step = y[..., seams] - y[..., seams - 1]
    slope = 0.5 * ((y[..., seams - 1] - y[..., seams - 2]) + (y[..., seams + 1] - y[..., seams]))
    half = 0.5 * (step - slope)  # (..., M)
    j = np.arange(width)
    w = (0.5 * (1.0 + np.cos(np.pi * (j + 0.5) / width))).astype(np.float32)  # (L,)
    left = seams[:, None] - 1 - j  # (M, L): indices are unique across seams since L <= F/2
    right = seams[:, None] + j
    ok_r = right < n
    y[..., left] += half[..., None] * w
    y[..., right[ok_r]] -= (half[..., None] * w)[..., ok_r]
    return y


def overlap_add(song: np.ndarray, offsets: np.ndarray, frame_size: int, width: int) -> np.ndarray:
    """Concatenate frames cut from ``song`` at ``offsets`` (S, N), overlap-adding their real surroundings across
    every border -> (S, (N - 1) * F): the audio of frames 1..N-1, frame 0 being the one before the output.

    Frame i is cut with h = ``width`` // 2 extra samples each side, song[o_i - h : o_i + F + h], weighted by a
    window that rises as sin^2 over its first 2h samples, is 1 in the middle and falls as cos^2 over its last 2h,
    and placed so its core lands on [i F, (i + 1) F). Across a border, frame i's real continuation fades out while
    frame i+1's real lead-in fades in; the weights sum to 1 everywhere, so a frame followed by its true successor
    (o_{i+1} = o_i + F) comes out exactly as the song. The last frame is not faded out. ``width`` is capped at F
    (only neighbours overlap); the song is zero-padded where a cut runs past its ends.
    """
    offsets = np.asarray(offsets, np.int64)
    h = min(int(width), frame_size) // 2
    streams, n = offsets.shape
    f = frame_size
    pad = np.concatenate([np.zeros(h, np.float32), np.asarray(song, np.float32), np.zeros(f + h, np.float32)])
    w = np.ones(f + 2 * h, np.float32)
    if h:
        t = (np.arange(2 * h) + 0.5) / (2 * h)
        w[: 2 * h] = np.sin(0.5 * np.pi * t) ** 2
        w[-2 * h :] = np.cos(0.5 * np.pi * t) ** 2
    out = np.zeros((streams, n * f + 2 * h), np.float32)
    span = np.arange(f + 2 * h)
    last = w.copy()
    last[f:] = 1.0  # the last frame has no successor: it plays to the end of the output unfaded
    for i in range(n):  # N is the frame count of one clip: a few hundred host-side adds
        out[:, i * f : (i + 1) * f + 2 * h] += pad[offsets[:, i, None] + span] * (last if i == n - 1 else w)
    return out[:, f + h : n * f + h]


def seed_start(cfg: RunConfig, n_total: int, seed_offset: float | None, seed_frames: int) -> int:
    """Sample index where the seed starts: by default the start of the held-out tail (audio never trained on)."""
    need = seed_frames * cfg.data.frame_size
    if seed_offset is None:
        start = split_song(n_total, cfg.data).n_train
    else:
        if seed_offset < 0:
            raise UsageError(f"--seed-offset must be 0 or more seconds, got {seed_offset}")
        start = int(round(seed_offset * cfg.data.sample_rate))
    if start + need > n_total:
        longest = n_total / cfg.data.sample_rate - need / cfg.data.sample_rate
        raise UsageError(
            f"the seed ({seed_frames} frames from {start / cfg.data.sample_rate:.2f} s) runs past the song's end "
            f"({n_total / cfg.data.sample_rate:.2f} s): pass --seed-offset of at most {max(longest, 0):.2f}"
        )
    return start


def continue_audio(model, params, seed: np.ndarray, n_samples: int, cfg: RunConfig, streams: int = 1, *,
                   emission: vq.Emission | None = None, key=None, temperature: float = 1.0, top_k: int = 0,
                   crossfade_ms: float = 0.0, seed_start: int | None = None, grid: clock.BeatGrid | None = None,
                   units: Units | None = None) -> np.ndarray:
    """(streams, n_samples) denormalised audio following ``seed`` (S, F), cut to exactly ``n_samples``; a seed
    (streams, S, F) gives each stream its own (``stream_seeds``).

    VQ runs pass their ``vq.Emission`` and a PRNG key. ``crossfade_ms`` > 0 smooths every frame border over that
    many ms (L samples) centred on it, the border after the seed included: exemplar frames whose song position is
    known (and a seed at song sample ``seed_start``) are overlap-added with their real surroundings
    (``overlap_add``, width L; ``seed_start`` is one start or one per stream); any other frames get the seam
    correction ramp (``smooth_seams``, L/2 each side).
    The frames fed back to the model are never changed, only the audio.
    A run with a beat clock passes its ``grid`` (and ``seed_start``): the seed reads the song's own beat phase and
    the clock runs on at the song's tempo. VQ runs with ``units`` play real frames chosen by unit selection
    (``framegen.units``).
    """
    f = cfg.data.frame_size
    n_frames = -(-n_samples // f)
    seed = np.asarray(seed, np.float32)
    seeds = jnp.broadcast_to(jnp.asarray(seed if seed.ndim == 3 else seed[None]), (streams, *seed.shape[-2:]))
    n_seed = seeds.shape[1]
    starts = np.broadcast_to(np.asarray(0 if seed_start is None else seed_start, np.int64), (streams,))
    seed_clock = clock_in = None
    clock_pos = np.zeros((n_frames, streams), np.float32)
    if cfg.model.clock == "beat":
        if grid is None or seed_start is None:
            raise RunError("a run with a beat clock needs its beat grid and the seed's place in the song")
        at = starts[:, None] + f * np.arange(1, n_seed + 1)[None, :]  # each seed frame reads its target's phase
        seed_clock = jnp.asarray(clock.features(clock.beat_position(grid.beats, at.astype(np.float64))))
        pos = clock.continued(grid, starts + n_seed * f, n_frames + 1, f)  # (streams, n + 1) frame starts
        clock_pos = np.ascontiguousarray(pos[:, :-1].T, np.float32)
        clock_in = jnp.asarray(np.swapaxes(clock.features(pos[:, 1:]), 0, 1))  # (n, streams, C)
    sources = None  # (streams, n_frames) song offsets of the emitted frames, when they are real song frames
    if cfg.model.output == "vq":
        if emission is None:
            raise RunError("a VQ run needs its codebook's emission to generate")
        key = jax.random.key(0) if key is None else key
        if units is not None:
            beats = None if units.beats is None else jnp.asarray(units.beats, jnp.float32)
            n_bars = bars_in(units.beats, units.n_train, f) if units.beats is not None else 0
            first_prev = jnp.asarray(starts + (n_seed - 1) * f, jnp.int32)
            positions, frames = rollout_units(
                model, params, seeds, seed_clock, first_prev, jnp.asarray(clock_pos), clock_in,
                jnp.asarray(units.song, jnp.float32), jnp.asarray(units.codes), jnp.asarray(emission.table),
                jnp.asarray(emission.offsets, jnp.int32), beats, key, n_frames=n_frames, stride=units.stride,
                n_train=units.n_train, n_bars=n_bars, temperature=float(temperature), top_k=int(top_k),
                hold=float(units.hold), max_run=int(units.max_run))
            frames, sources = np.asarray(frames), np.asarray(positions, np.int64)
        else:
            frames, codes, which = rollout_vq(model, params, seeds, n_frames, jnp.asarray(emission.table), key,
                                              float(temperature), int(top_k), seed_clock, clock_in)
            frames = np.asarray(frames)
            if emission.offsets is not None:
                sources = emission.offsets[np.asarray(codes), np.asarray(which)]
    else:
        frames = np.asarray(rollout(model, params, seeds, n_frames, seed_clock=seed_clock, clock_in=clock_in))
    y = frames.reshape(streams, -1)
    if crossfade_ms > 0:
        width = int(round(crossfade_ms * 1e-3 * cfg.data.sample_rate))
        if sources is not None and seed_start is not None:
            last_seed = (np.broadcast_to(np.asarray(seed_start), (streams,)) + (seeds.shape[1] - 1) * f)[:, None]
            y = overlap_add(emission.song, np.concatenate([last_seed, sources], axis=1), f, width)
        else:
            lead = np.asarray(seeds[:, -1])
            y = smooth_seams(np.concatenate([lead, y], axis=1), f, max(1, width // 2))[:, f:]
    return audio.denormalise(y[:, :n_samples], cfg.norm)


@dataclass(frozen=True)
class Generated:
    path: Path
    seconds: float
    rms: float
    run_dir: Path
    evaluation: object = None  # framegen.evaluate.Evaluation against the run's song (None when not scored)

    @property
    def flags(self) -> tuple:
        return tuple(self.evaluation.flags) if self.evaluation is not None else ()


def load_params(run_dir: Path, cfg: RunConfig, kind: str):
    """Params of a run's ``best`` or ``last`` checkpoint, checked against its config."""
    if kind not in checkpoint.KINDS:
        raise UsageError(f"unknown checkpoint {kind!r}: pass --checkpoint best or --checkpoint last")
    if kind == "best" and not checkpoint.exists(run_dir, "best"):
        kind = "last"  # a run stopped before its first validation has only "last"
    like = init_params(build(cfg.model, cfg.data.frame_size), jax.random.key(0))  # shapes only
    params, _ = checkpoint.restore_params(run_dir, kind, like)
    return params


def vq_emission_for(run_dir: Path, cfg: RunConfig, song_norm: np.ndarray, emit: str | None = None) -> vq.Emission:
    """The ``vq.Emission`` of a VQ run's saved codebook (``emit`` defaults to the run's ``vq_emit``)."""
    m = cfg.model
    cb = vq.load(run_dir, k=m.codebook, frame_size=cfg.data.frame_size, kind=m.codebook_kind)
    return vq.emission(cb, song_norm, emit or m.vq_emit)


def units_for(cfg: RunConfig, run_dir: Path, song_norm: np.ndarray, grid: clock.BeatGrid | None,
              emit: str | None = None, hold: float | None = None, max_run_s: float | None = None) -> Units | None:
    """The ``Units`` of a VQ run that plays exemplars with unit selection (``hold`` or ``max_run_s`` above 0; with a
    beat clock the candidates are the frames at the clock's bar phase); None otherwise. ``hold``/``max_run_s``
    default to the run's."""
    hold = cfg.train.hold if hold is None else hold
    max_run_s = cfg.train.max_run_s if max_run_s is None else max_run_s
    if cfg.model.output != "vq" or (emit or cfg.model.vq_emit) != "exemplar":
        return None
    if hold <= 0 and max_run_s <= 0:
        return None
    m = cfg.model
    cb = vq.load(run_dir, k=m.codebook, frame_size=cfg.data.frame_size, kind=m.codebook_kind)
    n_train = split_song(len(song_norm), cfg.data).n_train
    codes, stride = code_grid(song_norm, n_train, cb.centroids, cb.gain_shape)
    max_run = int(round(max_run_s * cfg.data.sample_rate / cfg.data.frame_size))
    return Units(song=np.asarray(song_norm, np.float32), n_train=n_train, codes=codes, stride=stride, hold=hold,
                 max_run=max_run, beats=None if grid is None else grid.beats)


def generate(
    run_dir: Path,
    *,
    seconds: float = 30.0,
    checkpoint_kind: str = "best",
    seed_offset: float | None = None,
    seed_frames: int | None = None,
    out: Path | None = None,
    overwrite: bool = False,
    streams: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    vq_emit: str | None = None,
    crossfade_ms: float | None = None,
    sample_seed: int = 0,
    score: bool = True,
    hold: float | None = None,
    max_run_s: float | None = None,
    precision: str | None = None,
) -> list[Generated]:
    """Write ``streams`` WAVs of ``seconds`` each continuing the run's song; returns what was written.

    VQ runs sample codes at ``temperature`` among the ``top_k`` likeliest (0: all) from ``sample_seed`` and emit
    ``vq_emit`` frames (default: the run's). ``crossfade_ms`` defaults to the run's. With ``score`` every clip is
    measured against the song (``framegen.evaluate``) and its flags returned. ``precision`` (fp32, bf16, auto)
    overrides the run's (default: the precision it was trained in).
    """
    if not (seconds > 0):
        raise UsageError(f"--seconds must be positive, got {seconds}")
    if streams < 1:
        raise UsageError(f"--streams must be at least 1, got {streams}")
    if not (temperature >= 0):
        raise UsageError(f"--temperature must be 0 (greedy) or more, got {temperature}")
    if top_k < 0:
        raise UsageError(f"--top-k must be 0 (off) or more, got {top_k}")
    if crossfade_ms is not None and not (crossfade_ms >= 0):
        raise UsageError(f"--crossfade must be 0 or more milliseconds, got {crossfade_ms}")
    if hold is not None and not (hold >= 0):
        raise UsageError(f"--hold must be 0 or more, got {hold}")
    if max_run_s is not None and not (max_run_s >= 0):
        raise UsageError(f"--max-run must be 0 or more seconds, got {max_run_s}")
    if vq_emit is not None and vq_emit not in vq.EMITS:
        raise UsageError(f"unknown --vq-emit {vq_emit!r}: pass one of {', '.join(vq.EMITS)}")
    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    seed_frames = seed_frames or cfg.data.seq_len
    if seed_frames < 1:
        raise UsageError(f"--seed-frames must be at least 1, got {seed_frames}")
    out = Path(out) if out else run_dir / "generated" / f"{checkpoint_kind}-{seconds:g}s.wav"
    paths = [out] if streams == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(streams)]
    for p in paths:
        if p.exists() and not overwrite:
            raise RunError(f"{p} already exists: pass --overwrite to replace it, or choose another --out")

    params = load_params(run_dir, cfg, checkpoint_kind)
    song = load_song_for(cfg)
    start = seed_start(cfg, len(song), seed_offset, seed_frames)
    prompts, starts = stream_seeds(song, start, seed_frames, cfg.data.frame_size, streams)  # each its own place
    n_samples = int(round(seconds * cfg.data.sample_rate))
    if precision is not None:
        cfg = replace(cfg, model=replace(cfg.model, precision=precision))
    model = build(cfg.model, cfg.data.frame_size)
    emission = vq_emission_for(run_dir, cfg, song, vq_emit) if cfg.model.output == "vq" else None
    grid = clock.load(run_dir) if cfg.model.clock == "beat" else None
    units = units_for(cfg, run_dir, song, grid, vq_emit, hold, max_run_s)
    fade = cfg.train.crossfade_ms if crossfade_ms is None else crossfade_ms
    ys = continue_audio(model, params, prompts, n_samples, cfg, streams, emission=emission,
                        key=jax.random.key(sample_seed), temperature=temperature, top_k=top_k, crossfade_ms=fade,
                        seed_start=starts, grid=grid, units=units)
    if not np.all(np.isfinite(ys)):
        raise RunError(
            f"the model produced NaN or infinite samples from {run_dir}: nothing was written; "
            f"try --checkpoint last or retrain with a lower --lr"
        )
    written = []
    raw = audio.denormalise(song, cfg.norm) if score else None
    for p, y in zip(paths, ys):
        audio.write_wav(p, y, cfg.data.sample_rate, overwrite=overwrite)
        ev = score_clip(y, raw, cfg.data.sample_rate) if score else None
        written.append(Generated(path=p, seconds=len(y) / cfg.data.sample_rate, rms=float(np.sqrt(np.mean(y**2))),
                                 run_dir=run_dir, evaluation=ev))
    return written
