"""framegen.generate: where the prompt comes from, reading a run's parts, and the edge that streams WAVs to disk
(overwrite, streams, precision, Ctrl-C and SIGTERM, non-finite audio, scoring)."""

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from framegen import generate as gen
from framegen.audio import load_song_for
from framegen.cli import cli
from framegen.config import GenerateConfig
from framegen.data import split_song, stream_prompts
from framegen.errors import RunError, UsageError
from framegen.stream import continue_audio
from framegen.train import train_song
from tests.conftest import RATE, tiny_config

F = 40


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


def test_generated_audio_continues_from_the_prompt(trained_run, tmp_path):
    """The first generated sample follows the prompt's last one: on a smooth sine the jump is small."""
    from framegen.config import load_config

    cfg = load_config(trained_run)
    song = load_song_for(cfg)
    start = gen.prompt_start(len(song), cfg, 2.0, 50)
    (g,) = gen.generate(trained_run, seconds=0.5, prompt_offset=2.0, prompt_frames=50, out=tmp_path / "b.wav")
    y, _ = sf.read(g.path, dtype="float32")
    prompt_end = start + 50 * cfg.data.frame_size
    raw = song * cfg.norm.std + cfg.norm.mean
    step = np.abs(np.diff(raw)).mean()
    assert abs(y[0] - raw[prompt_end]) < 4 * step + 0.05  # close to what really follows the prompt...
    assert not np.allclose(y[:400], raw[start:start + 400], atol=1e-3)  # ...and not the prompt itself


def test_generate_refuses_existing_output_unless_overwrite(trained_run, tmp_path):
    out = tmp_path / "c.wav"
    gen.generate(trained_run, seconds=0.1, out=out)
    with pytest.raises(RunError, match="--overwrite"):
        gen.generate(trained_run, seconds=0.1, out=out)
    gen.generate(trained_run, seconds=0.1, out=out, overwrite=True)


def test_a_prompt_past_the_end_is_refused(trained_run):
    with pytest.raises(UsageError, match="--prompt-offset"):
        gen.generate(trained_run, seconds=0.1, prompt_offset=11.9)


def test_streams_continue_different_places(trained_run, tmp_path):
    gs = gen.generate(trained_run, seconds=0.3, streams=3, out=tmp_path / "s.wav", score=False)
    ys = [sf.read(g.path, dtype="float32")[0] for g in gs]
    assert len({g.path for g in gs}) == 3
    assert not np.allclose(ys[0], ys[1]) and not np.allclose(ys[1], ys[2])
    prompts, starts = stream_prompts(np.arange(1000.0), 100, 5, 10, 3)
    assert list(starts) == [100, 150, 200] and prompts[1, 0, 0] == 150  # one prompt length apart when room allows
    with pytest.raises(UsageError, match="no room"):
        stream_prompts(np.arange(1000.0), 950, 5, 10, 3)


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


def test_generate_in_bf16_from_an_fp32_run(trained_run, tmp_path):
    (g32,) = gen.generate(trained_run, seconds=0.5, out=tmp_path / "a.wav", score=False)
    (g16,) = gen.generate(trained_run, seconds=0.5, out=tmp_path / "b.wav", score=False, precision="bf16")
    a, b = sf.read(g32.path)[0], sf.read(g16.path)[0]
    assert len(a) == len(b) == 4000 and np.all(np.isfinite(b))
    assert np.linalg.norm(a - b) < 0.1 * np.linalg.norm(a)


def _int16(path):
    return sf.read(path, dtype="int16")[0]


@pytest.mark.slow
def test_generate_streams_the_same_wav_as_the_in_memory_clip(trained_run, tmp_path):
    """The edge: 1.2345 s written in chunks of 16 frames (not dividing its 247 frames) is the in-memory clip's WAV,
    sample for sample; the partial file is renamed away when done."""
    from framegen.config import load_config

    cfg = load_config(trained_run)
    want = continue_audio(gen.inputs_for(trained_run, cfg.with_options(crossfade_ms=1.0)), 9876)[0]
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
    inputs = gen.inputs_for(run_dir, cfg, GenerateConfig(streams=2, sample_seed=3))
    want = continue_audio(inputs, 8000)
    gs = gen.generate(run_dir, seconds=1.0, streams=2, sample_seed=3, out=tmp_path / "v.wav", chunk_frames=7,
                      score=False)
    assert inputs.units is not None and [g.path.name for g in gs] == ["v-0.wav", "v-1.wav"]
    for g, y in zip(gs, want):
        np.testing.assert_array_equal(_int16(g.path), _int16(write_wav(tmp_path / "m.wav", y, RATE)))


