"""The frame model: a stack of GRU layers (framegen.gru) and a linear head, as a Flax Linen module.

``FrameGRU`` reads frames (B, T, F) and returns one output vector per frame: the predicted next frame (F samples,
``output="mse"``) or logits over a codebook (K, ``output="vq"``). ``__call__`` runs whole sequences (training,
prompt warm-up); ``step`` advances one frame (generation). No training logic lives here.
``precision`` "bf16" runs every matmul on bfloat16 operands with float32 accumulation (parameters, state and
gates stay float32; see framegen.gru); "fp32" is plain float32. With ``tiers`` (SampleRNN's tower, framegen.tower)
slower GRU stacks read the frames' log-mel bands span by span and condition the frame GRU's input gates; ``step``
then carries the whole tower's state (``FrameGRU.initial_state``).
"""

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from framegen import tower
from framegen.config import CLOCK_FEATURES, ModelConfig, span_of
from framegen.device import DTYPES, resolve_precision
from framegen.gru import init_cells, matmul, stack, stack_step


def _head_product(dtype, x, w, *_, **__):
    """nn.Dense's dot_general (x's last axis with w's first) in ``dtype``, accumulated in float32."""
    return matmul(x, w, dtype)


def _with_clock(frames, clock, clock_dim: int):
    """Frames (..., F) with their clock features (..., C) appended: the input layer 0 reads."""
    if not clock_dim:
        return frames
    if clock is None:
        raise ValueError("this model reads a beat clock beside its frames: pass clock=")
    return jnp.concatenate([frames, clock.astype(frames.dtype)], axis=-1)


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
        self.cells = init_cells(self.param, "", [self.frame_size + self.clock_dim] + [h] * (self.layers - 1), h)
        self.head = nn.Dense(self.out_dim or self.frame_size, name="head",
                             dot_general=partial(_head_product, DTYPES[self.precision]))
        if self.tiers:
            self.mel = jnp.asarray(tower.mel_bands(self.frame_size))  # a constant, not a parameter
        self.tier_params = tower.init(self.param, self.tiers, self.bands, h, self.tier_hidden, self.tier_layers)

    def create_params(self):
        """Touches every parameter (``init_params``): setup's, and the head's, which Dense makes on its first call."""
        return self.head(jnp.zeros((1, self.hidden), jnp.float32))

    @property
    def dtype(self):
        return DTYPES[self.precision]

    @property
    def bands(self) -> int:
        """Log-mel bands per frame tier 1 reads."""
        return tower.bands(self.frame_size)

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
            top, state = stack(self.cells, _with_clock(x, clk, self.clock_dim),
                               self.initial_state(x.shape[1]) if state is None else state, dtype=self.dtype)
            out = self.head(top)
        else:
            full = 0 if state is not None else x.shape[0] // self.span * self.span
            tops = []
            if full:
                top, state = self._spans(x[:full], None if clk is None else clk[:full])
                tops.append(top)
            if x.shape[0] > full:
                state = self.initial_state(x.shape[1]) if state is None else state
                state, top = jax.lax.scan(lambda st, xs: self._tiered_step(xs[0], st, xs[1])[::-1], state,
                                          (x[full:], None if clk is None else clk[full:]))
                tops.append(top)
            out = self.head(jnp.concatenate(tops, axis=0))
        return (out if time_major else jnp.swapaxes(out, 0, 1)), state

    def step(self, frame, state, clock=None):
        """One frame for every stream: frame (B, F), state -> (output (B, out), new state). The state is (L, B, H)
        for the flat model; with tiers the whole tower's (``initial_state``): every tier steps when its span ends."""
        if not self.tiers:
            top, state = stack_step(self.cells, _with_clock(frame, clock, self.clock_dim), state, dtype=self.dtype)
        else:
            top, state = self._tiered_step(frame, state, clock)
        return self.head(top), state

    def initial_state(self, batch: int):
        """Zeros: (L, B, H) for the flat model. With tiers a dict: "frame" (L, B, H), and the tiers' state
        (``tower.initial_state``: "tiers", "buf", "pos")."""
        frame = jnp.zeros((self.layers, batch, self.hidden), jnp.float32)
        if not self.tiers:
            return frame
        return {"frame": frame, **tower.initial_state(self.tiers, batch, self.hidden, self.tier_hidden,
                                                      self.tier_layers, self.bands)}

    def _spans(self, x, clk):
        """Whole spans from the initial state: x (T, B, F) time-major, T a multiple of the span -> (top (T, B, H),
        state). The tiers run first (``tower.run_spans``), the frame GRU last, conditioned by tier 1."""
        feats = tower.log_mel(x, self.mel)  # (T, B, n): all tier 1 reads
        slow, state = tower.run_spans(self.tier_params, self.tiers, feats, self.tier_hidden, self.tier_layers,
                                      self.dtype)
        top, frame_state = stack(self.cells, _with_clock(x, clk, self.clock_dim),
                                 jnp.zeros((self.layers, x.shape[1], self.hidden), jnp.float32), slow, self.dtype)
        return top, {"frame": frame_state, **state}

    def _tiered_step(self, frame, state, clock):
        """One frame through the tower: the frame GRU reads it with tier 1's conditioning of its sub-step, then the
        tiers whose spans end with it step (``tower.advance``). -> (top (B, H), new state)."""
        cond = tower.frame_cond(self.tier_params, self.tiers, state)
        top, frame_state = stack_step(self.cells, _with_clock(frame, clock, self.clock_dim), state["frame"], cond,
                                      self.dtype)
        tiers = tower.advance(self.tier_params, self.tiers, state, tower.log_mel(frame, self.mel), self.dtype)
        return top, {"frame": frame_state, **tiers}


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
