"""The frame model: a stack of GRU layers (framegen.gru) and a linear head, as a Flax Linen module.

``FrameGRU`` reads frames (B, T, F) and returns one output vector per frame: the predicted next frame (F samples,
``output="mse"``) or logits over a codebook (K, ``output="vq"``). ``__call__`` runs whole sequences (training,
seed warm-up); ``step`` advances one frame (generation). No training logic lives here.
``precision`` "bf16" runs every matmul on bfloat16 operands with float32 accumulation (parameters, state and
gates stay float32; see framegen.gru); "fp32" is plain float32.
"""

from functools import partial
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

from framegen.config import CLOCK_FEATURES, ModelConfig
from framegen.gru import gru_cell, gru_layer, gru_layer_x, matmul

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


def _layer(cell, x, h0, dtype=jnp.float32):
    """One GRU layer over time-major x: (T, B, I) -> hs (T, B, H), by the cheaper path for its size; ``dtype``:
    the matmuls' operand precision."""
    t, b = x.shape[:2]
    three_h = cell["w_h"].shape[1]
    chunk = max(c for c in range(1, min(CHUNK, t) + 1) if t % c == 0)
    if t * b * three_h * 4 > GX_BYTES and chunk >= 10:  # a T with no divisor near CHUNK keeps the plain path
        return gru_layer_x(cell["w_i"], cell["b_i"], cell["w_h"], cell["b_h"], x, h0, chunk=chunk, dtype=dtype)
    gx = matmul(x, cell["w_i"], dtype) + cell["b_i"]  # all T projections at once
    return gru_layer(cell["w_h"], cell["b_h"], gx, h0, dtype=dtype)


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


def _uniform(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class FrameGRU(nn.Module):
    frame_size: int  # F: samples per input frame
    hidden: int = 256
    layers: int = 2
    out_dim: int = 0  # outputs per frame; 0 means F (next-frame samples)
    clock_dim: int = 0  # clock features read beside each frame (framegen.clock.FEATURES), 0: no clock
    precision: str = "fp32"  # matmul operands: "fp32", or "bf16" with float32 accumulation

    def setup(self):
        h = self.hidden
        k_h = 1.0 / h**0.5  # PyTorch's GRU init for the recurrent side
        self.cells = [
            {
                # input side scaled by fan-in so a 40,000-sample frame does not saturate the gates
                "w_i": self.param(f"w_i_{i}", _uniform((1.0 / fan_in) ** 0.5), (fan_in, 3 * h)),
                "b_i": self.param(f"b_i_{i}", _uniform(k_h), (3 * h,)),
                "w_h": self.param(f"w_h_{i}", _uniform(k_h), (h, 3 * h)),
                "b_h": self.param(f"b_h_{i}", _uniform(k_h), (3 * h,)),
            }
            for i, fan_in in enumerate([self.frame_size + self.clock_dim] + [h] * (self.layers - 1))
        ]
        self.head = nn.Dense(self.out_dim or self.frame_size, name="head",
                             dot_general=partial(_head_product, DTYPES[self.precision]))

    @property
    def dtype(self):
        return DTYPES[self.precision]

    def __call__(self, frames, state=None, time_major: bool = False, clock=None):
        """frames: (B, T, F) -> (outputs (B, T, out), state (L, B, H) after the last frame); with ``time_major``
        frames (T, B, F) -> outputs (T, B, out), the layout the scan runs in (no transposes). A model with a clock
        reads ``clock`` (same layout, last axis ``clock_dim``) beside the frames."""
        frames = _with_clock(frames, clock, self.clock_dim)
        x = frames if time_major else jnp.swapaxes(frames, 0, 1)  # time-major (T, B, F) for the scan
        if state is None:
            state = self.initial_state(x.shape[1])
        last = []
        for cell, h0 in zip(self.cells, state):
            x = _layer(cell, x, h0, self.dtype)
            last.append(x[-1])
        out = self.head(x)
        return (out if time_major else jnp.swapaxes(out, 0, 1)), jnp.stack(last)

    def step(self, frame, state, clock=None):
        """One frame for every stream: frame (B, F), state (L, B, H) -> (output (B, out), new state)."""
        x = _with_clock(frame, clock, self.clock_dim)
        new = []
        for cell, h in zip(self.cells, state):
            x = gru_cell(cell["w_h"].astype(self.dtype), cell["b_h"], matmul(x, cell["w_i"], self.dtype) + cell["b_i"],
                         h)
            new.append(x)
        return self.head(x), jnp.stack(new)

    def initial_state(self, batch: int):
        return jnp.zeros((self.layers, batch, self.hidden), jnp.float32)


def build(cfg: ModelConfig, frame_size: int) -> FrameGRU:
    out_dim = cfg.codebook if cfg.output == "vq" else 0
    clock_dim = CLOCK_FEATURES if cfg.clock == "beat" else 0
    return FrameGRU(frame_size=frame_size, hidden=cfg.hidden, layers=cfg.layers, out_dim=out_dim, clock_dim=clock_dim,
                    precision=resolve_precision(cfg.precision))


def init_params(model: FrameGRU, key):
    """Parameters for ``model`` (shapes do not depend on T or B)."""
    dummy = jnp.zeros((1, 1, model.frame_size), jnp.float32)
    clock = jnp.zeros((1, 1, model.clock_dim), jnp.float32) if model.clock_dim else None
    return model.init(key, dummy, clock=clock)["params"]
