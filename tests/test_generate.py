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


# ------------------------------------------------------------------------------------------------ streaming


def _synthetic(case: str):
    """(model, params, cfg, kwargs for continue_audio/stream_audio) of an untrained model in every generation path:
    MSE or VQ, exemplar or centroid emission, unit selection, a beat clock, a seed from another signal, tiers."""
    from dataclasses import replace

    from framegen import clock, vq
    from framegen.config import ModelConfig
    from framegen.model import build
    from framegen.units import Units

    k, e = 16, 3
    vq_mode = not case.startswith("mse")
    clocked = case.endswith("clock")
    base = tiny_config()
    cfg = replace(base, model=ModelConfig(hidden=199, layers=2, output="vq" if vq_mode else "mse", codebook=k,
                                          clock="beat" if clocked else "none", tiers=(5, 2) if "tiers" in case else (),
                                          tier_hidden=16))
    model = build(cfg.model, F)
    params = init_params(model, jax.random.key(0))
    rng = np.random.default_rng(3)
    song = rng.standard_normal(200 * F).astype(np.float32)
    grid = clock.steady(0.5 * RATE, len(song), RATE) if clocked else None
    seed_at = np.array([100 * F + 7, 120 * F])
    seeds = np.stack([song[s : s + 5 * F].reshape(5, F) for s in seed_at])
    kw = dict(crossfade_ms=1.0, seed_start=seed_at, grid=grid, key=jax.random.key(4))
    if vq_mode:
        offsets = rng.integers(0, 150 * F, (k, e))
        table = song[offsets[..., None] + np.arange(F)]
        kw["emission"] = (vq.Emission(table[:, :1]) if case == "vq-centroid" else
                          vq.Emission(table, offsets, song))
    if case.startswith("units"):
        codes = rng.integers(0, k, 150 * F // 10)
        kw["units"] = Units(song=song, n_train=150 * F, codes=codes, stride=10, hold=5.0, max_run=3,
                            beats=grid.beats if clocked else None)
    if case == "units-seedfile":  # the seed cut from another signal: its own surroundings, never continued
        kw["seed_source"] = rng.standard_normal(30 * F).astype(np.float32)
        kw["seed_start"] = np.array([3, 11 * F])
        seeds = np.stack([kw["seed_source"][s : s + 5 * F].reshape(5, F) for s in kw["seed_start"]])
    return model, params, cfg, seeds, kw


STREAM_CASES = ["mse", "units-clock", "units-seedfile"] + [
    pytest.param(c, marks=pytest.mark.slow) for c in ("mse-clock", "vq-exemplar", "vq-centroid", "units", "mse-tiers",
                                                      "units-tiers-clock")]


@pytest.mark.parametrize("case", STREAM_CASES)
def test_streamed_audio_equals_the_in_memory_clip_bit_for_bit(case):
    """Chunks of 1 frame (every border a chunk border; MSE scans run 16 at least) and 23 (dividing neither the 71
    frames of 2834 samples nor F): the same samples as one scan and one smoothing of the whole clip, in every path:
    the carried state, key, clock and unit-selection state, the seam ramp and the overlap-add all continue across
    chunk borders."""
    model, params, cfg, seeds, kw = _synthetic(case)
    whole = gen.continue_audio(model, params, seeds, 2834, cfg, 2, **kw)
    assert not np.array_equal(whole[0], whole[1])  # two streams from two seeds
    for chunk in (1, 23):
        pieces = list(gen.stream_audio(model, params, seeds, 2834, cfg, 2, chunk_frames=chunk, **kw))
        assert len(pieces) >= 3 and {p.shape[0] for p in pieces} == {2}
        np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)


def _int16(path):
    return sf.read(path, dtype="int16")[0]


