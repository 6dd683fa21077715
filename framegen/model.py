"""The frame model: a stack of GRU layers (framegen.gru) and a linear head, as a Flax Linen module.

``FrameGRU`` reads frames (B, T, F) and returns one output vector per frame: the predicted next frame (F samples,
``output="mse"``) or logits over a codebook (K, ``output="vq"``). ``__call__`` runs whole sequences (training,
prompt warm-up); ``step`` advances one frame (generation). No training logic lives here.
``precision`` "bf16" runs every matmul on bfloat16 operands with float32 accumulation (parameters, state and
gates stay float32; see framegen.gru); "fp32" is plain float32. With ``tiers`` (SampleRNN's tower) slower GRU stacks
read the frames' log-mel bands span by span and condition the frame GRU's input gates; ``step`` then carries the
whole tower's state (``FrameGRU.initial_state``).
"""

from functools import partial
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from framegen.config import CLOCK_FEATURES, ModelConfig, span_of
from framegen.gru import chunk_size, gru_cell, gru_layer, gru_layer_x, matmul, upsample

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


def fast_bf16(device=None) -> bool:
    """Whether ``device`` (default: JAX's first) multiplies bfloat16 faster than float32: every GPU and TPU; a CPU
    whose flags list ``amx_bf16`` or ``avx512_bf16`` (Linux /proc/cpuinfo; unknown elsewhere: no)."""
    platform = (device or jax.devices()[0]).platform
    if platform != "cpu":
        return True
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        return False
    return bool({"amx_bf16", "avx512_bf16"} & set(flags.split()))


def resolve_precision(precision: str) -> str:
    """"auto" -> "bf16" where the device has fast bfloat16 (``fast_bf16``), else "fp32"; others unchanged."""
    if precision == "auto":
        return "bf16" if fast_bf16() else "fp32"
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}")
    return precision

# Input gates gx (T, B, 3H) float32 above this size are never materialised: the layer runs ``gru_layer_x`` (input
# projection fused into time chunks, recomputed in the backward pass; T=10,000, F=40, B=32 trains in ~1.9 GB
# instead of 7.6). Below it, precomputing gx once is cheaper: it saves the backward's second x @ W_i, which at
# F=4000 is the largest matmul of the step (experiments/bench/gru-kernels-cpu.md).
GX_BYTES = 256 * 2**20
CHUNK = 100  # time steps per chunk of gru_layer_x (the largest divisor of T not above it)


def _layer(cell, x, h0, slow=None, dtype=jnp.float32):
    """One GRU layer over time-major x: (T, B, I) -> hs (T, B, H), by the cheaper path for its size. ``slow``:
    a slower tier's conditioning (o, w, b) added to the input gates (``gru.upsample``); ``dtype``: the matmuls'
    operand precision."""
    t, b = x.shape[:2]
    three_h = cell["w_h"].shape[1]
    chunk = chunk_size(t, CHUNK, 1 if slow is None else slow[1].shape[0])
    if t * b * three_h * 4 > GX_BYTES and chunk >= 10:  # a T with no divisor near CHUNK keeps the plain path
        return gru_layer_x(cell["w_i"], cell["b_i"], cell["w_h"], cell["b_h"], x, h0, chunk=chunk, dtype=dtype,
                           slow=slow)
    gx = matmul(x, cell["w_i"], dtype) + cell["b_i"]  # all T projections at once
    gx = gx if slow is None else gx + upsample(*slow, dtype)
    return gru_layer(cell["w_h"], cell["b_h"], gx, h0, dtype=dtype)


def _head_product(dtype, x, w, *_, **__):
    """nn.Dense's dot_general (x's last axis with w's first) in ``dtype``, accumulated in float32."""
    return matmul(x, w, dtype)


def _stack(cells, x, state, slow=None, dtype=jnp.float32):
    """GRU layers over time-major x (T, B, I), layer 0 conditioned by ``slow`` -> (hs of the top layer (T, B, H),
    the state after the last step (L, B, H))."""
    last = []
    for i, (cell, h0) in enumerate(zip(cells, state)):
        x = _layer(cell, x, h0, slow if i == 0 else None, dtype)
        last.append(x[-1])
    return x, jnp.stack(last)


def _cell_stack(cells, x, state, cond=None, dtype=jnp.float32):
    """One step of GRU layers: x (B, I), state (L, B, H), ``cond`` (B, 3H) added to layer 0's input gates ->
    (top (B, H), new state)."""
    new = []
    for i, (cell, h) in enumerate(zip(cells, state)):
        gx = matmul(x, cell["w_i"], dtype) + cell["b_i"]
        x = gru_cell(cell["w_h"].astype(dtype), cell["b_h"], gx if cond is None or i else gx + cond, h)
        new.append(x)
    return x, jnp.stack(new)


