"""Shared fixtures: small synthetic songs written by the tests themselves, and tiny configs."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np
import pytest
import soundfile as sf

from framegen.config import DataConfig, ModelConfig, RunConfig, TrainConfig

RATE = 8000


def sine_song(seconds: float = 12.0, rate: int = RATE, freq: float = 220.0) -> np.ndarray:
    """A sum of two sines with a slow amplitude pattern: predictable, so a GRU can learn it fast."""
    t = np.arange(int(seconds * rate)) / rate
    y = 0.5 * np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(2 * np.pi * 2.5 * freq * t)
    return (y * (0.8 + 0.2 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)


def write(path, y, rate=RATE, subtype="PCM_16"):
    sf.write(str(path), y, rate, subtype=subtype)
    return path


@pytest.fixture
def song_path(tmp_path):
    return write(tmp_path / "sine.wav", sine_song())


def tiny_config(precision: str = "fp32", **train) -> RunConfig:
    """F=40, T=50, GRU 2x199: the smallest sizes framegen allows, so each test compiles and runs in seconds.
    float32 unless asked: "auto" would make the same test bf16 on one machine and fp32 on another. Its MSE runs
    generate by feeding predictions back (``select="off"``), what the rollout tests check; unit selection has its
    own (tests/test_units.py, test_stream.py, test_generate.py)."""
    defaults = dict(epochs=2, batch_size=8, lr=3e-3, sample_every=0, log_every=5, select="off")
    defaults.update(train)
    return RunConfig(
        data=DataConfig(frame_size=40, seq_len=50, sample_rate=RATE),
        model=ModelConfig(hidden=199, layers=2, precision=precision),
        train=TrainConfig(**defaults),
    )


@pytest.fixture(scope="session")
def tiny_model():
    """The smallest MSE model (F=40, GRU 2x199) and its initial parameters."""
    import jax

    from framegen.model import FrameGRU, init_params

    model = FrameGRU(frame_size=40, hidden=199, layers=2)
    return model, init_params(model, jax.random.key(0))


VQ_TINY = ["-F", "40", "-T", "50", "--hidden", "199", "--batch-size", "16", "--sample-rate", str(RATE)]


@pytest.fixture(scope="session")
def vq_run(tmp_path_factory):
    """(run_dir, song) of a one-epoch VQ run (K=16, 1 ms crossfade) trained through the CLI; shared, read-only."""
    from click.testing import CliRunner

    from framegen.cli import cli

    d = tmp_path_factory.mktemp("vq")
    song = write(d / "song.wav", sine_song(6.0))
    r = CliRunner().invoke(cli, ["train", str(song), *VQ_TINY, "--epochs", "1", "--output", "vq", "--codebook", "16",
                                 "--crossfade", "1", "--run-dir", str(d / "run")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run", song
