"""Generation: warm the GRU on seed frames (of the song or of any audio file), then feed each prediction back inside
a ``lax.scan``, over the whole clip or a chunk at a time.

``rollout`` and ``rollout_vq`` (and ``units.rollout_units``) are the pure core (params, seed frames -> new frames,
O(1) work per frame), each also split into a start and a chunk; ``continue_audio`` makes a clip in memory and
``stream_audio`` the same audio a chunk at a time; ``generate`` is the edge that finds a run, restores its
checkpoint, cuts the seed, strips it and streams the WAV to disk.
"""

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
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
from framegen.errors import AudioError, Interrupted, RunError, UsageError
from framegen.evaluate import score_clip
from framegen.gru import dot, gru_cell
from framegen.model import FrameGRU, build, init_params
from framegen.seams import (OverlapAdd, SeamSmoother, Unsmoothed, cut_around,  # noqa: F401 - smoothing re-exported
                            overlap_add, smooth_seams)
from framegen.units import Units, bars_in, code_grid, rollout_units, units_chunk, units_start


ROLLOUT_UNROLL = 8  # scan steps per loop iteration: fewer loop-control ops per frame (measured, bench notes)
# The fewest steps an MSE scan runs (extra frames are dropped): a scan of at most ROLLOUT_UNROLL steps is lowered
# without a loop, and XLA compiles that straight-line code to different float rounding than the loop's body (seen
# on CPU with 2 streams), so a chunk that short would not give the same frames as the whole clip's scan.
MIN_SCAN = 2 * ROLLOUT_UNROLL
# Frames of one streamed chunk are chosen so a chunk holds about this many samples per stream (65 s at 16 kHz, 4 MB
# of float32): memory stays that of one chunk whatever --seconds is, and one compiled call per chunk costs nothing
# next to the chunk's own work (measured in experiments/generate/README.md).
CHUNK_SAMPLES = 1 << 20
SCORE_SECONDS = 60.0  # a streamed clip is scored on its last minute at most, so scoring does not grow with it


def _mse_parts(model: FrameGRU, params):
    """The fast MSE feedback loop's pieces: (step, head (w_o, b_o), layer 0's (w_i0, b_i0, w_c)). A bf16 model's
    weights are cast once here, before the loop (half the bytes per frame); its products accumulate in float32."""
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

    return step, (w_o_low, b_o), (w_i0_low, b_i0, w_c)


def _mse_start(model: FrameGRU, params, seed, seed_clock=None, clock_first=None):
    """Warm on ``seed`` (B, S, F): (the first new frame (B, F), the loop's carry). A tiered model's carry is the
    frame to feed, its clock and the tower's state (``_tower_chunk``)."""
    out, state = model.apply({"params": params}, seed, clock=seed_clock)
    first = out[:, -1]
    if model.tiers:
        return first, (first, clock_first, state)
    _, _, (w_i0, b_i0, w_c) = _mse_parts(model, params)
    gx_first = dot(first, w_i0) + b_i0 + (0.0 if clock_first is None else dot(clock_first, w_c))
    return first, (gx_first, state)