# What tier 1 reads of each frame: its log-mel spectrum in TIER_BANDS bands (F/4 when F is small), fixed, then
# projected. Measured against the raw frames through the same learned projection (VQ, F=400, T=96, one tier of 8,
# 400 steps, best val_ce, flat / frames / log-mel at 128 units): track1 2.309 / 2.293 / 2.273, track5 2.058 / 2.082 /
# 1.920, track8 4.068 / 3.993 (256 units) / 3.958: log-mel beat the flat model on all three songs, and its projection
# does not grow with F. Silence reads 0 (log1p): with a log floor of -9 instead, the constant offset hid a cue from
# the tier on synth.choice_song (no gain over flat; 0.75x flat's loss with log1p). experiments/quality/tiers.md.
TIER_BANDS = 32
MEL_RATE = 16_000  # the bands are laid out as at this rate: the same FFT bins at any other (the model knows no rate)


def mel_bands(frame_size: int) -> np.ndarray:
    """(F/2+1, n) mel filterbank over a frame's rFFT bins, n = min(TIER_BANDS, F // 4)."""
    import librosa

    n = min(TIER_BANDS, frame_size // 4)
    return librosa.filters.mel(sr=MEL_RATE, n_fft=frame_size, n_mels=n).T.astype(np.float32)


def log_mel(frames, mel):
    """frames (..., F) -> (..., n) log-mel energies, 0 for silence and about 1 for a loud band of a normalised song:
    what tiers read."""
    power = jnp.abs(jnp.fft.rfft(frames.astype(jnp.float32), axis=-1)) ** 2 / frames.shape[-1]
    return 0.125 * jnp.log1p((power @ mel) * 1e4)


def _embed(tier, lower, dtype=jnp.float32):
    """A tier's input: each span of R rows of the tier below's input (time-major (S*R, B, D): the frames' log-mel
    bands for tier 1) concatenated and projected: -> (S, B, Hk). Tier k's input is thus a learned summary of the
    R_1*...*R_k frames it spans, built from the summaries of its R_k sub-spans (so its size grows with neither the
    span nor F)."""
    t, b, d = lower.shape
    r = tier["embed_w"].shape[0] // d
    spans = jnp.swapaxes(lower.reshape(t // r, r, b, d), 1, 2).reshape(t // r, b, r * d)
    return matmul(spans, tier["embed_w"], dtype) + tier["embed_b"]


def _with_clock(frames, clock, clock_dim: int):
    """Frames (..., F) with their clock features (..., C) appended: the input layer 0 reads."""
    if not clock_dim:
        return frames
    if clock is None:
        raise ValueError("this model reads a beat clock beside its frames: pass clock=")
    return jnp.concatenate([frames, clock.astype(frames.dtype)], axis=-1)


def _uniform(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class FrameGRU(nn.Module):
    frame_size: int  # F: samples per input frame
    hidden: int = ModelConfig.hidden
    layers: int = ModelConfig.layers
    out_dim: int = 0  # outputs per frame; 0 means F (next-frame samples)
    clock_dim: int = 0  # clock features read beside each frame (framegen.clock.FEATURES), 0: no clock
    tiers: tuple = ()  # ratios R_1..R_K of the slower tiers above the frame GRU (SampleRNN's tower); (): flat
    tier_hidden: int = ModelConfig.tier_hidden  # units per tier GRU layer
    tier_layers: int = ModelConfig.tier_layers
    precision: str = "fp32"  # matmul operands: "fp32", or "bf16" with float32 accumulation

    def setup(self):
        h = self.hidden
        self.cells = self._gru_cells("", [self.frame_size + self.clock_dim] + [h] * (self.layers - 1), h)
        self.head = nn.Dense(self.out_dim or self.frame_size, name="head",
                             dot_general=partial(_head_product, DTYPES[self.precision]))
        # Tier k: an input projection of its span (embed), a GRU stack, and R_k projections of its output onto the
        # input gates of layer 0 of the tier below (up_w/up_b: one per sub-step). Tiers read the frames' log-mel
        # bands (mel: a constant, not a parameter), never the clock.
        ht, below, tower = self.tier_hidden, 3 * h, []
        if self.tiers:
            self.mel = jnp.asarray(mel_bands(self.frame_size))
        lower = self.bands
        for k, r in enumerate(self.tiers, start=1):
            tower.append({
                "embed_w": self.param(f"tier{k}_embed_w", _uniform((1.0 / (r * lower)) ** 0.5), (r * lower, ht)),
                "embed_b": self.param(f"tier{k}_embed_b", nn.initializers.zeros, (ht,)),
                "cells": self._gru_cells(f"tier{k}_", [ht] * self.tier_layers, ht),
                "up_w": self.param(f"tier{k}_up_w", _uniform(1.0 / ht**0.5), (r, ht, below)),
                "up_b": self.param(f"tier{k}_up_b", nn.initializers.zeros, (r, below)),
            })
            lower, below = ht, 3 * ht
        self.tower = tower

    def _gru_cells(self, prefix: str, fan_ins: list, h: int) -> list:
        k_h = 1.0 / h**0.5  # PyTorch's GRU init for the recurrent side
        return [
            {
                # input side scaled by fan-in so a 40,000-sample frame does not saturate the gates
                "w_i": self.param(f"{prefix}w_i_{i}", _uniform((1.0 / fan_in) ** 0.5), (fan_in, 3 * h)),
                "b_i": self.param(f"{prefix}b_i_{i}", _uniform(k_h), (3 * h,)),
                "w_h": self.param(f"{prefix}w_h_{i}", _uniform(k_h), (h, 3 * h)),
                "b_h": self.param(f"{prefix}b_h_{i}", _uniform(k_h), (3 * h,)),
            }
            for i, fan_in in enumerate(fan_ins)
        ]

    def create_params(self):
        """Touches every parameter (``init_params``): setup's, and the head's, which Dense makes on its first call."""
        return self.head(jnp.zeros((1, self.hidden), jnp.float32))

    @property
    def dtype(self):
        return DTYPES[self.precision]

    @property
    def bands(self) -> int:
        """Log-mel bands per frame tier 1 reads."""
        return min(TIER_BANDS, self.frame_size // 4)

    @property
    def span(self) -> int:
        """Frames one step of the slowest tier spans (1: flat)."""
        return span_of(self.tiers)

    def __call__(self, frames, state=None, time_major: bool = False, clock=None):
        """frames: (B, T, F) -> (outputs (B, T, out), state after the last frame); with ``time_major``
        frames (T, B, F) -> outputs (T, B, out), the layout the scan runs in (no transposes). A model with a clock
        reads ``clock`` (same layout, last axis ``clock_dim``) beside the frames.

        The state is (L, B, H) for the flat model, the tower's pytree (``initial_state``) with tiers. A tiered model
        runs whole spans from a fresh state as one scan per tier (training); the frames after the last whole span,
        or all of them when a state is passed (its phase may be anywhere in a span), step by step: both leave
        exactly the state ``step`` would.
        """
        x = frames if time_major else jnp.swapaxes(frames, 0, 1)  # time-major (T, B, F) for the scan
        clk = None if clock is None else (clock if time_major else jnp.swapaxes(clock, 0, 1))
        if not self.tiers:
            top, state = _stack(self.cells, _with_clock(x, clk, self.clock_dim),
                                self.initial_state(x.shape[1]) if state is None else state, dtype=self.dtype)
            out = self.head(top)
        else:
            full = 0 if state is not None else x.shape[0] // self.span * self.span
            tops = []
            if full:
                top, state = self._tower(x[:full], None if clk is None else clk[:full])
                tops.append(top)
            if x.shape[0] > full:
                state = self.initial_state(x.shape[1]) if state is None else state
                state, top = jax.lax.scan(lambda st, xs: self._tower_step(xs[0], st, xs[1])[::-1], state,
                                          (x[full:], None if clk is None else clk[full:]))
                tops.append(top)
            out = self.head(jnp.concatenate(tops, axis=0))
        return (out if time_major else jnp.swapaxes(out, 0, 1)), state

    def step(self, frame, state, clock=None):
        """One frame for every stream: frame (B, F), state -> (output (B, out), new state). The state is (L, B, H)
        for the flat model; with tiers the whole tower's (``initial_state``): every tier steps when its span ends."""
        if not self.tiers:
            top, state = _cell_stack(self.cells, _with_clock(frame, clock, self.clock_dim), state, dtype=self.dtype)
        else:
            top, state = self._tower_step(frame, state, clock)
        return self.head(top), state

    def initial_state(self, batch: int):
        """Zeros: (L, B, H) for the flat model. With tiers a dict: "frame" (L, B, H); "tiers", per tier "h" (L_k, B,
        H_k) its GRU state after its last whole span and "cond" (R_k, B, 3H_below) that state's projection onto the
        tier below's input gates for each sub-step of the current span (without its bias up_b); "buf" (P, B, n) the
        log-mel bands of the slowest tier's current span so far (P = R_1*...*R_K); "pos" () int32 frames read of
        it."""
        frame = jnp.zeros((self.layers, batch, self.hidden), jnp.float32)
        if not self.tiers:
            return frame
        below = [self.hidden] + [self.tier_hidden] * (len(self.tiers) - 1)
        tiers = tuple({"h": jnp.zeros((self.tier_layers, batch, self.tier_hidden), jnp.float32),
                       "cond": jnp.zeros((r, batch, 3 * hb), jnp.float32)} for r, hb in zip(self.tiers, below))
        return {"frame": frame, "tiers": tiers, "buf": jnp.zeros((self.span, batch, self.bands), jnp.float32),
                "pos": jnp.zeros((), jnp.int32)}

    def _tower(self, x, clk):
        """Whole spans from the initial state: x (T, B, F) time-major, T a multiple of the span -> (top (T, B, H),
        state). Tier inputs are summarised bottom-up, then tiers run top-down, each one scan over its own steps,
        its output of span s conditioning the R sub-steps of span s+1 of the tier below (span 0 reads the output of
        the zero state: up_b alone); the frame GRU runs last. So nothing reads a frame after its own position."""
        batch = x.shape[1]
        feats = log_mel(x, self.mel)  # (T, B, n): all tier 1 reads
        inputs, lower = [], feats
        for tier in self.tower:
            lower = _embed(tier, lower, self.dtype)
            inputs.append(lower)  # (T / (R_1...R_k), B, H_k)
        slow, states = None, []
        for tier, u in zip(reversed(self.tower), reversed(inputs)):
            h0 = jnp.zeros((self.tier_layers, batch, self.tier_hidden), jnp.float32)
            o, h = _stack(tier["cells"], u, h0, slow, self.dtype)
            slow = (jnp.concatenate([h0[-1][None], o[:-1]], axis=0), tier["up_w"], tier["up_b"])  # shifted a span
            states.append({"h": h, "cond": upsample(o[-1:], tier["up_w"], None, self.dtype)})
        top, frame_state = _stack(self.cells, _with_clock(x, clk, self.clock_dim),
                                  jnp.zeros((self.layers, batch, self.hidden), jnp.float32), slow, self.dtype)
        # the buffer holds the last span read, as stepping frame by frame leaves it
        state = {"frame": frame_state, "tiers": tuple(reversed(states)), "buf": feats[-self.span :],
                 "pos": jnp.zeros((), jnp.int32)}
        return top, state

    def _tower_step(self, frame, state, clock):
        """One frame through the tower: the frame GRU reads it with tier 1's conditioning of its sub-step; then
        (bottom-up, each with the conditioning its tier above held before this frame) every tier whose span ends
        with this frame steps on the summary of its span. -> (top (B, H), new state)."""
        pos, tiers = state["pos"], state["tiers"]
        first = self.tower[0]
        j = pos % self.tiers[0]
        cond = tiers[0]["cond"][j] + first["up_b"][j]
        top, frame_state = _cell_stack(self.cells, _with_clock(frame, clock, self.clock_dim), state["frame"], cond,
                                       self.dtype)
        buf = jax.lax.dynamic_update_index_in_dim(state["buf"], log_mel(frame, self.mel), pos, 0)
        new, span = [], 1
        for k, (tier, r) in enumerate(zip(self.tower, self.tiers)):
            span *= r
            above = (tiers[k + 1], self.tower[k + 1], self.tiers[k + 1]) if k + 1 < len(self.tiers) else None

            def advance(old, k=k, tier=tier, span=span, above=above):
                lower = jax.lax.dynamic_slice_in_dim(buf, pos + 1 - span, span, 0)  # the span's frames' bands
                for t in self.tower[: k + 1]:
                    lower = _embed(t, lower, self.dtype)  # -> (1, B, H_k)
                cond = None
                if above is not None:  # this step's sub-step within the tier above's span
                    st, up, r_up = above
                    i = ((pos + 1) // span - 1) % r_up
                    cond = st["cond"][i] + up["up_b"][i]
                o, h = _cell_stack(tier["cells"], lower[0], old["h"], cond, self.dtype)
                return {"h": h, "cond": upsample(o[None], tier["up_w"], None, self.dtype)}

            new.append(jax.lax.cond((pos + 1) % span == 0, advance, lambda old: old, tiers[k]))
        state = {"frame": frame_state, "tiers": tuple(new), "buf": buf, "pos": (pos + 1) % self.span}
        return top, state


def build(cfg: ModelConfig, frame_size: int) -> FrameGRU:
    out_dim = cfg.codebook if cfg.output == "vq" else 0
    clock_dim = CLOCK_FEATURES if cfg.clock == "beat" else 0
    return FrameGRU(frame_size=frame_size, hidden=cfg.hidden, layers=cfg.layers, out_dim=out_dim, clock_dim=clock_dim,
                    tiers=tuple(cfg.tiers), tier_hidden=cfg.tier_hidden, tier_layers=cfg.tier_layers,
                    precision=resolve_precision(cfg.precision))


def init_params(model: FrameGRU, key):
    """Parameters for ``model`` (shapes do not depend on T or B): setup's and the head's, without running a
    sequence (a tower's would trace a scan of ``step``)."""
    return model.init(key, method=FrameGRU.create_params)["params"]
