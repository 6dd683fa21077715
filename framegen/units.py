"""Unit selection for VQ generation: which real frame of the song's training part plays next.

The model's logits score candidate frames by their codes; the frame that followed the previous one in the song
(its continuation) is preferred by ``hold`` for at most ``max_run`` frames, so notes are held and attacks keep
their shape while the output stays new. With a beat clock the candidates are the frames at the clock's bar phase in
every bar of the song (jumps land on the beat); without one they are the sampled code's exemplars.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from framegen import clock, vq
from framegen.config import RunConfig
from framegen.data import split_song
from framegen.model import FrameGRU

GRID_PER_FRAME = 4  # codes are looked up on a grid of F/4 samples: a candidate moves at most F/8 (3 ms at F=400)
CHUNK = 4096  # frames per encoding call


@dataclass(frozen=True)
class Units:
    """What unit selection needs, host side.

    song: (N,) the normalised song; n_train: its training part's length (candidates end inside it).
    codes: (G,) the code of the frame at every ``stride`` samples of the training part.
    hold: weight of the continuation against one other candidate (0: never preferred, only chosen by chance).
    max_run: frames a run of continuations may last before a jump is forced (0: no continuation).
    beats: (Nb,) the song's fitted beat positions (samples) for a clock run, else None.
    """

    song: np.ndarray
    n_train: int
    codes: np.ndarray
    stride: int
    hold: float
    max_run: int
    beats: np.ndarray | None = None


@partial(jax.jit, static_argnames=("frame_size", "gain_shape"))
def _encode_at(song, offsets, centroids, *, frame_size: int, gain_shape: bool):
    frames = jax.vmap(lambda s: jax.lax.dynamic_slice(song, (s,), (frame_size,)))(offsets)
    return vq.encode(frames, centroids, gain_shape)


def code_grid(song_norm: np.ndarray, n_train: int, centroids: np.ndarray, gain_shape: bool) -> tuple[np.ndarray, int]:
    """(codes (G,), stride): the nearest code of the training frame at every ``stride`` = F / GRID_PER_FRAME samples."""
    f = centroids.shape[1]
    stride = max(1, f // GRID_PER_FRAME)
    offsets = np.arange(0, n_train - f + 1, stride, dtype=np.int32)
    padded = np.concatenate([offsets, np.zeros(-len(offsets) % CHUNK, np.int32)])
    song = jnp.asarray(song_norm[:n_train], jnp.float32)
    c = jnp.asarray(centroids)
    parts = [np.asarray(_encode_at(song, padded[i : i + CHUNK], c, frame_size=f, gain_shape=gain_shape))
             for i in range(0, len(padded), CHUNK)]
    return np.concatenate(parts)[: len(offsets)], stride


def bars_in(beats: np.ndarray, n_train: int, frame_size: int) -> int:
    """Whole bars of the beat grid whose frames all lie inside the training part."""
    last = np.searchsorted(beats, n_train - 2 * frame_size) - 1  # last beat with a frame after it in training
    return max(int(last) // clock.BAR, 1)


def units_for(run_dir: Path, cfg: RunConfig, song_norm: np.ndarray, grid: clock.BeatGrid | None,
              cb: vq.Codebook | None = None) -> Units | None:
    """The ``Units`` of a VQ run that plays exemplars with unit selection (its ``hold`` or ``max_run_s`` above 0;
    with a beat clock the candidates are the frames at the clock's bar phase); None otherwise. ``cb`` defaults to
    the run's saved codebook."""
    hold, max_run_s = cfg.train.hold, cfg.train.max_run_s
    if cfg.model.output != "vq" or cfg.model.vq_emit != "exemplar" or (hold <= 0 and max_run_s <= 0):
        return None
    cb = cb or vq.codebook_for(run_dir, cfg)
    n_train = split_song(len(song_norm), cfg.data).n_train
    codes, stride = code_grid(song_norm, n_train, cb.centroids, cb.gain_shape)
    max_run = int(round(max_run_s * cfg.data.sample_rate / cfg.data.frame_size))
    return Units(song=np.asarray(song_norm, np.float32), n_train=n_train, codes=codes, stride=stride, hold=hold,
                 max_run=max_run, beats=None if grid is None else grid.beats)


def _start(model: FrameGRU, params, prompt, prompt_clock, first_prev, key):
    out, state = model.apply({"params": params}, prompt, clock=prompt_clock)
    b = prompt.shape[0]
    return out[:, -1], state, key, first_prev.astype(jnp.int32), jnp.zeros((b,), jnp.int32)


def _chunk(model: FrameGRU, params, carry, clock_pos, clock_in, song, codes, offsets, beats, *, n_frames: int,
           stride: int, n_train: int, n_bars: int, temperature: float, top_k: int, hold: float, max_run: int):
    f = model.frame_size
    variables = {"params": params}
    log_hold = jnp.log(jnp.maximum(hold, 1e-30))
    code_at = lambda pos: codes[jnp.clip((pos + stride // 2) // stride, 0, codes.shape[0] - 1)]  # noqa: E731

    def step(carry, xs):
        logits, h, k, prev, run = carry
        pos_k, clk = xs
        k, k_code, k_pick = jax.random.split(k, 3)
        logits = vq.keep_top_k(logits, top_k)
        scale = 1.0 / max(temperature, 1e-6)
        cont = prev + f
        cont_ok = (run < max_run) & (cont + f <= n_train)
        cont_score = jnp.take_along_axis(logits, code_at(cont)[:, None], axis=-1)[:, 0] * scale + log_hold
        if beats is not None:  # the frames at the clock's bar phase in every bar
            bar_phase = jnp.mod(pos_k, clock.BAR)  # (B,)
            at = clock.BAR * jnp.arange(n_bars, dtype=jnp.float32)[None, :] + bar_phase[:, None]  # (B, M)
            cands = jnp.round(jnp.interp(at, jnp.arange(beats.shape[0], dtype=jnp.float32), beats)).astype(jnp.int32)
            ok = (cands >= 0) & (cands + f <= n_train)
            scores = jnp.take_along_axis(logits, code_at(cands), axis=-1) * scale
        else:  # the sampled code's exemplars, uniformly; the continuation only when it has that code
            code = vq.sample_codes(k_code, logits, temperature, top_k)
            cands = offsets[code].astype(jnp.int32)  # (B, E)
            ok = jnp.ones(cands.shape, bool)
            scores = jnp.zeros(cands.shape, jnp.float32)
            cont_ok = cont_ok & (code_at(cont) == code)
        scores = jnp.where(ok, scores, -jnp.inf)
        all_scores = jnp.concatenate([scores, jnp.where(cont_ok, cont_score, -jnp.inf)[:, None]], axis=-1)
        if temperature == 0:
            pick = jnp.argmax(all_scores, axis=-1)
        else:
            pick = jax.random.categorical(k_pick, all_scores, axis=-1)
        is_cont = pick == cands.shape[1]
        chosen = jnp.take_along_axis(cands, jnp.minimum(pick, cands.shape[1] - 1)[:, None], axis=-1)[:, 0]
        pos = jnp.where(is_cont, cont, chosen)
        run = jnp.where(is_cont, run + 1, 0)
        frame = jax.vmap(lambda s: jax.lax.dynamic_slice(song, (s,), (f,)))(pos)
        nxt, h = model.apply(variables, frame, h, clk, method=FrameGRU.step)
        return (nxt, h, k, pos, run), (pos, frame)

    carry, (positions, frames) = jax.lax.scan(step, carry, (clock_pos, clock_in), length=n_frames)
    return carry, jnp.swapaxes(positions, 0, 1), jnp.swapaxes(frames, 0, 1)


_STATIC = ("model", "n_frames", "stride", "n_train", "n_bars", "temperature", "top_k")


@partial(jax.jit, static_argnames=_STATIC)
def rollout_units(model: FrameGRU, params, prompt, prompt_clock, first_prev, clock_pos, clock_in, song, codes, offsets,
                  beats, key, *, n_frames: int, stride: int, n_train: int, n_bars: int,
                  temperature: float, top_k: int, hold: float, max_run: int):
    """Continue each stream of ``prompt`` (B, S, F) by ``n_frames`` real song frames chosen by unit selection.

    prompt_clock (B, S, C) / clock_in (n, B, C): clock features of the prompt's and the generated frames' inputs (None
    without a clock); clock_pos (n, B): the clock's beat position at each generated frame. first_prev (B,): song
    offset of the prompt's last frame (its continuation lies in the held-out tail, so it is never chosen).
    offsets (K, E): song offsets of the codebook's exemplars, the candidates without a clock (``beats`` None).
    Returns (positions (B, n) int32 song offsets of the emitted frames, frames (B, n, F)).
    ``units_start`` and ``units_chunk`` run the same scan a chunk at a time (streamed generation), carrying the
    state, key, previous frame and run length between chunks.
    """
    carry = _start(model, params, prompt, prompt_clock, first_prev, key)
    _, positions, frames = _chunk(model, params, carry, clock_pos, clock_in, song, codes, offsets, beats,
                                  n_frames=n_frames, stride=stride, n_train=n_train, n_bars=n_bars,
                                  temperature=temperature, top_k=top_k, hold=hold, max_run=max_run)
    return positions, frames


# (model, params, prompt, prompt_clock, first_prev, key) -> the carry units_chunk continues from
units_start = jax.jit(_start, static_argnames=("model",))
# (model, params, carry, clock_pos (n, B), clock_in, song, codes, offsets, beats, *, n_frames, ...)
# -> (carry, positions (B, n), frames (B, n, F)): the next n_frames of rollout_units
units_chunk = jax.jit(_chunk, static_argnames=_STATIC)
