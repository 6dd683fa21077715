"""The slower tiers above the frame GRU (SampleRNN's tower), as pure functions of their parameters.

Tier k steps once per R_1*...*R_k frames on a summary of the frames it spans (their log-mel bands, fixed, then
learned projections: ``_embed``) and conditions the input gates of layer 0 of the tier below, one learned
projection per sub-step of its span; tier 1 conditions the frame GRU. ``FrameGRU`` owns the parameters (``init``)
and runs the frame GRU with the conditioning these give: ``run_spans`` for whole spans from a fresh state
(training, prompt warm-up), ``frame_cond`` and ``advance`` one frame at a time (generation). Tiers never read the
clock.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from framegen.config import span_of
from framegen.gru import init_cells, matmul, stack, stack_step, uniform, upsample

# What tier 1 reads of each frame: its log-mel spectrum in TIER_BANDS bands (F/4 when F is small), fixed, then
# projected, silence reading 0: the one input that beat the flat model on all three songs measured, and its projection
# does not grow with F (experiments/quality/tiers.md).
TIER_BANDS = 32
MEL_RATE = 16_000  # the bands are laid out as at this rate: the same FFT bins at any other (the model knows no rate)


def bands(frame_size: int) -> int:
    """Log-mel bands per frame tier 1 reads."""
    return min(TIER_BANDS, frame_size // 4)


def mel_bands(frame_size: int) -> np.ndarray:
    """(F/2+1, n) mel filterbank over a frame's rFFT bins, n = ``bands(F)``."""
    import librosa

    return librosa.filters.mel(sr=MEL_RATE, n_fft=frame_size, n_mels=bands(frame_size)).T.astype(np.float32)


def log_mel(frames, mel):
    """frames (..., F) -> (..., n) log-mel energies, 0 for silence and about 1 for a loud band of a normalised song:
    what tiers read."""
    power = jnp.abs(jnp.fft.rfft(frames.astype(jnp.float32), axis=-1)) ** 2 / frames.shape[-1]
    return 0.125 * jnp.log1p((power @ mel) * 1e4)


def init(param, tiers: tuple, n_bands: int, hidden: int, tier_hidden: int, tier_layers: int) -> list:
    """Every tier's parameters, made with ``param(name, init, shape)`` (a Flax module's ``self.param``): tier k's
    input projection of its span (embed_w/embed_b), its GRU stack, and R_k projections of its output onto the input
    gates of layer 0 of the tier below (up_w/up_b: one per sub-step; the frame GRU of ``hidden`` units below tier
    1)."""
    ht, below, lower, tower = tier_hidden, 3 * hidden, n_bands, []
    for k, r in enumerate(tiers, start=1):
        tower.append({
            "embed_w": param(f"tier{k}_embed_w", uniform((1.0 / (r * lower)) ** 0.5), (r * lower, ht)),
            "embed_b": param(f"tier{k}_embed_b", jax.nn.initializers.zeros, (ht,)),
            "cells": init_cells(param, f"tier{k}_", [ht] * tier_layers, ht),
            "up_w": param(f"tier{k}_up_w", uniform(1.0 / ht**0.5), (r, ht, below)),
            "up_b": param(f"tier{k}_up_b", jax.nn.initializers.zeros, (r, below)),
        })
        lower, below = ht, 3 * ht
    return tower


def initial_state(tiers: tuple, batch: int, hidden: int, tier_hidden: int, tier_layers: int, n_bands: int) -> dict:
    """Zeros: "tiers", per tier "h" (L_k, B, H_k) its GRU state after its last whole span and "cond" (R_k, B,
    3H_below) that state's projection onto the tier below's input gates for each sub-step of the current span
    (without its bias up_b); "buf" (P, B, n) the log-mel bands of the slowest tier's current span so far (P =
    R_1*...*R_K); "pos" () int32 frames read of it."""
    below = [hidden] + [tier_hidden] * (len(tiers) - 1)
    state = tuple({"h": jnp.zeros((tier_layers, batch, tier_hidden), jnp.float32),
                   "cond": jnp.zeros((r, batch, 3 * hb), jnp.float32)} for r, hb in zip(tiers, below))
    return {"tiers": state, "buf": jnp.zeros((span_of(tiers), batch, n_bands), jnp.float32),
            "pos": jnp.zeros((), jnp.int32)}


