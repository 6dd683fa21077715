"""Framing and examples: the train/validation split of a song, example offsets, and batches gathered on device.

Generation prompts (the song's frames a continuation starts from) are cut here too.
An example is T+1 consecutive frames of F samples starting at any sample offset; inputs are frames 0..T-1 and
targets frames 1..T. Training offsets are drawn inside the first part of the song only; validation examples tile
the held-out tail. The song is put on the device once and every batch is sliced out of it there. A model with slower
tiers reads whole spans of its slowest tier: its T is a multiple of their ratios' product (config.check_span).
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from framegen.config import FRAME_RANGE, SEQ_RANGE, DataConfig
from framegen.errors import SongTooShortError, UsageError


@dataclass(frozen=True)
class Split:
    """Sample ranges of the song: training is [0, n_train), validation is [n_train, n_total)."""

    n_total: int
    n_train: int

    @property
    def n_val(self) -> int:
        return self.n_total - self.n_train


def split_song(n_total: int, cfg: DataConfig) -> Split:
    return Split(n_total=n_total, n_train=n_total - int(round(cfg.val_fraction * n_total)))


def fits(n_total: int, cfg: DataConfig) -> bool:
    """True when both the training part and the held-out tail hold at least one full example."""
    s = split_song(n_total, cfg)
    return min(s.n_train, s.n_val) >= cfg.example_samples


def check_fits(n_total: int, cfg: DataConfig, multiple: int = 1) -> Split:
    """The split, or SongTooShortError saying the song length, what F x T needs and which smaller sizes fit (a
    --seq-len hint is a ``multiple`` of the tiers' span)."""
    s = split_song(n_total, cfg)
    need = cfg.example_samples
    if min(s.n_train, s.n_val) >= need:
        return s
    room = min(s.n_train, s.n_val)
    rate = cfg.sample_rate
    hints = []
    max_t = min(room // cfg.frame_size - 1, SEQ_RANGE[1]) // multiple * multiple
    if max_t >= SEQ_RANGE[0]:
        hints.append(f"--seq-len {max_t}")
    max_f = min(room // (cfg.seq_len + 1), FRAME_RANGE[1])
    if max_f >= FRAME_RANGE[0]:
        hints.append(f"--frame-size {max_f}")
    if not hints:
        smallest = (SEQ_RANGE[0] + 1) * FRAME_RANGE[0]
        total_needed = int(np.ceil(smallest / min(cfg.val_fraction, 1 - cfg.val_fraction)))
        hint = f"use a song of at least {np.ceil(10 * total_needed / rate) / 10:.1f} s"  # rounded up: enough
    else:
        hint = "try " + " or ".join(hints)
    raise SongTooShortError(
        f"song is too short: {n_total:,} samples ({n_total / rate:.1f} s at {rate} Hz) leave {s.n_train:,} for "
        f"training and {s.n_val:,} for validation, but F={cfg.frame_size} x T={cfg.seq_len} needs {need:,} "
        f"samples in each: {hint}"
    )


def steps_per_epoch(split: Split, cfg: DataConfig, batch_size: int) -> int:
    """One epoch offers one example per frame position of the training part (stride F, random phase)."""
    windows = (split.n_train - cfg.example_samples) // cfg.frame_size + 1
    return max(1, -(-windows // batch_size))


def random_offsets(key, batch_size: int, split: Split, cfg: DataConfig):
    """(B,) int32 example starts drawn uniformly over every sample offset of the training part."""
    max_start = split.n_train - cfg.example_samples
    return jax.random.randint(key, (batch_size,), 0, max_start + 1, dtype=jnp.int32)


def val_offsets(split: Split, cfg: DataConfig) -> np.ndarray:
    """(V,) starts of validation examples: their target frames tile the held-out tail without overlap."""
    stride = cfg.seq_len * cfg.frame_size
    count = (split.n_val - cfg.example_samples) // stride + 1
    return (split.n_train + stride * np.arange(count)).astype(np.int32)


def gather(song, offsets, cfg: DataConfig, time_major: bool = False):
    """Slice examples out of the on-device song. song: (N,), offsets: (B,) -> (B, T+1, F), or (T+1, B, F) with
    ``time_major`` (the layout the model's scan runs in: written that way by the gather, no transpose after)."""

    def one(start):
        return jax.lax.dynamic_slice(song, (start,), (cfg.example_samples,)).reshape(cfg.seq_len + 1, cfg.frame_size)

    return jax.vmap(one, out_axes=1 if time_major else 0)(offsets)


def inputs_targets(examples, time_major: bool = False):
    """(B, T+1, F) -> inputs (B, T, F) = frames 0..T-1, targets (B, T, F) = frames 1..T (time on axis 0 with
    ``time_major``)."""
    if time_major:
        return examples[:-1], examples[1:]
    return examples[:, :-1], examples[:, 1:]


def frames_of(y: np.ndarray, frame_size: int) -> np.ndarray:
    """Non-overlapping frames of a signal, dropping the incomplete tail: (N,) -> (N // F, F)."""
    n = (len(y) // frame_size) * frame_size
    return np.asarray(y[:n]).reshape(-1, frame_size)


FIT_FRAMES = (40, 50, 100, 400, 800, 1000, 4000, 40_000)
FIT_SEQS = (50, 100, 1000, 4000, 10_000)


def fit_table(n_total: int, sample_rate: int, val_fraction: float) -> dict[int, dict[int, bool]]:
    """For common (F, T): does one training plus one validation example fit in a song of ``n_total`` samples?"""
    return {
        f: {t: fits(n_total, DataConfig(frame_size=f, seq_len=t, sample_rate=sample_rate, val_fraction=val_fraction))
            for t in FIT_SEQS}
        for f in FIT_FRAMES
    }


def stream_prompts(song_norm: np.ndarray, start: int, frames: int, frame_size: int,
                   streams: int) -> tuple[np.ndarray, np.ndarray]:
    """(prompts (streams, S, F), their starts (streams,)): stream i starts i prompt lengths after ``start`` (closer
    together when the song ends sooner), so N streams continue N different places of the song, in MSE mode too
    (which has no sampling noise). Raises when there is no room for N different prompts."""
    need = frames * frame_size
    room = len(song_norm) - need - start
    stride = min(need, room // max(streams - 1, 1))
    if streams > 1 and stride < 1:
        raise UsageError(f"no room after the prompt for {streams} different prompts: pass a smaller --prompt-offset "
                         f"or --prompt-frames, or fewer --streams")
    starts = start + stride * np.arange(streams)
    return np.stack([prompt_of(song_norm, int(s), frames, frame_size) for s in starts]), starts


def prompt_of(song_norm: np.ndarray, start: int, frames: int, frame_size: int) -> np.ndarray:
    """(S, F) prompt frames starting at sample ``start``."""
    return song_norm[start : start + frames * frame_size].reshape(frames, frame_size)