def _mse_chunk(model: FrameGRU, params, carry, n_frames: int, clock_in=None, unroll: int = ROLLOUT_UNROLL):
    """The next ``n_frames`` frames (n, B, F) after ``carry`` (n a multiple of MIN_SCAN), and the carry after them.

    The head runs after the loop on blocks of MIN_SCAN frames, one block per loop step: XLA's CPU matmul rounds
    differently for different row counts, so a head over the whole chunk at once would make each frame depend on
    the chunk's length; blocks of one shape, aligned to the first generated frame, give every frame the same
    arithmetic in a chunk of any length as in the whole clip."""
    if model.tiers:
        return _tower_chunk(model, params, carry, n_frames, clock_in, unroll)
    step, (w_o, b_o), _ = _mse_parts(model, params)
    carry, tops = jax.lax.scan(step, carry, clock_in, length=n_frames, unroll=unroll)
    blocks = tops.reshape(n_frames // MIN_SCAN, MIN_SCAN, *tops.shape[1:])
    return carry, jax.lax.map(lambda t: dot(t, w_o) + b_o, blocks).reshape(n_frames, tops.shape[1], -1)


def _tower_chunk(model: FrameGRU, params, carry, n_frames: int, clock_in=None, unroll: int = ROLLOUT_UNROLL):
    """``_mse_chunk`` of a tiered model: each output of ``FrameGRU.step`` fed back through it (the tiers step inside
    it when their spans end). carry: (the frame to feed (B, F), its clock (B, C) or None, the tower's state)."""

    def step(c, clk):
        frame, frame_clk, state = c
        nxt, state = model.apply({"params": params}, frame, state, frame_clk, method=FrameGRU.step)
        return (nxt, clk, state), nxt

    return jax.lax.scan(step, carry, clock_in, length=n_frames, unroll=unroll)


@partial(jax.jit, static_argnames=("model", "n_frames", "unroll"))
def rollout(model: FrameGRU, params, seed, n_frames: int, unroll: int = ROLLOUT_UNROLL, seed_clock=None,
            clock_in=None):
    """Continue each stream of ``seed`` (B, S, F) by ``n_frames`` predicted frames -> (B, n_frames, F).

    The seed is run through the GRU once to set its state; the output after the seed's last frame is the first
    new frame, and every new frame is fed back as the next input. The seed itself is not returned.

    The same function as feeding ``FrameGRU.step``'s output back (tests/test_generate.py), arranged for speed
    (MSE mode only: the fed-back frame is the head's output itself): the loop carries the top layer's state and
    layer 0's input gates; the head runs once on all frames after the loop; and when F > 3H/4 the head and layer
    0's input projection are folded into one (H, 3H) matrix, W_o W_i0, which is smaller than the two. A tiered
    model is fed back through ``step`` itself (its tiers step inside it when their spans end).
    A model with a beat clock reads ``seed_clock`` (B, S, C) with the seed and ``clock_in`` (n_frames, B, C) with
    each generated frame (its gates add ``clock @ W_c``).
    ``rollout_start`` and ``rollout_chunk`` run the same loop a chunk at a time (streamed generation): the first
    frame comes from the start, every chunk's frames after it, bit for bit the same frames (CPU).
    """
    first, carry = _mse_start(model, params, seed, seed_clock, None if clock_in is None else clock_in[0])
    steps = max(-(-(n_frames - 1) // MIN_SCAN) * MIN_SCAN, MIN_SCAN)  # whole head blocks (see _mse_chunk)
    clk = None if clock_in is None else jnp.pad(clock_in[1:], ((0, steps - n_frames + 1), (0, 0), (0, 0)))
    _, rest = _mse_chunk(model, params, carry, steps, clk, unroll)
    frames = jnp.concatenate([first[None], rest], axis=0)[:n_frames]  # (n_frames, B, F)
    return jnp.swapaxes(frames, 0, 1)


rollout_start = jax.jit(_mse_start, static_argnames=("model",))
rollout_chunk = jax.jit(_mse_chunk, static_argnames=("model", "n_frames", "unroll"))


def _vq_start(model: FrameGRU, params, seed, key, seed_clock=None):
    out, state = model.apply({"params": params}, seed, clock=seed_clock)
    return out[:, -1], state, key


def _vq_chunk(model: FrameGRU, params, carry, table, n_frames: int, temperature: float, top_k: int, clock_in=None):
    variables = {"params": params}

    def step(carry, clk):
        logits, h, k = carry
        k, k_code, k_which = jax.random.split(k, 3)
        code = vq.sample_codes(k_code, logits, temperature, top_k)
        which = jax.random.randint(k_which, code.shape, 0, table.shape[1])
        frame = table[code, which]
        nxt, h = model.apply(variables, frame, h, clk, method=FrameGRU.step)
        return (nxt, h, k), (frame, code, which)

    carry, (frames, codes, which) = jax.lax.scan(step, carry, clock_in, length=n_frames)
    return carry, (jnp.swapaxes(frames, 0, 1), jnp.swapaxes(codes, 0, 1), jnp.swapaxes(which, 0, 1))


@partial(jax.jit, static_argnames=("model", "n_frames", "temperature", "top_k"))
def rollout_vq(model: FrameGRU, params, seed, n_frames: int, table, key, temperature: float = 1.0, top_k: int = 0,
               seed_clock=None, clock_in=None):
    """VQ mode: continue each stream of ``seed`` (B, S, F) by ``n_frames`` frames.

    After the seed, each step samples a code from the model's logits (``vq.sample_codes``: temperature, top-k),
    emits one of that code's E frames in ``table`` (K, E, F) chosen uniformly, and feeds the emitted frame back.
    One ``lax.scan``; the PRNG key is carried through it, split once per frame.
    Returns frames (B, n, F), codes (B, n) and the row of each code's E frames that was emitted (B, n).
    Clock models read ``seed_clock`` (B, S, C) and ``clock_in`` (n, B, C) as in ``rollout``.
    ``rollout_vq_start``/``rollout_vq_chunk`` run the same scan a chunk at a time, the key carried between chunks.
    """
    carry = _vq_start(model, params, seed, key, seed_clock)
    return _vq_chunk(model, params, carry, table, n_frames, temperature, top_k, clock_in)[1]


rollout_vq_start = jax.jit(_vq_start, static_argnames=("model",))
rollout_vq_chunk = jax.jit(_vq_chunk, static_argnames=("model", "n_frames", "temperature", "top_k"))


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


def load_seed_file(path, cfg: RunConfig) -> np.ndarray:
    """A seed file as the model hears it: mono, resampled to the run's rate and normalised with the **run's**
    constants (its song's mean and std), not the file's own, so a quiet file stays quiet and the model sees the
    levels it was trained on. (N,) float32."""
    y, _ = audio.load_song(path, cfg.data.sample_rate, what="seed file")
    return audio.normalise(y, cfg.norm)


def seed_file_start(n_file: int, cfg: RunConfig, path, seed_offset: float | None, seed_frames: int,
                    streams: int = 1) -> int:
    """Sample of the seed file where the (first) seed starts: ``seed_offset`` seconds, by default so the seeds end
    at the file's end (the output continues the file). A file too short for the seed is one line naming the length
    it needs."""
    rate, need = cfg.data.sample_rate, seed_frames * cfg.data.frame_size
    if seed_offset is not None and seed_offset < 0:
        raise UsageError(f"--seed-offset must be 0 or more seconds, got {seed_offset}")
    start = max(n_file - streams * need, 0) if seed_offset is None else int(round(seed_offset * rate))
    if start + need > n_file:
        where = f" from --seed-offset {seed_offset:g} s" if seed_offset else ""
        raise AudioError(
            f"seed file {path} is too short: {n_file / rate:.2f} s at {rate} Hz, but {seed_frames} seed frames of "
            f"{cfg.data.frame_size} samples{where} need {(start + need) / rate:.2f} s: pass a longer file, or fewer "
            f"--seed-frames" + (", or a smaller --seed-offset" if seed_offset else ""))
    return start


@dataclass(frozen=True)
class _Prompt:
    """What every generation path needs from the seed. seeds (S, n_seed, F) on device; starts (S,) where each seed
    starts in the audio it was cut from (the song, or ``source``); seed_clock (S, n_seed, C) or None; after (S,)
    where each stream's first generated frame starts in that audio (where the clock continues from)."""

    seeds: jax.Array
    starts: np.ndarray
    seed_clock: jax.Array | None
    after: np.ndarray


def _prompt(seed, cfg: RunConfig, streams: int, seed_start, grid) -> _Prompt:
    f = cfg.data.frame_size
    seed = np.asarray(seed, np.float32)
    seeds = jnp.broadcast_to(jnp.asarray(seed if seed.ndim == 3 else seed[None]), (streams, *seed.shape[-2:]))
    n_seed = seeds.shape[1]
    starts = np.broadcast_to(np.asarray(0 if seed_start is None else seed_start, np.int64), (streams,))
    seed_clock = None
    if cfg.model.clock == "beat":
        if grid is None or seed_start is None:
            raise RunError("a run with a beat clock needs its beat grid and the seed's place in the song")
        at = starts[:, None] + f * np.arange(1, n_seed + 1)[None, :]  # each seed frame reads its target's phase
        seed_clock = jnp.asarray(clock.features(clock.beat_position(grid.beats, at.astype(np.float64))))
    return _Prompt(seeds, starts, seed_clock, starts + n_seed * f)


def _clock_inputs(grid: clock.BeatGrid, after: np.ndarray, first: int, count: int, frame_size: int):
    """Generated frames first..first+count-1: (their clock's beat position (count, S) float32, the clock features
    each reads as input, those of the next frame's start (count, S, C))."""
    pos = clock.continued(grid, after, count + 1, frame_size, first=first)  # (S, count + 1) frame starts
    return np.ascontiguousarray(pos[:, :-1].T, np.float32), np.swapaxes(clock.features(pos[:, 1:]), 0, 1)


def _first_prev(prompt: _Prompt, units: Units, frame_size: int, seed_source) -> jax.Array:
    """Song offset of each seed's last frame, whose continuation unit selection may play; a seed from another file
    has none in the song (n_train: its continuation is never a candidate)."""
    if seed_source is not None:
        return jnp.full(prompt.starts.shape, units.n_train, jnp.int32)
    return jnp.asarray(prompt.starts + (prompt.seeds.shape[1] - 1) * frame_size, jnp.int32)


def _smoother(cfg: RunConfig, prompt: _Prompt, crossfade_ms: float, real_frames: bool, emission, seed_start,
              seed_source):
    """How the frames' borders become audio (see ``continue_audio``): overlap-add of real surroundings, the seam
    ramp, or nothing."""
    if not crossfade_ms > 0:
        return Unsmoothed()
    f = cfg.data.frame_size
    width = int(round(crossfade_ms * 1e-3 * cfg.data.sample_rate))
    if real_frames and seed_start is not None:
        last_seed = prompt.starts + (prompt.seeds.shape[1] - 1) * f
        # a seed from a file: its last frame with its own surroundings there
        lead = None if seed_source is None else cut_around(seed_source, last_seed, f, width)
        return OverlapAdd(emission.song, last_seed, f, width, lead)
    return SeamSmoother(np.asarray(prompt.seeds[:, -1]), f, max(1, width // 2))


def continue_audio(model, params, seed: np.ndarray, n_samples: int, cfg: RunConfig, streams: int = 1, *,
                   emission: vq.Emission | None = None, key=None, temperature: float = 1.0, top_k: int = 0,
                   crossfade_ms: float = 0.0, seed_start: int | None = None, grid: clock.BeatGrid | None = None,
                   units: Units | None = None, seed_source: np.ndarray | None = None) -> np.ndarray:
    """(streams, n_samples) denormalised audio following ``seed`` (S, F), cut to exactly ``n_samples``; a seed
    (streams, S, F) gives each stream its own (``stream_seeds``). The whole clip in memory, one scan: what
    ``stream_audio`` writes a chunk at a time, bit for bit (CPU).

    VQ runs pass their ``vq.Emission`` and a PRNG key. ``crossfade_ms`` > 0 smooths every frame border over that
    many ms (L samples) centred on it, the border after the seed included: exemplar frames whose song position is
    known (and a seed at song sample ``seed_start``) are overlap-added with their real surroundings
    (``overlap_add``, width L; ``seed_start`` is one start or one per stream); any other frames get the seam
    correction ramp (``smooth_seams``, L/2 each side).
    The frames fed back to the model are never changed, only the audio.
    A run with a beat clock passes its ``grid`` (and ``seed_start``): the seed reads the song's own beat phase and
    the clock runs on at the song's tempo. VQ runs with ``units`` play real frames chosen by unit selection
    (``framegen.units``).
    A seed cut from other audio than the song (a seed file) passes that audio (normalised) as ``seed_source``:
    ``seed_start`` and ``grid`` are then its place in it and that audio's beat grid; unit selection never continues
    it, and the border after it overlap-adds its own surroundings there.
    """
    f = cfg.data.frame_size
    n_frames = -(-n_samples // f)
    p = _prompt(seed, cfg, streams, seed_start, grid)
    clock_pos, clock_in = np.zeros((n_frames, streams), np.float32), None
    if cfg.model.clock == "beat":
        clock_pos, clock_in = _clock_inputs(grid, p.after, 0, n_frames, f)
        clock_in = jnp.asarray(clock_in)
    sources = None  # (streams, n_frames) song offsets of the emitted frames, when they are real song frames
    if cfg.model.output == "vq":
        if emission is None:
            raise RunError("a VQ run needs its codebook's emission to generate")
        key = jax.random.key(0) if key is None else key
        if units is not None:
            beats = None if units.beats is None else jnp.asarray(units.beats, jnp.float32)
            n_bars = bars_in(units.beats, units.n_train, f) if units.beats is not None else 0
            positions, frames = rollout_units(
                model, params, p.seeds, p.seed_clock, _first_prev(p, units, f, seed_source), jnp.asarray(clock_pos),
                clock_in, jnp.asarray(units.song, jnp.float32), jnp.asarray(units.codes), jnp.asarray(emission.table),
                jnp.asarray(emission.offsets, jnp.int32), beats, key, n_frames=n_frames, stride=units.stride,
                n_train=units.n_train, n_bars=n_bars, temperature=float(temperature), top_k=int(top_k),
                hold=float(units.hold), max_run=int(units.max_run))
            frames, sources = np.asarray(frames), np.asarray(positions, np.int64)
        else:
            frames, codes, which = rollout_vq(model, params, p.seeds, n_frames, jnp.asarray(emission.table), key,
                                              float(temperature), int(top_k), p.seed_clock, clock_in)
            frames = np.asarray(frames)
            if emission.offsets is not None:
                sources = emission.offsets[np.asarray(codes), np.asarray(which)]
    else:
        frames = np.asarray(rollout(model, params, p.seeds, n_frames, seed_clock=p.seed_clock, clock_in=clock_in))
    smoother = _smoother(cfg, p, crossfade_ms, sources is not None, emission, seed_start, seed_source)
    y = smoother.push(frames.reshape(streams, -1), sources, last=True)  # the streaming smoothers, in one push
    return audio.denormalise(y[:, :n_samples], cfg.norm)


def stream_audio(model, params, seed: np.ndarray, n_samples: int, cfg: RunConfig, streams: int = 1, *,
                 emission: vq.Emission | None = None, key=None, temperature: float = 1.0, top_k: int = 0,
                 crossfade_ms: float = 0.0, seed_start: int | None = None, grid: clock.BeatGrid | None = None,
                 units: Units | None = None, seed_source: np.ndarray | None = None,
                 chunk_frames: int | None = None) -> Iterator[np.ndarray]:
    """``continue_audio``'s audio a chunk at a time: yields denormalised pieces (streams, k) whose concatenation is
    its (streams, n_samples), bit for bit on CPU, while holding one chunk of ``chunk_frames`` frames (default about
    ``CHUNK_SAMPLES`` samples) whatever ``n_samples`` is.

    The scan runs a chunk at a time through one compiled chunk function (the same length every call, so nothing
    recompiles; the last chunk's frames past the end are dropped), carrying the GRU state, the PRNG key, the clock
    and unit selection's previous frame and run length between chunks; the clock's inputs are computed a chunk at
    a time, and the seam ramp and the overlap-add continue across chunk borders (``SeamSmoother``, ``OverlapAdd``).
    """
    f = cfg.data.frame_size
    n_frames = -(-n_samples // f)
    c = max(1, min(int(chunk_frames or max(1, CHUNK_SAMPLES // f)), n_frames))
    p = _prompt(seed, cfg, streams, seed_start, grid)
    clocked = cfg.model.clock == "beat"

    def clock_at(first: int, count: int):
        if not clocked:
            return np.zeros((count, streams), np.float32), None
        pos, cin = _clock_inputs(grid, p.after, first, count, f)
        return pos, jnp.asarray(cin)

    vq_mode = cfg.model.output == "vq"
    if vq_mode and emission is None:
        raise RunError("a VQ run needs its codebook's emission to generate")
    real = vq_mode and (units is not None or emission.offsets is not None)
    smoother = _smoother(cfg, p, crossfade_ms, real, emission, seed_start, seed_source)
    left = n_samples
    for frames, sources, last in _frame_chunks(model, params, p, n_frames, c, cfg, clock_at, emission, key,
                                               temperature, top_k, units, seed_source):
        y = smoother.push(frames.reshape(streams, -1), sources, last)[:, :left]
        left -= y.shape[1]
        if y.shape[1]:
            yield audio.denormalise(y, cfg.norm)


def _frame_chunks(model, params, p: _Prompt, n_frames: int, c: int, cfg: RunConfig, clock_at, emission, key,
                  temperature, top_k, units, seed_source):
    """(frames (S, m, F), their song offsets (S, m) or None, whether they are the last) for n_frames frames in all,
    a chunk of c at a time."""
    f = cfg.data.frame_size
    if cfg.model.output != "vq":
        c = -(-c // MIN_SCAN) * MIN_SCAN  # whole head blocks, so they align with the whole clip's (_mse_chunk)
        first, carry = rollout_start(model, params, p.seeds, p.seed_clock,
                                     None if p.seed_clock is None else clock_at(0, 1)[1][0])
        done, pending = 1, np.asarray(first)[:, None]
        while done < n_frames:
            carry, frames = rollout_chunk(model, params, carry, c, clock_at(done, c)[1])
            m = min(c, n_frames - done)
            frames = np.swapaxes(np.asarray(frames)[:m], 0, 1)
            if pending is not None:
                frames, pending = np.concatenate([pending, frames], axis=1), None
            done += m
            yield frames, None, done == n_frames
        if pending is not None:
            yield pending, None, True
        return
    key = jax.random.key(0) if key is None else key
    done = 0
    if units is None:
        carry = rollout_vq_start(model, params, p.seeds, key, p.seed_clock)
        table = jnp.asarray(emission.table)
        while done < n_frames:
            carry, (frames, codes, which) = rollout_vq_chunk(model, params, carry, table, c, float(temperature),
                                                             int(top_k), clock_at(done, c)[1])
            m = min(c, n_frames - done)
            sources = None
            if emission.offsets is not None:
                sources = emission.offsets[np.asarray(codes)[:, :m], np.asarray(which)[:, :m]]
            done += m
            yield np.asarray(frames)[:, :m], sources, done == n_frames
        return
    beats = None if units.beats is None else jnp.asarray(units.beats, jnp.float32)
    n_bars = bars_in(units.beats, units.n_train, f) if units.beats is not None else 0
    consts = (jnp.asarray(units.song, jnp.float32), jnp.asarray(units.codes), jnp.asarray(emission.table),
              jnp.asarray(emission.offsets, jnp.int32), beats)
    carry = units_start(model, params, p.seeds, p.seed_clock, _first_prev(p, units, f, seed_source), key)
    while done < n_frames:
        pos, cin = clock_at(done, c)
        carry, positions, frames = units_chunk(
            model, params, carry, jnp.asarray(pos), cin, *consts, n_frames=c, stride=units.stride,
            n_train=units.n_train, n_bars=n_bars, temperature=float(temperature), top_k=int(top_k),
            hold=float(units.hold), max_run=int(units.max_run))
        m = min(c, n_frames - done)
        done += m
        yield np.asarray(frames)[:, :m], np.asarray(positions, np.int64)[:, :m], done == n_frames


@dataclass(frozen=True)
class Generated:
    path: Path
    seconds: float
    rms: float
    run_dir: Path
    evaluation: object = None  # framegen.evaluate.Evaluation against the run's song (None when not scored)
    scored_seconds: float = 0.0  # the evaluation is of the clip's last this many seconds (all of it when equal)

    @property
    def flags(self) -> tuple:
        return tuple(self.evaluation.flags) if self.evaluation is not None else ()


def load_params(run_dir: Path, cfg: RunConfig, kind: str):
    """Params of a run's ``best`` or ``last`` checkpoint, checked against its config."""
    if kind not in checkpoint.KINDS:
        raise UsageError(f"unknown checkpoint {kind!r}: pass --checkpoint best or --checkpoint last")
    like = init_params(build(cfg.model, cfg.data.frame_size), jax.random.key(0))  # shapes only
    params, _ = checkpoint.restore_params(run_dir, kind, like)
    return params


def codebook_for(run_dir: Path, cfg: RunConfig) -> vq.Codebook:
    """A VQ run's saved codebook, checked against its config."""
    m = cfg.model
    return vq.load(run_dir, k=m.codebook, frame_size=cfg.data.frame_size, kind=m.codebook_kind)


def vq_emission_for(run_dir: Path, cfg: RunConfig, song_norm: np.ndarray, emit: str | None = None,
                    cb: vq.Codebook | None = None) -> vq.Emission:
    """The ``vq.Emission`` of a VQ run's codebook ``cb`` (default: the saved one; ``emit`` defaults to the run's
    ``vq_emit``)."""
    return vq.emission(cb or codebook_for(run_dir, cfg), song_norm, emit or cfg.model.vq_emit)


def units_for(cfg: RunConfig, run_dir: Path, song_norm: np.ndarray, grid: clock.BeatGrid | None,
              emit: str | None = None, hold: float | None = None, max_run_s: float | None = None,
              cb: vq.Codebook | None = None) -> Units | None:
    """The ``Units`` of a VQ run that plays exemplars with unit selection (``hold`` or ``max_run_s`` above 0; with a
    beat clock the candidates are the frames at the clock's bar phase); None otherwise. ``hold``/``max_run_s``
    default to the run's, ``cb`` to the saved codebook."""
    hold = cfg.train.hold if hold is None else hold
    max_run_s = cfg.train.max_run_s if max_run_s is None else max_run_s
    if cfg.model.output != "vq" or (emit or cfg.model.vq_emit) != "exemplar":
        return None
    if hold <= 0 and max_run_s <= 0:
        return None
    cb = cb or codebook_for(run_dir, cfg)
    n_train = split_song(len(song_norm), cfg.data).n_train
    codes, stride = code_grid(song_norm, n_train, cb.centroids, cb.gain_shape)
    max_run = int(round(max_run_s * cfg.data.sample_rate / cfg.data.frame_size))
    return Units(song=np.asarray(song_norm, np.float32), n_train=n_train, codes=codes, stride=stride, hold=hold,
                 max_run=max_run, beats=None if grid is None else grid.beats)


def inputs_for(run_dir: Path, cfg: RunConfig, *, checkpoint_kind: str = "best", seed_offset: float | None = None,
               seed_frames: int | None = None, seed_file: Path | None = None, streams: int = 1,
               temperature: float = 1.0, top_k: int = 0, vq_emit: str | None = None, crossfade_ms: float | None = None,
               sample_seed: int = 0, hold: float | None = None, max_run_s: float | None = None):
    """What ``generate`` hands ``stream_audio`` (and ``continue_audio`` takes alike): (model, params, seeds
    (streams, S, F), the normalised song, the keyword arguments). Restores the checkpoint, cuts each stream's seed
    from the song or ``seed_file``, and loads the codebook, beat grid and unit selection the run uses."""
    f = cfg.data.frame_size
    seed_frames = seed_frames or cfg.data.seq_len
    params = load_params(run_dir, cfg, checkpoint_kind)
    song = load_song_for(cfg)
    grid = clock.load(run_dir) if cfg.model.clock == "beat" else None
    if seed_file is None:
        source, seed_grid = None, grid
        start = seed_start(cfg, len(song), seed_offset, seed_frames)
        seeds, starts = stream_seeds(song, start, seed_frames, f, streams)  # each its own place
    else:
        source = load_seed_file(seed_file, cfg)
        start = seed_file_start(len(source), cfg, seed_file, seed_offset, seed_frames, streams)
        seeds, starts = stream_seeds(source, start, seed_frames, f, streams)
        seed_grid = clock.of_seed(source, cfg.data.sample_rate, grid) if grid is not None else None
    cb = codebook_for(run_dir, cfg) if cfg.model.output == "vq" else None  # read once, for both
    emission = vq_emission_for(run_dir, cfg, song, vq_emit, cb) if cb is not None else None
    units = units_for(cfg, run_dir, song, grid, vq_emit, hold, max_run_s, cb)
    kw = dict(emission=emission, key=jax.random.key(sample_seed), temperature=temperature, top_k=top_k,
              crossfade_ms=cfg.train.crossfade_ms if crossfade_ms is None else crossfade_ms, seed_start=starts,
              grid=seed_grid, units=units, seed_source=source)
    return build(cfg.model, f), params, seeds, song, kw


def partial_path(path: Path) -> Path:
    """Where a WAV is streamed while it is written: ``x.partial.wav`` beside ``x.wav``, renamed to it when complete,
    kept under this name when generation is interrupted."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


class _Stopped(BaseException):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so a killed generation closes its WAVs."""

    def __init__(self, signum: int):
        self.signum = signum


@contextmanager
def _sigterm_raises():
    def handler(signum, frame):
        raise _Stopped(signum)

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: the default handling stays
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def generate(
    run_dir: Path,
    *,
    seconds: float = 30.0,
    checkpoint_kind: str = "best",
    seed_offset: float | None = None,
    seed_frames: int | None = None,
    seed_file: Path | None = None,
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
    progress=None,
    chunk_frames: int | None = None,
) -> list[Generated]:
    """Write ``streams`` WAVs of ``seconds`` each continuing the run's song; returns what was written.

    The seed is ``seed_frames`` frames of the song at ``seed_offset`` seconds, or of ``seed_file`` (any audio file:
    resampled to the run's rate and normalised with the run's constants; by default its last frames).
    VQ runs sample codes at ``temperature`` among the ``top_k`` likeliest (0: all) from ``sample_seed`` and emit
    ``vq_emit`` frames (default: the run's). ``crossfade_ms`` defaults to the run's. ``precision`` (fp32, bf16,
    auto) overrides the run's (default: the precision it was trained in).

    The audio is streamed (``stream_audio``) into ``<out>.partial.wav`` a chunk at a time, so memory does not grow
    with ``seconds``, and renamed to ``out`` when complete: an earlier file at ``out`` is never half-replaced.
    Ctrl-C or SIGTERM stops it with ``Interrupted``, the partial file closed as a valid WAV of what was written;
    its header is rewritten after every chunk, so even a kill -9 leaves one. ``progress(seconds_done,
    seconds_total)`` is called after every chunk. With ``score`` every clip is measured against the song
    (``framegen.evaluate``) on its last ``SCORE_SECONDS`` at most (a bounded sample whatever the length) and its
    flags returned.
    """
    if not (0 < seconds < float("inf")):
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
    if precision is not None:
        cfg = replace(cfg, model=replace(cfg.model, precision=precision))
    rate = cfg.data.sample_rate
    seed_frames = seed_frames or cfg.data.seq_len
    if seed_frames < 1:
        raise UsageError(f"--seed-frames must be at least 1, got {seed_frames}")
    n_samples = int(round(seconds * rate))
    if 2 * n_samples + 44 > audio.WAV_MAX_BYTES:
        raise UsageError(f"--seconds {seconds:g} at {rate} Hz passes the WAV format's 4 GB limit: pass at most "
                         f"{(audio.WAV_MAX_BYTES - 44) // 2 // rate:,} seconds and generate longer audio in parts")
    out = Path(out) if out else run_dir / "generated" / f"{checkpoint_kind}-{seconds:g}s.wav"
    paths = [out] if streams == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(streams)]
    for p in paths:
        if p.exists() and not overwrite:
            raise RunError(f"{p} already exists: pass --overwrite to replace it, or choose another --out")

    model, params, prompts, song, kw = inputs_for(
        run_dir, cfg, checkpoint_kind=checkpoint_kind, seed_offset=seed_offset, seed_frames=seed_frames,
        seed_file=seed_file, streams=streams, temperature=temperature, top_k=top_k, vq_emit=vq_emit,
        crossfade_ms=crossfade_ms, sample_seed=sample_seed, hold=hold, max_run_s=max_run_s)
    pieces = stream_audio(model, params, prompts, n_samples, cfg, streams, chunk_frames=chunk_frames, **kw)
    partials = [partial_path(p) for p in paths]
    keep = int(SCORE_SECONDS * rate) if score else 0
    tails = [np.zeros(0, np.float32) for _ in paths]  # the last ``keep`` samples of each stream, to score
    energy = np.zeros(streams)
    done = 0
    _check_room(paths[0].parent, streams * (2 * n_samples + 44))
    writers = []
    with _sigterm_raises():
        try:
            for p in partials:
                writers.append(audio.WavStream(p, rate))
            for piece in pieces:
                if not np.all(np.isfinite(piece)):
                    raise _NonFinite
                try:
                    for w, y in zip(writers, piece):
                        w.write(y)
                except RunError as e:  # disk full, ...: the partial files hold what was written before
                    raise _WriteFailed(str(e)) from None
                done += piece.shape[1]
                clipped = np.clip(piece, -1.0, 1.0)  # what the WAV holds
                energy += np.sum(np.square(clipped, dtype=np.float64), axis=1)
                tails = [np.concatenate([t, y])[-keep:] if keep else t for t, y in zip(tails, clipped)]
                if progress is not None:
                    progress(done / rate, n_samples / rate)
        except BaseException as e:
            for w in writers:
                w.close()
            done = min((w.frames for w in writers), default=0)  # a stop may fall between a write and ``done +=``
            if not any(w.frames for w in writers):  # nothing to keep: no empty WAV left behind
                for p in partials:
                    p.unlink(missing_ok=True)
            raise _stop_error(e, done / rate, n_samples / rate, partials, paths, run_dir) from None
    for w in writers:
        w.close()
    for part, p in zip(partials, paths):
        if p.exists() and not overwrite:  # appeared while generating
            raise RunError(f"{p} appeared while generating: the new audio is kept in {part}")
        os.replace(part, p)
    written = []
    raw = audio.denormalise(song, cfg.norm) if score else None
    for p, tail, e in zip(paths, tails, energy):
        ev = score_clip(tail, raw, rate) if score else None
        written.append(Generated(path=p, seconds=done / rate, rms=float(np.sqrt(e / max(done, 1))), run_dir=run_dir,
                                 evaluation=ev, scored_seconds=len(tail) / rate if ev is not None else 0.0))
    return written


def _check_room(folder: Path, size: int) -> None:
    """Refuse at once, not hours in, when the disk cannot hold the WAVs."""
    import shutil

    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < size:
        raise RunError(f"the output needs {size / 1e9:.2f} GB and {folder} has {free / 1e9:.2f} GB free: free disk "
                       f"space, choose another --out or generate fewer --seconds")


class _NonFinite(Exception):
    pass


class _WriteFailed(Exception):
    pass


def _stop_error(e: BaseException, done_s: float, total_s: float, partials: list[Path], paths: list[Path],
                run_dir: Path) -> BaseException:
    """The one-line error a generation stopped by ``e`` ends with, saying what was kept and where."""
    where = str(partials[0]) if len(partials) == 1 else f"{partials[0]} ... {partials[-1].name}"
    kept = f"the {done_s:.1f} s written are kept as a valid WAV in {where}" if done_s else "nothing was written"
    if isinstance(e, KeyboardInterrupt | _Stopped):
        signum = e.signum if isinstance(e, _Stopped) else signal.SIGINT
        earlier = " (the earlier file is untouched)" if any(p.exists() for p in paths) else ""
        return Interrupted(f"interrupted by {signal.Signals(signum).name} after {done_s:.1f} s of {total_s:g} s: "
                           f"{kept}{earlier}", exit_code=128 + signum)
    if isinstance(e, _NonFinite):
        after = f" after {done_s:.1f} s" if done_s else ""
        return RunError(f"the model produced NaN or infinite samples from {run_dir}{after}: {kept}; try "
                        f"--checkpoint last or retrain with a lower --lr")
    if isinstance(e, _WriteFailed):
        return RunError(f"{e}; {kept}")
    return e