def _embed(tier, lower, dtype=jnp.float32):
    """A tier's input: each span of R rows of the tier below's input (time-major (S*R, B, D): the frames' log-mel
    bands for tier 1) concatenated and projected: -> (S, B, Hk). Tier k's input is thus a learned summary of the
    R_1*...*R_k frames it spans, built from the summaries of its R_k sub-spans (so its size grows with neither the
    span nor F)."""
    t, b, d = lower.shape
    r = tier["embed_w"].shape[0] // d
    spans = jnp.swapaxes(lower.reshape(t // r, r, b, d), 1, 2).reshape(t // r, b, r * d)
    return matmul(spans, tier["embed_w"], dtype) + tier["embed_b"]


def run_spans(tower: list, tiers: tuple, feats, tier_hidden: int, tier_layers: int, dtype=jnp.float32):
    """Whole spans from the initial state: feats (T, B, n) the log-mel bands of T frames, T a multiple of the span
    -> (the frame GRU's conditioning ``slow`` = (o, up_w, up_b) for ``gru.stack``, the tower's state after them).

    Tier inputs are summarised bottom-up, then tiers run top-down, each one scan over its own steps, its output of
    span s conditioning the R sub-steps of span s+1 of the tier below (span 0 reads the output of the zero state:
    up_b alone); the frame GRU runs after them. So nothing reads a frame after its own position."""
    batch = feats.shape[1]
    inputs, lower = [], feats
    for tier in tower:
        lower = _embed(tier, lower, dtype)
        inputs.append(lower)  # (T / (R_1...R_k), B, H_k)
    slow, states = None, []
    for tier, u in zip(reversed(tower), reversed(inputs)):
        h0 = jnp.zeros((tier_layers, batch, tier_hidden), jnp.float32)
        o, h = stack(tier["cells"], u, h0, slow, dtype)
        slow = (jnp.concatenate([h0[-1][None], o[:-1]], axis=0), tier["up_w"], tier["up_b"])  # shifted a span
        states.append({"h": h, "cond": upsample(o[-1:], tier["up_w"], None, dtype)})
    # the buffer holds the last span read, as stepping frame by frame leaves it
    return slow, {"tiers": tuple(reversed(states)), "buf": feats[-span_of(tiers) :], "pos": jnp.zeros((), jnp.int32)}


def frame_cond(tower: list, tiers: tuple, state: dict):
    """Tier 1's conditioning of the frame GRU's layer 0 for the next frame, the sub-step of its span it falls in:
    (B, 3H)."""
    j = state["pos"] % tiers[0]
    return state["tiers"][0]["cond"][j] + tower[0]["up_b"][j]


def advance(tower: list, tiers: tuple, state: dict, frame_bands, dtype=jnp.float32) -> dict:
    """The tower's state after one more frame, whose log-mel bands are ``frame_bands`` (B, n): bottom-up, each with
    the conditioning its tier above held before this frame, every tier whose span ends with it steps on the summary
    of its span (``_step_tier``)."""
    pos, held = state["pos"], state["tiers"]
    buf = jax.lax.dynamic_update_index_in_dim(state["buf"], frame_bands, pos, 0)
    new, span = [], 1
    for k, r in enumerate(tiers):
        span *= r
        above = (held[k + 1], tower[k + 1], tiers[k + 1]) if k + 1 < len(tiers) else None
        step = partial(_step_tier, tower, k, span, above, buf, pos, dtype)
        new.append(jax.lax.cond((pos + 1) % span == 0, step, lambda old: old, held[k]))
    return {"tiers": tuple(new), "buf": buf, "pos": (pos + 1) % span}


def _step_tier(tower: list, k: int, span: int, above, buf, pos, dtype, old: dict) -> dict:
    """Tier k's step at the end of its span: it reads the summary of the span's frames (their bands in ``buf``) with
    the conditioning of the sub-step of the tier ``above``'s span it falls in -> its new "h" and "cond"."""
    lower = jax.lax.dynamic_slice_in_dim(buf, pos + 1 - span, span, 0)  # the span's frames' bands
    for t in tower[: k + 1]:
        lower = _embed(t, lower, dtype)  # -> (1, B, H_k)
    cond = None
    if above is not None:  # this step's sub-step within the tier above's span
        held, up, r_up = above
        i = ((pos + 1) // span - 1) % r_up
        cond = held["cond"][i] + up["up_b"][i]
    o, h = stack_step(tower[k]["cells"], lower[0], old["h"], cond, dtype)
    return {"h": h, "cond": upsample(o[None], tower[k]["up_w"], None, dtype)}
