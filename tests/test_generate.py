import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from framegen import generate as gen
from framegen.errors import RunError, UsageError
from framegen.model import FrameGRU, init_params
from framegen.train import train_song
from tests.conftest import tiny_config


def test_rollout_feeds_each_prediction_back_and_strips_the_seed():
    model = FrameGRU(frame_size=40, hidden=199, layers=2)
    params = init_params(model, jax.random.key(0))
    seed = jax.random.normal(jax.random.key(1), (2, 5, 40))
    frames = gen.rollout(model, params, seed, 4)
    assert frames.shape == (2, 4, 40)
    # Frame k must be what the model predicts after reading the seed and frames 0..k-1 teacher-forced.
    for k in range(4):
        ctx = jnp.concatenate([seed, frames[:, :k]], axis=1)
        out, _ = model.apply({"params": params}, ctx)
        np.testing.assert_allclose(frames[:, k], out[:, -1], atol=2e-5)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from tests.conftest import sine_song, write

    d = tmp_path_factory.mktemp("gen")
    song = write(d / "sine.wav", sine_song())
    return train_song(song, tiny_config(epochs=3, batch_size=16), run_dir=d / "run").run_dir


def test_generate_writes_exactly_the_requested_length(trained_run, tmp_path):
    (g,) = gen.generate(trained_run, seconds=1.2345, out=tmp_path / "a.wav")
    y, sr = sf.read(g.path, dtype="int16")
    assert sr == 8000 and len(y) == round(1.2345 * 8000)
    assert sf.info(str(g.path)).subtype == "PCM_16"
    assert g.rms > 0.01


def test_generated_audio_continues_from_the_seed(trained_run, tmp_path):
    """The first generated sample follows the seed's last one: on a smooth sine the jump is small."""
    from framegen.config import load_config

    cfg = load_config(trained_run)
    song = gen.load_song_for(cfg)
    start = gen.seed_start(cfg, len(song), 2.0, 50)
    (g,) = gen.generate(trained_run, seconds=0.5, seed_offset=2.0, seed_frames=50, out=tmp_path / "b.wav")
    y, _ = sf.read(g.path, dtype="float32")
    seed_end = start + 50 * cfg.data.frame_size
    raw = song * cfg.norm.std + cfg.norm.mean
    step = np.abs(np.diff(raw)).mean()
    assert abs(y[0] - raw[seed_end]) < 4 * step + 0.05  # close to what really follows the seed...
    assert not np.allclose(y[:400], raw[start:start + 400], atol=1e-3)  # ...and not the seed itself


def test_generate_refuses_existing_output_unless_overwrite(trained_run, tmp_path):
    out = tmp_path / "c.wav"
    gen.generate(trained_run, seconds=0.1, out=out)
    with pytest.raises(RunError, match="--overwrite"):
        gen.generate(trained_run, seconds=0.1, out=out)
    gen.generate(trained_run, seconds=0.1, out=out, overwrite=True)


def test_seed_past_the_end_is_refused(trained_run):
    with pytest.raises(UsageError, match="--seed-offset"):
        gen.generate(trained_run, seconds=0.1, seed_offset=11.9)


@pytest.mark.parametrize("frame_size", [40, 800])  # 800 > 3H/4: head and W_i0 folded into one matrix
def test_fast_rollout_equals_feeding_step_outputs_back(frame_size):
    model = FrameGRU(frame_size=frame_size, hidden=256, layers=2)
    params = init_params(model, jax.random.key(0))
    seed = jax.random.normal(jax.random.key(1), (3, 5, frame_size))
    got = gen.rollout(model, params, seed, 25)
    out, h = model.apply({"params": params}, seed)
    frame, want = out[:, -1], []
    for _ in range(25):  # the plain rollout: every step's output is the next step's input
        want.append(frame)
        frame, h = model.apply({"params": params}, frame, h, method=FrameGRU.step)
    np.testing.assert_allclose(got, jnp.stack(want, axis=1), atol=2e-6, rtol=1e-5)
    assert gen.rollout(model, params, seed, 1).shape == (3, 1, frame_size)


def test_streams_continue_different_places(trained_run, tmp_path):
    gs = gen.generate(trained_run, seconds=0.3, streams=3, out=tmp_path / "s.wav", score=False)
    ys = [sf.read(g.path, dtype="float32")[0] for g in gs]
    assert len({g.path for g in gs}) == 3
    assert not np.allclose(ys[0], ys[1]) and not np.allclose(ys[1], ys[2])
    seeds, starts = gen.stream_seeds(np.arange(1000.0), 100, 5, 10, 3)
    assert list(starts) == [100, 150, 200] and seeds[1, 0, 0] == 150  # one seed length apart when room allows
    with pytest.raises(UsageError, match="no room"):
        gen.stream_seeds(np.arange(1000.0), 950, 5, 10, 3)
