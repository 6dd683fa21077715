"""The beat clock: grid fitting, beat positions, features, the clock continued past a prompt, the saved file, and
training / generating with the clock on a click-track song."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from framegen import clock
from framegen import generate as gen
from framegen.errors import RunError
from framegen.model import FrameGRU, init_params
from framegen.rollout import rollout

RATE = 8000


def click_song(seconds: float = 20.0, bpm: float = 120.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Decaying noise bursts on every beat (accented on every 4th) over a quiet tone: a song with a known beat."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    y = 0.05 * np.sin(2 * np.pi * 220 * t)
    period = int(round(60 / bpm * rate))
    burst = rng.standard_normal(rate // 20) * np.exp(-np.arange(rate // 20) / (rate / 200))
    for i, b in enumerate(range(0, len(y) - len(burst), period)):
        y[b : b + len(burst)] += (1.0 if i % 4 == 0 else 0.5) * burst
    return y.astype(np.float32)


def test_fitted_stretches_are_straight_and_glitches_split_them():
    beats = np.round(1000 + 500.3 * np.arange(40) + np.random.default_rng(0).integers(-16, 17, 40)).astype(float)
    fitted = clock.fit_stretches(beats)
    np.testing.assert_allclose(np.diff(fitted), 500.3, atol=2.0)  # quantisation jitter fitted away
    glitch = np.concatenate([beats[:20], beats[19] + 300 + 500.3 * np.arange(20)])  # an inserted short beat
    fitted = clock.fit_stretches(glitch)
    assert np.all(np.diff(fitted) > 0)
    np.testing.assert_allclose(np.diff(fitted[:20]), 500.3, atol=2.0)
    np.testing.assert_allclose(np.diff(fitted[20:]), 500.3, atol=2.0)


def test_beat_position_interpolates_and_extrapolates():
    beats = np.array([100.0, 200.0, 300.0, 400.0])
    pos = clock.beat_position(beats, np.array([100.0, 150.0, 400.0, 450.0, 50.0]))
    np.testing.assert_allclose(pos, [0.0, 0.5, 3.0, 3.5, -0.5])
    got = clock.beat_position(jnp.asarray(beats, jnp.float32), jnp.asarray([150.0, 450.0]))
    np.testing.assert_allclose(np.asarray(got), [0.5, 3.5], atol=1e-6)


def test_features_repeat_every_bar_and_are_on_the_unit_circle():
    f = clock.features(np.array([0.0, 0.25, 4.0, 1.0]))
    assert f.shape == (4, 4)
    np.testing.assert_allclose(f[0], f[2], atol=1e-6)  # one bar later: the same features
    np.testing.assert_allclose(f[3, :2], f[0, :2], atol=1e-6)  # one beat later: the same beat phase...
    assert not np.allclose(f[3, 2:], f[0, 2:])  # ...but another bar phase
    np.testing.assert_allclose(f[:, 0] ** 2 + f[:, 1] ** 2, 1.0, atol=1e-6)


def test_clock_continues_at_the_local_tempo():
    grid = clock.BeatGrid(beats=np.arange(10) * 4000.0 + 1000.0, sample_rate=RATE)
    pos = clock.continued(grid, np.array([5000.0, 39000.0]), 5, 1000)
    np.testing.assert_allclose(pos[0], [1.0, 1.25, 1.5, 1.75, 2.0])
    np.testing.assert_allclose(pos[1], [9.5, 9.75, 10.0, 10.25, 10.5])  # past the last beat: same tempo
    assert grid.tempo_bpm == pytest.approx(120.0)


def test_track_finds_the_click_tracks_tempo_and_the_file_round_trips(tmp_path):
    grid = clock.track(click_song(), RATE)
    assert grid.tempo_bpm == pytest.approx(120.0, rel=0.02)
    clock.save(tmp_path, grid)
    back = clock.load(tmp_path)
    np.testing.assert_array_equal(back.beats, grid.beats)
    assert clock.choose(click_song(), RATE) == "beat"
    rng = np.random.default_rng(1)
    assert clock.choose((0.1 * rng.standard_normal(20 * RATE)).astype(np.float32), RATE) == "none"
    with pytest.raises(RunError, match="retrain"):
        clock.load(tmp_path / "nowhere")


def test_rollout_with_a_clock_equals_feeding_step_by_hand():
    model = FrameGRU(frame_size=40, hidden=199, layers=2, clock_dim=4)
    params = init_params(model, jax.random.key(0))
    prompt = jax.random.normal(jax.random.key(1), (2, 5, 40))
    prompt_clock = clock.features(np.linspace(0, 3, 10, dtype=np.float32).reshape(2, 5))
    clock_in = jnp.asarray(clock.features(np.linspace(3, 6, 14, dtype=np.float32).reshape(7, 2)))
    got = rollout(model, params, prompt, 7, prompt_clock=jnp.asarray(prompt_clock), clock_in=clock_in)
    out, h = model.apply({"params": params}, prompt, clock=jnp.asarray(prompt_clock))
    frame, want = out[:, -1], []
    for k in range(7):
        want.append(frame)
        frame, h = model.apply({"params": params}, frame, h, clock_in[k], method=FrameGRU.step)
    np.testing.assert_allclose(got, jnp.stack(want, axis=1), atol=2e-6, rtol=1e-5)


@pytest.mark.slow
def test_train_and_generate_with_a_beat_clock(tmp_path):
    from tests.conftest import tiny_config, write

    from framegen.config import load_config
    from framegen.train import train_song

    song = write(tmp_path / "clicks.wav", click_song(), RATE)
    cfg = tiny_config(epochs=1, batch_size=8, max_steps=3)
    cfg = cfg.__class__(data=cfg.data, model=cfg.model.__class__(hidden=199, layers=2, clock="auto"),
                        train=cfg.train)
    run = train_song(song, cfg, run_dir=tmp_path / "run").run_dir
    assert load_config(run).model.clock == "beat" and (run / clock.BEATS_FILE).is_file()
    (g,) = gen.generate(run, seconds=1.0, out=tmp_path / "c.wav", score=False)
    assert g.seconds == pytest.approx(1.0) and g.rms > 0


def test_the_clock_continued_a_chunk_at_a_time_is_the_same_clock():
    grid = clock.BeatGrid(beats=np.arange(0.0, 80000.0, 4000.0) + 0.3 * np.arange(20) ** 1.5, sample_rate=8000)
    start = np.array([5000.0, 39000.0])
    whole = clock.continued(grid, start, 50, 1000)
    parts = np.concatenate([clock.continued(grid, start, 7, 1000, first=i) for i in range(0, 50, 7)], axis=1)
    np.testing.assert_array_equal(parts[:, :50], whole)


def test_a_prompt_without_a_trackable_beat_gets_a_steady_clock_at_the_songs_tempo():
    song = clock.BeatGrid(beats=np.arange(0.0, 80000.0, 4000.0), sample_rate=8000)
    noise = np.random.default_rng(0).standard_normal(4000).astype(np.float32)  # half a second: no 8 beats in it
    grid = clock.of_prompt(noise, 8000, song)
    assert grid.period == 4000 and grid.beats[0] == 0 and grid.beats[-1] >= 4000
    np.testing.assert_allclose(clock.beat_position(grid.beats, np.array([0.0, 2000.0, 6000.0])), [0.0, 0.5, 1.5])
