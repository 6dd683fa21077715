"""The path through the song saved beside a generated WAV: it names where every output frame came from."""

import warnings

import numpy as np
import pytest
import soundfile as sf

from framegen import audio, songpath
from framegen import generate as gen
from framegen.config import load_config
from framegen.errors import FramegenWarning
from framegen.evaluate import evaluate_files


def test_the_sidecar_reproduces_the_wav_from_the_song_when_nothing_is_smoothed(vq_run, tmp_path):
    run_dir, song_file = vq_run
    (g,) = gen.generate(run_dir, seconds=1.3, crossfade_ms=0.0, out=tmp_path / "p.wav", score=False)
    path = songpath.load(g.path)
    cfg = load_config(run_dir)
    f = cfg.data.frame_size
    assert path is not None and (path.frame_size, path.sample_rate) == (f, cfg.data.sample_rate)
    song = audio.denormalise(audio.load_song_for(cfg), cfg.norm)
    rebuilt = np.concatenate([song[p : p + f] for p in path.positions])[: round(1.3 * cfg.data.sample_rate)]
    wav, _ = sf.read(g.path, dtype="float32")
    np.testing.assert_allclose(wav, np.clip(rebuilt, -1, 1), atol=1.5 / 32768)  # 16-bit rounding
    assert path.prompt_start >= 0 and np.all(path.positions + f <= len(song))
    jumps = path.jumps
    assert np.all(path.positions[jumps] != path.positions[jumps - 1] + f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FramegenWarning)  # generate's own sidecar fits its song
        scored = evaluate_files(g.path, song_file)
    runs = np.diff(np.concatenate([[0], jumps, [len(path.positions)]]))
    assert scored.longest_copy_s == pytest.approx(runs.max() * f / cfg.data.sample_rate)
    assert (scored.jump_score_exact is None) == (len(jumps) == 0) and scored.jumps_exact is not None


def test_a_missing_or_unreadable_sidecar_is_none(tmp_path):
    assert songpath.load(tmp_path / "x.wav") is None
    songpath.sidecar(tmp_path / "x.wav").write_bytes(b"junk")
    assert songpath.load(tmp_path / "x.wav") is None
    saved = songpath.SongPath(positions=np.array([0, 40, 400, 440]), frame_size=40, sample_rate=8000,
                              prompt_start=12, marks={"toward": 1.5})
    songpath.save(tmp_path / "y.wav", saved)
    back = songpath.load(tmp_path / "y.wav")
    np.testing.assert_array_equal(back.positions, saved.positions)
    assert (back.prompt_start, back.marks) == (12, {"toward": 1.5}) and list(back.jumps) == [2]


def test_a_path_fits_only_a_song_at_its_rate_that_holds_its_frames():
    path = songpath.SongPath(positions=np.array([0, 40, 400, -1]), frame_size=40, sample_rate=8000)
    assert path.misfit(sample_rate=8000, song_samples=440) is None
    assert "16000 Hz" in path.misfit(sample_rate=16000, song_samples=10**6)
    assert "past the song" in path.misfit(sample_rate=8000, song_samples=300)
    assert songpath.fitting(None, sample_rate=8000, song_samples=440) == (None, 0)
    with pytest.warns(FramegenWarning, match="sidecar is ignored"):
        assert songpath.fitting(path, sample_rate=16000, song_samples=440) == (None, 0)
    assert songpath.fitting(path, sample_rate=8000, song_samples=440)[1] == 40


def test_marks_and_likeness_curves_survive_a_save(tmp_path):
    path = songpath.SongPath(positions=np.arange(10) * 40, frame_size=40, sample_rate=8000, prompt_start=3,
                             marks={"toward": 1.5, "ending": 9.0}, likeness={"toward": np.linspace(0, 1, 10)})
    songpath.save(tmp_path / "x.wav", path)
    got = songpath.load(tmp_path / "x.wav")
    assert got.marks == path.marks and got.prompt_start == 3
    np.testing.assert_allclose(got.likeness["toward"], np.linspace(0, 1, 10), rtol=1e-6)
