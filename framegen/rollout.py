"""Generation's pure core: a model continues its prompt by feeding each new frame back, inside one ``lax.scan``.

``rollout`` (MSE: the predicted frame itself is fed back) and ``rollout_vq`` (a code is sampled and one of its
frames emitted) are jitted functions of (model, params, prompt frames) -> new frames, O(1) work per frame, each also
split into a start and a chunk that continue the same scan a chunk at a time (``framegen.stream``). Unit selection's
rollout lives with the rest of unit selection (``framegen.units``).
"""

from functools import partial

import jax
import jax.numpy as jnp

from framegen import vq
from framegen.gru import dot, gru_cell
from framegen.model import FrameGRU

ROLLOUT_UNROLL = 8  # scan steps per loop iteration: fewer loop-control ops per frame (measured, bench notes)
# The fewest steps an MSE scan runs (extra frames are dropped): a scan of at most ROLLOUT_UNROLL steps is lowered
# without a loop, and XLA compiles that straight-line code to different float rounding than the loop's body (seen
# on CPU with 2 streams), so a chunk that short would not give the same frames as the whole clip's scan.
MIN_SCAN = 2 * ROLLOUT_UNROLL


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


def _mse_start(model: FrameGRU, params, prompt, prompt_clock=None, clock_first=None):
    """Warm on ``prompt`` (B, S, F): (the first new frame (B, F), the loop's carry). A tiered model's carry is the
    frame to feed, its clock and the tower's state (``_tower_chunk``)."""
    out, state = model.apply({"params": params}, prompt, clock=prompt_clock)
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
def rollout(model: FrameGRU, params, prompt, n_frames: int, unroll: int = ROLLOUT_UNROLL, prompt_clock=None,
            clock_in=None):
    """Continue each stream of ``prompt`` (B, S, F) by ``n_frames`` predicted frames -> (B, n_frames, F).

    The prompt is run through the GRU once to set its state; the output after the prompt's last frame is the first
    new frame, and every new frame is fed back as the next input. The prompt itself is not returned.

    The same function as feeding ``FrameGRU.step``'s output back (tests/test_rollout.py), arranged for speed
    (MSE mode only: the fed-back frame is the head's output itself): the loop carries the top layer's state and
    layer 0's input gates; the head runs once on all frames after the loop; and when F > 3H/4 the head and layer
    0's input projection are folded into one (H, 3H) matrix, W_o W_i0, which is smaller than the two. A tiered
    model is fed back through ``step`` itself (its tiers step inside it when their spans end).
    A model with a beat clock reads ``prompt_clock`` (B, S, C) with the prompt and ``clock_in`` (n_frames, B, C) with
    each generated frame (its gates add ``clock @ W_c``).
    ``rollout_start`` and ``rollout_chunk`` run the same loop a chunk at a time (``framegen.stream``): the first
    frame comes from the start, every chunk's frames after it, bit for bit the same frames (CPU).
    """
    first, carry = _mse_start(model, params, prompt, prompt_clock, None if clock_in is None else clock_in[0])
    steps = max(-(-(n_frames - 1) // MIN_SCAN) * MIN_SCAN, MIN_SCAN)  # whole head blocks (see _mse_chunk)
    clk = None if clock_in is None else jnp.pad(clock_in[1:], ((0, steps - n_frames + 1), (0, 0), (0, 0)))
    _, rest = _mse_chunk(model, params, carry, steps, clk, unroll)
    frames = jnp.concatenate([first[None], rest], axis=0)[:n_frames]  # (n_frames, B, F)
    return jnp.swapaxes(frames, 0, 1)


rollout_start = jax.jit(_mse_start, static_argnames=("model",))
rollout_chunk = jax.jit(_mse_chunk, static_argnames=("model", "n_frames", "unroll"))


def _vq_start(model: FrameGRU, params, prompt, key, prompt_clock=None):
    out, state = model.apply({"params": params}, prompt, clock=prompt_clock)
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
def rollout_vq(model: FrameGRU, params, prompt, n_frames: int, table, key, temperature: float = 1.0, top_k: int = 0,
               prompt_clock=None, clock_in=None):
    """VQ mode: continue each stream of ``prompt`` (B, S, F) by ``n_frames`` frames.

    After the prompt, each step samples a code from the model's logits (``vq.sample_codes``: temperature, top-k),
    emits one of that code's E frames in ``table`` (K, E, F) chosen uniformly, and feeds the emitted frame back.
    One ``lax.scan``; the PRNG key is carried through it, split once per frame.
    Returns frames (B, n, F), codes (B, n) and the row of each code's E frames that was emitted (B, n).
    Clock models read ``prompt_clock`` (B, S, C) and ``clock_in`` (n, B, C) as in ``rollout``.
    ``rollout_vq_start``/``rollout_vq_chunk`` run the same scan a chunk at a time, the key carried between chunks.
    """
    carry = _vq_start(model, params, prompt, key, prompt_clock)
    return _vq_chunk(model, params, carry, table, n_frames, temperature, top_k, clock_in)[1]


rollout_vq_start = jax.jit(_vq_start, static_argnames=("model",))
rollout_vq_chunk = jax.jit(_vq_chunk, static_argnames=("model", "n_frames", "temperature", "top_k"))