@pytest.mark.slow
def test_generate_streams_the_same_wav_as_the_in_memory_clip(trained_run, tmp_path):
    """The edge: 1.2345 s written in chunks of 16 frames (not dividing its 247 frames) is the in-memory clip's WAV,
    sample for sample; the partial file is renamed away when done."""
    from framegen.config import load_config

    cfg = load_config(trained_run)
    model, params, seeds, _, kw = gen.inputs_for(trained_run, cfg, crossfade_ms=1.0)
    want = gen.continue_audio(model, params, seeds, 9876, cfg, **kw)[0]
    (g,) = gen.generate(trained_run, seconds=1.2345, crossfade_ms=1.0, out=tmp_path / "s.wav", chunk_frames=16,
                        score=False)
    from framegen.audio import write_wav

    np.testing.assert_array_equal(_int16(g.path), _int16(write_wav(tmp_path / "m.wav", want, RATE)))
    assert not gen.partial_path(g.path).exists()


@pytest.mark.slow
def test_vq_streams_write_the_in_memory_clips(vq_run, tmp_path):
    """VQ with unit selection and overlap-add, 2 streams, chunks of 7 frames: each WAV is the in-memory clip's."""
    from framegen.audio import write_wav
    from framegen.config import load_config

    run_dir, _ = vq_run
    cfg = load_config(run_dir)
    model, params, seeds, _, kw = gen.inputs_for(run_dir, cfg, streams=2, sample_seed=3)
    want = gen.continue_audio(model, params, seeds, 8000, cfg, 2, **kw)
    gs = gen.generate(run_dir, seconds=1.0, streams=2, sample_seed=3, out=tmp_path / "v.wav", chunk_frames=7,
                      score=False)
    assert kw["units"] is not None and [g.path.name for g in gs] == ["v-0.wav", "v-1.wav"]
    for g, y in zip(gs, want):
        np.testing.assert_array_equal(_int16(g.path), _int16(write_wav(tmp_path / "m.wav", y, RATE)))


def test_a_seed_file_of_the_songs_own_excerpt_gives_the_seed_offset_output(vq_run, tmp_path):
    """The song's held-out audio saved as a file (with a little of what follows, which the crossfade after the
    seed reads) seeds exactly what --seed-offset at that place does: same levels (the run's normalisation), same
    frames, same unit selection and overlap-add."""
    from framegen.config import load_config

    run_dir, song = vq_run
    cfg = load_config(run_dir)
    start = gen.split_song(cfg.song_samples, cfg.data).n_train
    need = cfg.data.seq_len * F
    raw, _ = sf.read(song, dtype="float32")
    excerpt = tmp_path / "excerpt.wav"
    sf.write(excerpt, raw[start : start + need + 100], RATE, subtype="PCM_16")
    (a,) = gen.generate(run_dir, seconds=1.5, seed_offset=start / RATE, out=tmp_path / "a.wav", score=False)
    (b,) = gen.generate(run_dir, seconds=1.5, seed_file=excerpt, seed_offset=0, out=tmp_path / "b.wav",
                        score=False)
    np.testing.assert_array_equal(_int16(a.path), _int16(b.path))
    # the default seed of a file is its last frames: here 100 samples later than the song's
    (c,) = gen.generate(run_dir, seconds=1.5, seed_file=excerpt, out=tmp_path / "c.wav", score=False)
    assert not np.array_equal(_int16(a.path), _int16(c.path))


def test_a_seed_file_is_mixed_resampled_and_normalised_with_the_runs_constants(tmp_path):
    """A 44.1 kHz stereo file on a 16 kHz run: mono (the channels' mean), at 16 kHz, in the run's units (its song's
    mean and std), not the file's own."""
    from framegen.config import Norm, RunConfig

    t = np.arange(int(0.5 * 44100)) / 44100
    left, right = 0.2 * np.sin(2 * np.pi * 440 * t), 0.6 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    cfg = RunConfig(norm=Norm(mean=0.1, std=0.5))
    got = gen.load_seed_file(path, cfg)
    t16 = np.arange(8000) / 16000
    want = (0.4 * np.sin(2 * np.pi * 440 * t16) - 0.1) / 0.5
    assert got.shape == (8000,) and got.dtype == np.float32
    np.testing.assert_allclose(got[200:-200], want[200:-200], atol=2e-3)  # soxr's edges aside


