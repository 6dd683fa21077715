"""framegen.generate: rollouts (MSE and VQ), seam smoothing and overlap-add, seeds, the generate edge."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from framegen import generate as gen
from framegen.cli import cli
from framegen.errors import RunError, UsageError
from framegen.model import FrameGRU, init_params
from framegen.train import train_song
from tests.conftest import RATE, tiny_config

F = 40


@pytest.mark.slow
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


def _max_seam_jump(y, frame_size):
    seams = np.arange(frame_size, len(y), frame_size)
    return float(np.max(np.abs(y[seams] - y[seams - 1])))


def test_smooth_seams_removes_steps_between_constant_frames_and_keeps_the_length():
    rng = np.random.default_rng(0)
    y = np.repeat(rng.uniform(-1, 1, 30), F).astype(np.float32)  # constant frames, a step at every border
    y = y[:-7]  # a partial last frame
    out = gen.smooth_seams(y, F, 8)
    assert out.shape == y.shape
    before, after = _max_seam_jump(y, F), _max_seam_jump(out, F)
    assert before > 0.5 and after < 0.02 * before
    assert np.max(np.abs(np.diff(out))) < 0.25 * before  # the step became a ramp, with no new jump inside it
    middle = np.arange(len(y)) % F
    far = (middle >= 8) & (middle < F - 8)
    np.testing.assert_array_equal(out[far], y[far])  # frame interiors are untouched
    np.testing.assert_array_equal(gen.smooth_seams(y, F, 0), y)


def test_smooth_seams_leaves_a_smooth_waveform_nearly_alone():
    t = np.arange(40 * F)
    y = np.sin(2 * np.pi * t / 97.0).astype(np.float32)
    out = gen.smooth_seams(y, F, 10)
    assert np.max(np.abs(out - y)) < 0.01


def test_overlap_add_of_true_successors_is_the_song_itself():
    song = np.random.default_rng(1).standard_normal(50 * F).astype(np.float32)
    offsets = np.array([[5 * F + 3 + i * F for i in range(20)], [7 + i * F for i in range(20)]])
    out = gen.overlap_add(song, offsets, F, 16)
    assert out.shape == (2, 19 * F)
    np.testing.assert_allclose(out[0], song[6 * F + 3 : 25 * F + 3], atol=1e-6)
    np.testing.assert_allclose(out[1], song[F + 7 : 20 * F + 7], atol=1e-6)


def test_overlap_add_crossfades_real_surroundings_instead_of_jumping():
    rng = np.random.default_rng(2)
    song = np.repeat(rng.uniform(-1, 1, 40), 4 * F).astype(np.float32)  # constant stretches of 4 frames
    offsets = (rng.integers(0, 40, (1, 25)) * 4 + 1) * F  # frames from the middle of random stretches
    hard = gen.overlap_add(song, offsets, F, 0)[0]
    soft = gen.overlap_add(song, offsets, F, 16)[0]
    assert hard.shape == soft.shape == (24 * F,)
    assert _max_seam_jump(hard, F) > 0.5 and _max_seam_jump(soft, F) < 0.1 * _max_seam_jump(hard, F)
    np.testing.assert_array_equal(hard, song[offsets[0, 1:, None] + np.arange(F)].reshape(-1))


def test_continue_audio_crossfade_is_exact_length_and_only_touches_the_borders(tiny_model):
    model, params = tiny_model
    cfg = tiny_config()
    seed = np.asarray(jax.random.normal(jax.random.key(6), (5, F)))
    plain = gen.continue_audio(model, params, seed, 1234, cfg)
    faded = gen.continue_audio(model, params, seed, 1234, cfg, crossfade_ms=1.0)  # 8 samples at 8 kHz
    assert plain.shape == faded.shape == (1, 1234)
    pos = np.arange(1234) % F
    far = (pos >= 8) & (pos < F - 8)
    np.testing.assert_allclose(faded[0, far], plain[0, far], atol=1e-6)
    assert not np.allclose(faded[0, ~far], plain[0, ~far])


def test_vq_generate_samples_with_temperature_and_top_k_and_prints_flags(vq_run, tmp_path):
    run_dir, _ = vq_run
    outs = []
    for seed in ("0", "0", "1"):
        out = tmp_path / f"g{len(outs)}.wav"
        r = CliRunner().invoke(cli, ["generate", "--run", str(run_dir), "--seconds", "1.5", "--out", str(out),
                                     "--temperature", "0.8", "--top-k", "4", "--sample-seed", seed])
        assert r.exit_code == 0, r.output
        assert "flags:" in r.output and "Frechet ratio" in r.output
        y, sr = sf.read(out, dtype="float32")
        assert sr == RATE and len(y) == 12000
        outs.append(y)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


@pytest.mark.slow
def test_rollout_vq_samples_from_the_model_and_feeds_the_emitted_frame_back():
    from framegen.generate import rollout_vq

    k = 16
    model = FrameGRU(frame_size=F, hidden=199, layers=2, out_dim=k)
    params = init_params(model, jax.random.key(0))
    seed = jax.random.normal(jax.random.key(1), (2, 5, F))
    table = jax.random.normal(jax.random.key(2), (k, 3, F))
    # greedy: frame j is a row of the likeliest code after reading the seed and frames 0..j-1 (one causal pass)
    frames, codes, which = rollout_vq(model, params, seed, 6, table, jax.random.key(3), 0.0, 0)
    assert frames.shape == (2, 6, F) and codes.shape == (2, 6)
    logits, _ = model.apply({"params": params}, jnp.concatenate([seed, frames[:, :-1]], axis=1))
    np.testing.assert_array_equal(codes, jnp.argmax(logits[:, 4:], axis=-1))
    np.testing.assert_array_equal(frames, table[codes, which])  # the emitted row of the sampled code
    assert which.min() >= 0 and which.max() < 3
    # sampling: the key decides, reproducibly
    a = rollout_vq(model, params, seed, 6, table, jax.random.key(5), 1.0, 0)[1]
    b = rollout_vq(model, params, seed, 6, table, jax.random.key(5), 1.0, 0)[1]
    c = rollout_vq(model, params, seed, 6, table, jax.random.key(6), 1.0, 0)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bf16_rollout_is_the_bf16_model_fed_back_and_near_fp32():
    params = init_params(FrameGRU(frame_size=40, hidden=199, layers=2), jax.random.key(0))
    seed = jax.random.normal(jax.random.key(1), (2, 5, 40))
    frames = {p: gen.rollout(FrameGRU(frame_size=40, hidden=199, layers=2, precision=p), params, seed, 4)
              for p in ("fp32", "bf16")}
    model = FrameGRU(frame_size=40, hidden=199, layers=2, precision="bf16")
    for k in range(4):
        ctx = jnp.concatenate([seed, frames["bf16"][:, :k]], axis=1)
        out, _ = model.apply({"params": params}, ctx)
        np.testing.assert_allclose(frames["bf16"][:, k], out[:, -1], atol=2e-3)
    rel = np.linalg.norm(frames["bf16"] - frames["fp32"]) / np.linalg.norm(frames["fp32"])
    assert 0 < rel < 0.03


def test_generate_in_bf16_from_an_fp32_run(trained_run, tmp_path):
    (g32,) = gen.generate(trained_run, seconds=0.5, out=tmp_path / "a.wav", score=False)
    (g16,) = gen.generate(trained_run, seconds=0.5, out=tmp_path / "b.wav", score=False, precision="bf16")
    a, b = sf.read(g32.path)[0], sf.read(g16.path)[0]
    assert len(a) == len(b) == 4000 and np.all(np.isfinite(b))
    assert np.linalg.norm(a - b) < 0.1 * np.linalg.norm(a)


TOWER = dict(frame_size=F, hidden=16, layers=2, tiers=(2, 3), tier_hidden=12)


def test_tiered_rollout_equals_feeding_step_by_hand_with_a_clock():
    """MSE with tiers and a beat clock: the rollout is FrameGRU.step fed its own output (the seed of 7 frames is not
    a whole number of spans of 6, so generation starts mid-span)."""
    from framegen import clock

    model = FrameGRU(**TOWER, clock_dim=4)
    params = init_params(model, jax.random.key(0))
    seed = jax.random.normal(jax.random.key(1), (2, 7, F))
    seed_clock = jnp.asarray(clock.features(np.linspace(0, 3, 14, dtype=np.float32).reshape(2, 7)))
    clock_in = jnp.asarray(clock.features(np.linspace(3, 6, 26, dtype=np.float32).reshape(13, 2)))
    got = gen.rollout(model, params, seed, 13, seed_clock=seed_clock, clock_in=clock_in)
    step = jax.jit(lambda x, h, c: model.apply({"params": params}, x, h, c, method=FrameGRU.step))
    h = model.initial_state(2)
    for t in range(7):
        out, h = step(seed[:, t], h, seed_clock[:, t])
    frame, want = out, []
    for k in range(13):
        want.append(frame)
        frame, h = step(frame, h, clock_in[k])
    np.testing.assert_allclose(got, jnp.stack(want, axis=1), atol=2e-6, rtol=1e-5)


def test_tiered_vq_rollout_samples_what_stepping_by_hand_gives():
    from framegen.generate import rollout_vq

    k = 16
    model = FrameGRU(**TOWER, out_dim=k)
    params = init_params(model, jax.random.key(0))
    seed = jax.random.normal(jax.random.key(1), (3, 8, F))  # 3 streams
    table = jax.random.normal(jax.random.key(2), (k, 3, F))
    frames, codes, which = rollout_vq(model, params, seed, 11, table, jax.random.key(3), 0.0, 0)
    np.testing.assert_array_equal(frames, table[codes, which])
    step = jax.jit(lambda x, h: model.apply({"params": params}, x, h, method=FrameGRU.step))
    h = model.initial_state(3)
    for t in range(8):
        logits, h = step(seed[:, t], h)
    for j in range(11):  # greedy: each code is the argmax after the seed and the frames emitted before it
        np.testing.assert_array_equal(codes[:, j], jnp.argmax(logits, axis=-1))
        logits, h = step(frames[:, j], h)
