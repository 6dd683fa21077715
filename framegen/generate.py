"""Generation: warm the GRU on seed frames from the song, then feed each prediction back inside one ``lax.scan``.

``rollout`` is the pure core (params, seed frames -> new frames, O(1) work per frame); ``generate`` is the edge that
finds a run, restores its checkpoint, takes the seed from the song, strips it and writes the WAV.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from framegen import audio, checkpoint
from framegen.config import RunConfig, load_config
from framegen.data import split_song
from framegen.errors import RunError, UsageError
from framegen.model import FrameGRU, build


@partial(jax.jit, static_argnames=("model", "n_frames"))
def rollout(model: FrameGRU, params, seed, n_frames: int):
    """Continue each stream of ``seed`` (B, S, F) by ``n_frames`` predicted frames -> (B, n_frames, F).

    The seed is run through the GRU once to set its state; the output after the seed's last frame is the first
    new frame, and every new frame is fed back as the next input. The seed itself is not returned.
    """
    variables = {"params": params}
    out, state = model.apply(variables, seed)
    first = out[:, -1]

    def step(carry, _):
        frame, h = carry
        nxt, h = model.apply(variables, frame, h, method=FrameGRU.step)
        return (nxt, h), frame

    _, frames = jax.lax.scan(step, (first, state), None, length=n_frames)
    return jnp.swapaxes(frames, 0, 1)


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


def seed_of(song_norm: np.ndarray, start: int, seed_frames: int, frame_size: int) -> np.ndarray:
    """(S, F) seed frames starting at sample ``start``."""
    return song_norm[start : start + seed_frames * frame_size].reshape(seed_frames, frame_size)


def continue_audio(model, params, seed: np.ndarray, n_samples: int, cfg: RunConfig, streams: int = 1) -> np.ndarray:
    """(streams, n_samples) denormalised audio following ``seed`` (S, F), cut to exactly ``n_samples``."""
    f = cfg.data.frame_size
    n_frames = -(-n_samples // f)
    seeds = jnp.broadcast_to(jnp.asarray(seed)[None], (streams, *seed.shape))
    frames = np.asarray(rollout(model, params, seeds, n_frames))
    y = frames.reshape(streams, -1)[:, :n_samples]
    return audio.denormalise(y, cfg.norm)


@dataclass(frozen=True)
class Generated:
    path: Path
    seconds: float
    rms: float
    run_dir: Path


def load_params(run_dir: Path, cfg: RunConfig, kind: str):
    """Params of a run's ``best`` or ``last`` checkpoint, checked against its config."""
    from framegen.train import init_state  # the state layout lives with training

    if kind not in checkpoint.KINDS:
        raise UsageError(f"unknown checkpoint {kind!r}: pass --checkpoint best or --checkpoint last")
    if kind == "best" and not checkpoint.exists(run_dir, "best"):
        kind = "last"  # a run stopped before its first validation has only "last"
    like = init_state(cfg, total_steps=1)
    state, _ = checkpoint.restore(run_dir, kind, like)
    return state["params"]


def load_song_for(cfg: RunConfig) -> np.ndarray:
    """The run's song, resampled and normalised exactly as in training."""
    if not Path(cfg.song).is_file():
        raise RunError(f"the run's song {cfg.song} is missing: put it back at that path to take a seed from it")
    y, _ = audio.load_song(cfg.song, cfg.data.sample_rate)
    return audio.normalise(y, cfg.norm)


def generate(
    run_dir: Path,
    *,
    seconds: float = 30.0,
    checkpoint_kind: str = "best",
    seed_offset: float | None = None,
    seed_frames: int | None = None,
    out: Path | None = None,
    overwrite: bool = False,
    streams: int = 1,
) -> list[Generated]:
    """Write ``streams`` WAVs of ``seconds`` each continuing the run's song; returns what was written."""
    if not (seconds > 0):
        raise UsageError(f"--seconds must be positive, got {seconds}")
    if streams < 1:
        raise UsageError(f"--streams must be at least 1, got {streams}")
    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    seed_frames = seed_frames or cfg.data.seq_len
    if seed_frames < 1:
        raise UsageError(f"--seed-frames must be at least 1, got {seed_frames}")
    out = Path(out) if out else run_dir / "generated" / f"{checkpoint_kind}-{seconds:g}s.wav"
    paths = [out] if streams == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(streams)]
    for p in paths:
        if p.exists() and not overwrite:
            raise RunError(f"{p} already exists: pass --overwrite to replace it, or choose another --out")

    params = load_params(run_dir, cfg, checkpoint_kind)
    song = load_song_for(cfg)
    start = seed_start(cfg, len(song), seed_offset, seed_frames)
    seed = seed_of(song, start, seed_frames, cfg.data.frame_size)
    n_samples = int(round(seconds * cfg.data.sample_rate))
    model = build(cfg.model, cfg.data.frame_size)
    ys = continue_audio(model, params, seed, n_samples, cfg, streams)
    if not np.all(np.isfinite(ys)):
        raise RunError(
            f"the model produced NaN or infinite samples from {run_dir}: nothing was written; "
            f"try --checkpoint last or retrain with a lower --lr"
        )
    written = []
    for p, y in zip(paths, ys):
        audio.write_wav(p, y, cfg.data.sample_rate, overwrite=overwrite)
        written.append(Generated(path=p, seconds=len(y) / cfg.data.sample_rate, rms=float(np.sqrt(np.mean(y**2))),
                                 run_dir=run_dir))
    return written
