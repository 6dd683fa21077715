"""framegen.units' rollout (_start, _chunk, as of cb0cf84) with a recency bar, for select_tune.py --recent: the
song offsets played at the last RECENT decisions ride in the carry, and a jump candidate within a bar of one of
them loses PENALTY nats, so the output cannot cycle among a few passages. Generated from units.py's source by
select_tune.py's author; only the lines naming `recent` differ."""


import jax
import jax.numpy as jnp

from framegen import clock
from framegen.model import FrameGRU
from framegen.units import _STATIC, _candidates, _frames_at, predictive
import framegen.units as _units

RECENT = 16
PENALTY = 1e4


def context(*args, **kw):  # looked up at trace time, so select_tune.py's patch of framegen.units.context applies
    return _units.context(*args, **kw)


def _start(model: FrameGRU, params, prompt, prompt_clock, first_prev, key):
    out, state = model.apply({"params": params}, prompt, clock=prompt_clock)
    b = prompt.shape[0]
    return (out[:, -1], state, key, first_prev.astype(jnp.int32), jnp.zeros((b,), jnp.int32),
            jnp.full((b, RECENT), -(10**9), jnp.int32))


def _chunk(model: FrameGRU, params, carry, clock_pos, clock_in, bound, song, own, beats, *, n_frames: int,
           stride: int, n_train: int, n_bars: int, temperature: float, hold: float, max_run: int,
           context_weight: float, hazard: float, sigma2: float, vq_mode: bool, uniform: bool):
    f = model.frame_size
    variables = {"params": params}
    log_hold = jnp.log(jnp.maximum(hold, 1e-30))
    n_beats = beats.shape[0]

    bar_len = clock.BAR * jnp.median(jnp.diff(beats))

    def decide(nxt, h, k, prev, run, pos_k, recent):
        cont = prev + f
        cont_ok = (cont + 2 * f <= n_train) & (run < max_run)
        at = clock.BAR * jnp.arange(n_bars, dtype=jnp.float32)[None, :] + jnp.mod(pos_k, clock.BAR)[:, None]
        cands = _candidates(beats, at, stride)  # (B, M): the song at the clock's bar phase in every bar
        ok = (cands >= 0) & (cands + 2 * f <= n_train) & (jnp.abs(cands - cont[:, None]) >= f)
        both = jnp.concatenate([cont[:, None], cands], axis=-1)  # (B, 1 + M)
        k, k_pick = jax.random.split(k)
        if uniform:
            scores = jnp.zeros(both.shape, jnp.float32)
        else:  # where in the song would the model predict what it predicts now
            near = jnp.concatenate([clock.beat_position(beats, cont.astype(jnp.float32))[:, None], at], axis=-1)
            beat_of = jnp.clip(jnp.round(near).astype(jnp.int32), 0, n_beats - 1)
            scores = -context_weight * context(predictive(nxt, vq_mode), own, beat_of, vq_mode=vq_mode,
                                                sigma2=sigma2)
        near = jnp.any(jnp.abs(cands[:, :, None] - recent[:, None, :]) < bar_len, axis=-1)  # (B, M)
        scores = scores.at[:, 1:].add(jnp.where(near, -PENALTY, 0.0))
        lead = log_hold - hazard * run.astype(jnp.float32) / max(max_run, 1)
        scores = scores.at[:, 0].add(lead)
        scores = jnp.where(jnp.concatenate([cont_ok[:, None], ok], axis=-1), scores, -jnp.inf)
        if temperature == 0:
            pick = jnp.argmax(scores, axis=-1)
        else:
            pick = jax.random.categorical(k_pick, scores / temperature, axis=-1)
        chosen = jnp.take_along_axis(both, pick[:, None], axis=-1)[:, 0]
        return chosen, pick != 0, k

    def step(carry, xs):
        nxt, h, k, prev, run, recent = carry
        pos_k, clk, bnd = xs
        cont = prev + f
        need = bnd | (cont + f > n_train)
        chosen, jumped, k = jax.lax.cond(jnp.any(need), lambda: decide(nxt, h, k, prev, run, pos_k, recent),
                                         lambda: (cont, jnp.zeros(cont.shape, bool), k))
        jumped = need & jumped
        pos = jnp.where(need, chosen, cont)
        run = jnp.where(jumped, 0, run + 1)
        pushed = jnp.concatenate([recent[:, 1:], pos[:, None]], axis=-1)
        recent = jnp.where(need[:, None], pushed, recent)
        frame = _frames_at(song, pos, f)
        nxt, h = model.apply(variables, frame, h, clk, method=FrameGRU.step)
        return (nxt, h, k, pos, run, recent), (pos, frame)

    carry, (positions, frames) = jax.lax.scan(step, carry, (clock_pos, clock_in, bound), length=n_frames)
    return carry, jnp.swapaxes(positions, 0, 1), jnp.swapaxes(frames, 0, 1)




units_start = jax.jit(_start, static_argnames=("model",))
units_chunk = jax.jit(_chunk, static_argnames=_STATIC)