def test_a_prompt_file_of_the_songs_own_excerpt_gives_the_prompt_offset_output(vq_run, tmp_path):
    """The song's held-out audio saved as a file (with a little of what follows, which the crossfade after the
    prompt reads) prompts exactly what --prompt-offset at that place does: same levels (the run's normalisation), same
    frames, same unit selection and overlap-add."""
    from framegen.config import load_config

    run_dir, song = vq_run
    cfg = load_config(run_dir)
    start = split_song(cfg.song_samples, cfg.data).n_train
    need = cfg.data.seq_len * F
    raw, _ = sf.read(song, dtype="float32")
    excerpt = tmp_path / "excerpt.wav"
    sf.write(excerpt, raw[start : start + need + 100], RATE, subtype="PCM_16")
    (a,) = gen.generate(run_dir, seconds=1.5, prompt_offset=start / RATE, out=tmp_path / "a.wav", score=False)
    (b,) = gen.generate(run_dir, seconds=1.5, prompt_file=excerpt, prompt_offset=0, out=tmp_path / "b.wav",
                        score=False)
    np.testing.assert_array_equal(_int16(a.path), _int16(b.path))
    # the default prompt of a file is its last frames: here 100 samples later than the song's
    (c,) = gen.generate(run_dir, seconds=1.5, prompt_file=excerpt, out=tmp_path / "c.wav", score=False)
    assert not np.array_equal(_int16(a.path), _int16(c.path))


def test_a_prompt_file_is_mixed_resampled_and_normalised_with_the_runs_constants(tmp_path):
    """A 44.1 kHz stereo file on a 16 kHz run: mono (the channels' mean), at 16 kHz, in the run's units (its song's
    mean and std), not the file's own."""
    from framegen.config import Norm, RunConfig

    t = np.arange(int(0.5 * 44100)) / 44100
    left, right = 0.2 * np.sin(2 * np.pi * 440 * t), 0.6 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    cfg = RunConfig(norm=Norm(mean=0.1, std=0.5))
    got = gen.load_prompt_file(path, cfg)
    t16 = np.arange(8000) / 16000
    want = (0.4 * np.sin(2 * np.pi * 440 * t16) - 0.1) / 0.5
    assert got.shape == (8000,) and got.dtype == np.float32
    np.testing.assert_allclose(got[200:-200], want[200:-200], atol=2e-3)  # soxr's edges aside


def test_a_too_short_prompt_file_names_the_length_it_needs(tmp_path):
    from framegen.config import RunConfig
    from framegen.errors import AudioError

    cfg = RunConfig()  # F=800, T=100 at 16 kHz: 5 s of prompt
    with pytest.raises(AudioError, match=r"x.wav is too short: 1.00 s at 16000 Hz, but 100 prompt frames of 800 "
                                         r"samples need 5.00 s: pass a longer file, or fewer --prompt-frames"):
        gen.prompt_file_start(16000, cfg, "x.wav", None, 100)
    with pytest.raises(AudioError, match=r"from --prompt-offset 3 s need 8.00 s"):
        gen.prompt_file_start(6 * 16000, cfg, "x.wav", 3.0, 100)
    assert gen.prompt_file_start(6 * 16000, cfg, "x.wav", None, 100) == 16000  # the prompt ends at the file's end
    assert gen.prompt_file_start(6 * 16000, cfg, "x.wav", 0.5, 100) == 8000
    # two streams: the latest start leaving room for both, which stream_prompts then spreads over the file
    start = gen.prompt_file_start(6 * 16000, cfg, "x.wav", None, 100, streams=2)
    _, starts = stream_prompts(np.zeros(6 * 16000, np.float32), start, 100, 800, 2)
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


def test_a_collapsed_mse_run_is_pointed_to_the_vq_mode():
    from framegen.config import ModelConfig, RunConfig

    mse = RunConfig(song="/x/song.wav")
    assert "--output vq" in gen.next_step_hint(mse, ("stuck",))
    assert "/x/song.wav" in gen.next_step_hint(mse, ("silent",))
    assert gen.next_step_hint(mse, ("far_from_song",)) is None
    assert gen.next_step_hint(RunConfig(model=ModelConfig(output="vq")), ("stuck",)) is None