def test_a_too_short_seed_file_names_the_length_it_needs(tmp_path):
    from framegen.config import RunConfig
    from framegen.errors import AudioError

    cfg = RunConfig()  # F=800, T=100 at 16 kHz: 5 s of seed
    with pytest.raises(AudioError, match=r"x.wav is too short: 1.00 s at 16000 Hz, but 100 seed frames of 800 "
                                         r"samples need 5.00 s: pass a longer file, or fewer --seed-frames"):
        gen.seed_file_start(16000, cfg, "x.wav", None, 100)
    with pytest.raises(AudioError, match=r"from --seed-offset 3 s need 8.00 s"):
        gen.seed_file_start(6 * 16000, cfg, "x.wav", 3.0, 100)
    assert gen.seed_file_start(6 * 16000, cfg, "x.wav", None, 100) == 16000  # the seed ends at the file's end
    assert gen.seed_file_start(6 * 16000, cfg, "x.wav", 0.5, 100) == 8000
    # two streams: the latest start leaving room for both, which stream_seeds then spreads over the file
    start = gen.seed_file_start(6 * 16000, cfg, "x.wav", None, 100, streams=2)
    _, starts = gen.stream_seeds(np.zeros(6 * 16000, np.float32), start, 100, 800, 2)
    assert list(starts) == [0, 16000]


def _stop_after(chunks: int, stop):
    """A progress callback that calls ``stop`` after ``chunks`` chunks were written."""
    calls = []

    def progress(done, total):
        calls.append(done)
        if len(calls) == chunks:
            stop()

    return progress


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_an_interrupted_generation_keeps_a_valid_wav_of_what_was_written(trained_run, tmp_path, how):
    """Stopped inside the chunk loop after 3 chunks of 16 frames: x.partial.wav is a valid WAV of exactly those
    samples (the start of the full output), the earlier x.wav is untouched, the error says where the audio is."""
    import os
    import signal

    from framegen.errors import Interrupted

    out = tmp_path / "x.wav"
    out.write_bytes(b"an earlier good file")
    before = out.read_bytes()

    def stop():
        if how == "SIGINT":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)  # the handler generate installs raises at the next bytecode

    with pytest.raises(Interrupted) as e:
        gen.generate(trained_run, seconds=5.0, out=out, overwrite=True, chunk_frames=16, score=False,
                     crossfade_ms=1.0, progress=_stop_after(3, stop))
    partial = gen.partial_path(out)
    assert e.value.exit_code == (130 if how == "SIGINT" else 143)
    assert f"interrupted by {how} after 0.2 s of 5 s" in str(e.value) and str(partial) in str(e.value)
    assert "earlier file is untouched" in str(e.value) and out.read_bytes() == before
    (full,) = gen.generate(trained_run, seconds=5.0, out=tmp_path / "full.wav", chunk_frames=16, score=False,
                           crossfade_ms=1.0)
    got = _int16(partial)
    assert sf.info(str(partial)).frames == len(got) == 3 * 16 * F  # frame 0 and 3 chunks, less the frame held back
    np.testing.assert_array_equal(got, _int16(full.path)[: len(got)])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy/librosa on a clip of one second
def test_long_clips_are_scored_on_their_last_part(trained_run, tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "SCORE_SECONDS", 1.0)
    (g,) = gen.generate(trained_run, seconds=1.5, out=tmp_path / "l.wav")
    assert g.seconds == 1.5 and g.scored_seconds == 1.0 and g.evaluation is not None
    (g,) = gen.generate(trained_run, seconds=1.0, out=tmp_path / "k.wav")
    assert g.scored_seconds == 1.0


def test_audio_turning_non_finite_is_never_written_and_what_came_before_is_kept(trained_run, tmp_path, monkeypatch):
    good = np.full((1, 4000), 0.25, np.float32)
    monkeypatch.setattr(gen, "stream_audio", lambda *a, **k: iter([good, np.full((1, 4000), np.nan, np.float32)]))
    out = tmp_path / "n.wav"
    with pytest.raises(RunError, match=r"NaN or infinite samples from .* after 0.5 s: the 0.5 s written are kept "
                                       r"as a valid WAV in .*n.partial.wav"):
        gen.generate(trained_run, seconds=1.0, out=out, score=False)
    np.testing.assert_array_equal(sf.read(gen.partial_path(out), dtype="float32")[0], good[0])
    assert not out.exists()


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
