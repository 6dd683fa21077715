"""Unit selection: which stretch of the song's training part plays next, chosen by the model.

Generation plays real frames of the song. At every beat of the output's clock (or when the stretch being played
runs out) the candidates are the continuation of what is playing and the song's frames at the clock's bar phase in
every bar. Each is scored by the model's **context** score: how differently the model predicts the next frame after
what was played and after the candidate's own past in the song (the KL divergence of its two predictions; the
prediction at every beat of the song from its own past is computed once, ``own_at``). A small divergence means the
model hears the splice as seamless: what it expects next is what the candidate's own past led to. The continuation
competes with the jumps, its lead shrinking as the stretch grows (``hazard``), and a stretch never plays longer than
``max_run`` frames, so the output stays new music rather than the song replayed. What was measured against what
(teacher-forced lookahead likelihoods, the model's imagined continuation): experiments/quality/select.md.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from framegen import clock, runs, shape
from framegen.config import (CONTEXT, CONTEXT_MSE, FAR_BEATS, FAR_CAP, FAR_WEIGHT, HAZARD, LEAD_CAP_MSE, NEAR_BEATS,
                             NEAR_WEIGHT, RECENT_JUMPS, STEADY_BEAT_S, RunConfig)
from framegen.data import split_song
from framegen.model import FrameGRU

GRID_PER_FRAME = 4  # own-past predictions and jump targets on a grid of F/4 samples (at most F/8 from a beat)


@dataclass(frozen=True)
class Units:
    """What unit selection needs, host side.

    song: (N,) the normalised song; n_train: its training part's length (every frame played lies inside it).
    beats: (Nb,) the song's beat positions (samples): the tracked grid of a clock run, a steady one otherwise.
    hold: the continuation's weight against a jump (its log is added to its score; 1: no preference).
    max_run: frames a stretch of the song may play before a jump is forced (0: jump at every beat).
    context: the weight of the context score (nats of the continuation's lead per nat of KL); hazard: nats the
    continuation's lead loses over a whole run. vq: whether the model's outputs are code logits (else frames);
    sigma2: MSE runs: the validation residual variance per sample (the Gaussian the MSE objective assumes).
    stride: the grid of jump targets; score: "model", or "uniform" (all candidates equal: the baseline).
    near, far: beats after a candidate where the model's expectations should match the continuation's (weighted
    ``near_weight``) and should differ from them (rewarded ``far_weight`` per nat up to ``far_cap``): ``ahead``
    (VQ runs; MSE runs score the splice alone). lead_cap: nats the continuation may score above the best jump.
    """

    song: np.ndarray
    n_train: int
    beats: np.ndarray
    hold: float
    max_run: int
    context: float = CONTEXT
    hazard: float = HAZARD
    vq: bool = True
    sigma2: float = 1.0
    stride: int = 1
    score: str = "model"
    near: tuple = NEAR_BEATS
    far: tuple = FAR_BEATS
    near_weight: float = NEAR_WEIGHT
    far_weight: float = FAR_WEIGHT
    far_cap: float = FAR_CAP
    lead_cap: float = float("inf")

    def ahead_at(self) -> np.ndarray:
        """(Nb, 1 + L) song offsets where the model's own-past predictions are read: each beat, then ``near`` and
        ``far`` beats after it (at the song's median beat period)."""
        period = float(np.median(np.diff(self.beats)))
        return self.beats[:, None] + period * np.asarray((0.0, *self.near, *self.far))[None, :]


def predictive(out, vq_mode: bool, sigma2: float = 1.0):
    """What model outputs (..., D) say of the next frame: VQ the log-probabilities of its codes; MSE the power
    spectrum of the Gaussian around the predicted frame (..., D // 2 + 1): |rfft|^2 / D plus the residual variance
    ``sigma2`` (white), phase-insensitive: the raw frames' distance ranks candidates at chance
    (experiments/quality/select.md)."""
    out = jnp.asarray(out, jnp.float32)
    if vq_mode:
        return jax.nn.log_softmax(out, axis=-1)
    return jnp.square(jnp.abs(jnp.fft.rfft(out, axis=-1))) / out.shape[-1] + sigma2


def context(played, own, cand_beats, *, vq_mode: bool, sigma2: float):
    """How differently the model predicts the next frame after what was played (``played`` (B, D), a
    ``predictive``) and after each candidate's own past in the song (``own`` (Nb, D) at the song's beats, indexed
    by ``cand_beats`` (B, M)) -> (B, M) >= 0: ``divergence`` of the two."""
    return divergence(own[cand_beats], played[:, None, :], vq_mode=vq_mode, sigma2=sigma2)


def divergence(own, played, *, vq_mode: bool, sigma2: float = 1.0):
    """KL(own || played) of two ``predictive``s (..., D) -> (...): of the code distributions (VQ), of the zero-mean
    Gaussians with those power spectra (MSE: half the Itakura-Saito divergence, 0.5 sum(r - 1 - log r), r the
    spectra's ratio; a prediction far below the residual, an untrained model's, scores ~0)."""
    if vq_mode:
        return jnp.sum(jnp.exp(own) * (own - played), axis=-1)
    r = own / played
    return 0.5 * jnp.sum(r - 1.0 - jnp.log(r), axis=-1)


def _frames_at(song, pos, frame_size: int):
    """Song frames at sample offsets ``pos`` (...,) -> (..., F)."""
    flat = pos.reshape(-1)
    got = jax.vmap(lambda s: jax.lax.dynamic_slice(song, (s,), (frame_size,)))(flat)
    return got.reshape(*pos.shape, frame_size)


@partial(jax.jit, static_argnames=("model",))
def _own_chunk(model: FrameGRU, params, state, frames, clk):
    return model.apply({"params": params}, frames, state, clock=clk)


def own_at(model: FrameGRU, params, song_norm: np.ndarray, n_train: int, at: np.ndarray, stride: int, *,
           beats: np.ndarray | None = None, chunk: int = 1024) -> np.ndarray:
    """(N, D) the model's output predicting the frame at each song offset ``at`` (N,) (rounded to the grid of
    ``stride`` samples) from the song's own past: the model teacher-forced along the training part, one pass per
    phase of the grid, a chunk of frames at a time. ``beats``: a clock run's beat grid (the clock each input reads).
    A position without a frame before it gets a zero output."""
    f = model.frame_size
    phases = np.arange(0, f, stride)
    n = (n_train - phases[-1]) // f  # frames per phase, the same for every phase
    g = np.clip(np.round(np.asarray(at) / stride).astype(np.int64), 0, None) * stride
    phase, k = (g % f) // stride, g // f - 1  # the output after input frame k of that phase predicts g
    ok = (k >= 0) & (k < n - 1)
    out = np.zeros((len(g), model.out_dim or f), np.float32)
    song = np.asarray(song_norm, np.float32)
    state = None
    span = max(model.span, 1)
    chunk = max(chunk // span, 1) * span
    for k0 in range(0, n - 1, chunk):
        starts = phases[:, None] + (k0 + np.arange(chunk))[None, :] * f  # (P, chunk), the last chunk padded
        starts = np.minimum(starts, len(song) - 2 * f)
        frames = song[starts[..., None] + np.arange(f)]
        clk = None
        if beats is not None:  # input k reads the beat phase where its target starts
            clk = clock.features(clock.beat_position(beats, (starts + f).astype(np.float64)))
        y, state = _own_chunk(model, params, state, jnp.asarray(frames), clk)
        hit = ok & (k >= k0) & (k < k0 + chunk)
        out[hit] = np.asarray(y)[phase[hit], k[hit] - k0]
    return out


def bars_in(beats: np.ndarray, n_train: int, frame_size: int) -> int:
    """Whole bars of the beat grid whose frames all lie inside the training part."""
    last = np.searchsorted(beats, n_train - 2 * frame_size) - 1  # last beat with a frame after it in training
    return max(int(last) // clock.BAR, 1)


def boundaries(clock_pos: np.ndarray, beats_per_frame: np.ndarray) -> np.ndarray:
    """(n, S) bool: the frames whose start is the frame border nearest a beat of the output's clock, where a jump
    hides best (``clock_pos`` (n, S) beat positions of the frames' starts; ``beats_per_frame`` (S,))."""
    idx = np.floor(clock_pos + 0.5 * beats_per_frame[None, :])
    before = np.floor(clock_pos - 0.5 * beats_per_frame[None, :])
    return idx != before


# ------------------------------------------------------------------------------------------------- the pure core


def _candidates(beats, at, stride: int):
    """(B, M) song offsets of the song's beat positions ``at`` (B, M) (the clock's bar phase in every bar), on the
    grid of ``stride`` samples: where the model's own-past predictions were computed (its code predictions move
    with a few ms of phase: measured in experiments/quality/select.md)."""
    offsets = jnp.interp(at, jnp.arange(beats.shape[0], dtype=jnp.float32), beats)
    return (jnp.round(offsets / stride) * stride).astype(jnp.int32)


def _start(model: FrameGRU, params, prompt, prompt_clock, first_prev, key):
    out, state = model.apply({"params": params}, prompt, clock=prompt_clock)
    b = prompt.shape[0]
    none = jnp.full((b,), shape.NONE, jnp.int32)
    recent = jnp.full((b, RECENT_JUMPS), -(2**30), jnp.int32)  # where the last jumps landed (none yet: far away)
    # (prediction, GRU state, key, previous song offset, run length, last frame held, planned entry, first offset,
    # recent landings)
    return out[:, -1], state, key, first_prev.astype(jnp.int32), jnp.zeros((b,), jnp.int32), none, none, none, recent


def _unshaped(clock_pos, beats):
    """The plan rows and constants of a generation without waypoints (``framegen.shape.empty``)."""
    n, b = clock_pos.shape
    p = shape.empty(n, b, beats.shape[0])
    return tuple(jnp.asarray(x) for x in p.rows(0, n)), (jnp.asarray(p.entries), jnp.asarray(p.entry_clock),
                                                          jnp.asarray(p.sims))


def _chunk(model: FrameGRU, params, carry, clock_pos, clock_in, bound, song, own, beats, plan_rows=None,
           plan_consts=None, *, n_frames: int, stride: int, n_train: int, n_bars: int, temperature: float, hold: float,
           max_run: int, context_weight: float, hazard: float, sigma2: float, vq_mode: bool, uniform: bool,
           n_near: int = 0, near_weight: float = 0.0, far_weight: float = 0.0, far_cap: float = 0.0,
           beat_samples: int = 0, lead_cap: float = float("inf")):
    f = model.frame_size
    variables = {"params": params}
    log_hold = jnp.log(jnp.maximum(hold, 1e-30))
    n_beats = beats.shape[0]
    if plan_rows is None:
        plan_rows, plan_consts = _unshaped(clock_pos, beats)
    entries, entry_clock, sims = plan_consts
    if own.ndim == 2:  # the predictions at the beats only: no look ahead
        own = own[:, None, :]
    now, ahead = own[:, 0], own[:, 1:]  # (Nb, D) at each beat, (Nb, L, D) near and far after it

    def onward(b_cand, b_cont):
        """What the model expects after candidates at beats ``b_cand`` (B, M) against after the continuation at
        ``b_cont`` (B,): -NEAR_WEIGHT x the KL through the next beat + FAR_WEIGHT x the KL a bar or two on (capped),
        (B, M) nats per nat of context."""
        if ahead.shape[1] == 0:
            return jnp.zeros(b_cand.shape, jnp.float32)
        kl = divergence(ahead[b_cand], ahead[b_cont][:, None], vq_mode=vq_mode, sigma2=sigma2)  # (B, M, L)
        score = -near_weight * jnp.mean(kl[..., :n_near], axis=-1) if n_near else 0.0
        if kl.shape[-1] > n_near:
            score = score + far_weight * jnp.minimum(jnp.mean(kl[..., n_near:], axis=-1), far_cap)
        return score

    def beat_index(offsets):
        return jnp.clip(jnp.round(clock.beat_position(beats, offsets.astype(jnp.float32))).astype(jnp.int32), 0,
                        n_beats - 1)

    def pick_from(scores, k):
        if temperature == 0:
            return jnp.argmax(scores, axis=-1)
        return jax.random.categorical(k, scores / temperature, axis=-1)

    def decide(nxt, k, prev, run, pos_k, pull, target, recent):
        """A jump or the continuation, at a beat: (song offset to play, whether it is a jump)."""
        cont = prev + f
        cont_ok = (cont + 2 * f <= n_train) & (run < max_run)
        at = clock.BAR * jnp.arange(n_bars, dtype=jnp.float32)[None, :] + jnp.mod(pos_k, clock.BAR)[:, None]
        cands = _candidates(beats, at, stride)  # (B, M): the song at the clock's bar phase in every bar
        ok = (cands >= 0) & (cands + 2 * f <= n_train) & (jnp.abs(cands - cont[:, None]) >= f)
        ok &= jnp.all(jnp.abs(cands[:, :, None] - recent[:, None, :]) >= beat_samples, axis=-1)  # not back again
        both = jnp.concatenate([cont[:, None], cands], axis=-1)  # (B, 1 + M)
        k, k_pick = jax.random.split(k)
        near = jnp.concatenate([clock.beat_position(beats, cont.astype(jnp.float32))[:, None], at], axis=-1)
        beat_of = jnp.clip(jnp.round(near).astype(jnp.int32), 0, n_beats - 1)
        if uniform:
            scores = jnp.zeros(both.shape, jnp.float32)
        else:  # where in the song would the model predict what it predicts now, and what follows there
            scores = -context_weight * (context(predictive(nxt, vq_mode, sigma2), now, beat_of, vq_mode=vq_mode,
                                                 sigma2=sigma2) - onward(beat_of, beat_of[:, 0]))
            if lead_cap < float("inf"):  # the continuation at most lead_cap above the best jump allowed
                best = jnp.max(jnp.where(ok, scores[:, 1:], -jnp.inf), axis=-1)
                scores = scores.at[:, 0].set(jnp.where(jnp.isfinite(best), jnp.minimum(scores[:, 0], best + lead_cap),
                                                       scores[:, 0]))
        scores = scores + pull[:, None] * sims[target[:, None], beat_of]  # toward a passage to reach
        lead = log_hold - hazard * run.astype(jnp.float32) / max(max_run, 1)
        scores = scores.at[:, 0].add(lead)
        scores = jnp.where(jnp.concatenate([cont_ok[:, None], ok], axis=-1), scores, -jnp.inf)
        pick = pick_from(scores, k_pick)
        chosen = jnp.take_along_axis(both, pick[:, None], axis=-1)[:, 0]
        return chosen, pick != 0, k

    def plan(nxt, k, prev, idx, goal, rem, wend):
        """Which beat of a waypoint's window the stretch into it starts at -> its frame index (``idx``: now). Each
        entry is scored as a jump from the continuation of what plays (assumed played on until then: the model's
        own-past prediction there), its beat phase kept (``shape.PHASE``, ``shape.BAR_MISS``)."""
        later = entries - idx[:, None]  # (B, E) frames from now
        e = goal[:, None] - (rem[:, None] - later * f)  # where each entry's stretch starts in the song
        c = prev[:, None] + (later + 1) * f  # what would play there instead
        feasible = (entries >= idx[:, None]) & (entries <= wend[:, None]) & (e >= 0)
        feasible &= (later == 0) | (c + 2 * f <= n_train)
        d = clock.beat_position(beats, e.astype(jnp.float32)) - entry_clock
        off_beat = jnp.abs(d - jnp.round(d))
        off_bar = jnp.abs(jnp.mod(d + clock.BAR / 2, clock.BAR) - clock.BAR / 2)
        scores = -shape.PHASE * jnp.square(off_beat) - shape.BAR_MISS * (off_bar >= 0.5)
        if not uniform:
            b_c = beat_index(c)
            played = jnp.where((later == 0)[..., None], predictive(nxt, vq_mode, sigma2)[:, None, :], now[b_c])
            scores -= context_weight * divergence(now[beat_index(e)], played, vq_mode=vq_mode, sigma2=sigma2)
            if n_near:  # the entry's next beat as the continuation's, as for any jump (not its novelty: it is asked)
                near = divergence(ahead[beat_index(e)][..., :n_near, :], ahead[b_c][..., :n_near, :],
                                  vq_mode=vq_mode, sigma2=sigma2)
                scores -= context_weight * near_weight * jnp.mean(near, axis=-1)
        scores = jnp.where(feasible, scores, -jnp.inf)
        k, k_pick = jax.random.split(k)
        when = jnp.take_along_axis(entries, pick_from(scores, k_pick)[:, None], axis=-1)[:, 0]
        return jnp.where(jnp.any(feasible, axis=-1), when, idx), k

    def step(carry, xs):
        nxt, h, k, prev, run, held_to, enter_at, first, recent = carry
        pos_k, clk, bnd, idx, goal, rem, window, wend, hold_to, pull, target = xs
        cont = prev + f
        goal = jnp.where(goal == shape.LOOP, first, goal)  # a loop closes on its own first frame
        free = (idx > held_to) & (enter_at < 0)  # neither a stretch into a waypoint nor one planned
        planning = free & window
        need = free & ~window & (bnd | (cont + f > n_train))

        def both(k):
            chosen, jumped, k = decide(nxt, k, prev, run, pos_k, pull, target, recent)
            when, k = plan(nxt, k, prev, idx, goal, rem, wend)
            return chosen, jumped, when, k

        chosen, jumped, when, k = jax.lax.cond(
            jnp.any(need | planning), both, lambda k: (cont, jnp.zeros(cont.shape, bool), idx, k), k)
        enter = (idx == enter_at) | (planning & (when == idx))
        jumped = need & jumped
        pos = jnp.where(enter, jnp.maximum(goal - rem, 0), jnp.where(need, chosen, cont))
        run = jnp.where(jumped | enter, 0, run + 1)
        held_to = jnp.where(enter, hold_to, held_to)
        enter_at = jnp.where(planning & (when > idx), when, jnp.where(idx == enter_at, shape.NONE, enter_at))
        first = jnp.where(idx == 0, pos, first)
        recent = jnp.where(jumped[:, None], jnp.concatenate([pos[:, None], recent[:, :-1]], axis=-1), recent)
        frame = _frames_at(song, pos, f)
        nxt, h = model.apply(variables, frame, h, clk, method=FrameGRU.step)
        return (nxt, h, k, pos, run, held_to, enter_at, first, recent), (pos, frame)

    carry, (positions, frames) = jax.lax.scan(step, carry, (clock_pos, clock_in, bound, *plan_rows), length=n_frames)
    return carry, jnp.swapaxes(positions, 0, 1), jnp.swapaxes(frames, 0, 1)


_STATIC = ("model", "n_frames", "stride", "n_train", "n_bars", "temperature", "hold", "max_run", "context_weight",
           "hazard", "sigma2", "vq_mode", "uniform", "n_near", "near_weight", "far_weight", "far_cap", "beat_samples",
           "lead_cap")


@partial(jax.jit, static_argnames=_STATIC)
def rollout_units(model: FrameGRU, params, prompt, prompt_clock, first_prev, clock_pos, clock_in, bound, song, own,
                  beats, key, plan_rows=None, plan_consts=None, **static):
    """Continue each stream of ``prompt`` (B, S, F) by ``n_frames`` real song frames chosen by unit selection.

    prompt_clock (B, S, C) / clock_in (n, B, C): clock features of the prompt's and the generated frames' inputs
    (None without a clock); clock_pos (n, B): the output's beat position at each generated frame's start, bound
    (n, B) the frames where a beat starts (``boundaries``). first_prev (B,): song offset of the prompt's last frame
    (its continuation lies in the held-out tail, so the first frame is always a jump). song (N,): the normalised
    song (zero-padded by a frame where a stretch plays to its end). own (Nb, D) or (Nb, 1 + L, D): the
    ``predictive`` of the model's output at each of the song's ``beats`` (Nb,) from its own past (``own_at``), and
    at ``n_near`` near and then far places after each (``Units.ahead_at``). ``plan_rows`` (the per-frame
    arrays of ``shape.Plan.rows``, each (n, B)) and ``plan_consts`` (entries, entry_clock, sims): waypoints to
    reach (``framegen.shape``); None: none.
    Returns (positions (B, n) int32 song offsets of the emitted frames, frames (B, n, F)).
    ``units_start`` and ``units_chunk`` run the same scan a chunk at a time (streamed generation), carrying the
    state, key, previous frame, run length and plan between chunks.
    """
    carry = _start(model, params, prompt, prompt_clock, first_prev, key)
    _, positions, frames = _chunk(model, params, carry, clock_pos, clock_in, bound, song, own, beats, plan_rows,
                                  plan_consts, **static)
    return positions, frames


# (model, params, prompt, prompt_clock, first_prev, key) -> the carry units_chunk continues from
units_start = jax.jit(_start, static_argnames=("model",))
# (model, params, carry, clock_pos, clock_in, bound, song, own, beats, plan_rows, plan_consts, **static)
# -> (carry, positions (B, n), frames (B, n, F)): the next n_frames of rollout_units
units_chunk = jax.jit(_chunk, static_argnames=_STATIC)


def units_for(run_dir: Path, cfg: RunConfig, song_norm: np.ndarray, grid: clock.BeatGrid | None) -> Units | None:
    """The ``Units`` of a run that plays real song frames chosen by the model (``select`` "model", or "uniform"
    scores); None for ``select`` "off" and for VQ runs emitting centroids. Jumps land on the beats of the run's
    ``grid``, or of a steady grid (``STEADY_BEAT_S``) for a run without a clock."""
    select = cfg.train.select
    if select == "off" or (cfg.model.output == "vq" and cfg.model.vq_emit != "exemplar"):
        return None
    rate, f = cfg.data.sample_rate, cfg.data.frame_size
    beats = grid.beats if grid is not None else clock.steady(STEADY_BEAT_S * rate, len(song_norm), rate).beats
    sigma2 = 1.0
    if cfg.model.output == "mse":  # the Gaussian an MSE model assumes: its validation residual variance per sample
        mses = [r["val_mse"] for r in runs.read_metrics(run_dir) if np.isfinite(r.get("val_mse", np.nan))]
        sigma2 = float(min(mses)) if mses else 1.0
    vq_mode = cfg.model.output == "vq"
    mse = {} if vq_mode else dict(context=CONTEXT_MSE, lead_cap=LEAD_CAP_MSE, near=(), far=())
    return Units(song=np.asarray(song_norm, np.float32), n_train=split_song(len(song_norm), cfg.data).n_train,
                 beats=np.asarray(beats, np.float64), hold=cfg.train.hold,
                 max_run=int(round(cfg.train.max_run_s * rate / f)), hazard=HAZARD, vq=vq_mode, sigma2=sigma2,
                 stride=max(1, f // GRID_PER_FRAME), score=select, **{"context": CONTEXT, **mse})
