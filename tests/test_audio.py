import numpy as np
import pytest
import soundfile as sf

from framegen import audio
from framegen.config import Norm
from framegen.errors import AudioError, RunError
from tests.conftest import sine_song, write


def test_stereo_is_mixed_to_mono_and_resampled(tmp_path):
    y = sine_song(2.0, 8000)
    stereo = np.stack([y, 0.5 * y], axis=1)
    path = write(tmp_path / "s.flac", stereo, 8000)
    mono, orig = audio.load_song(path, 16000)
    assert orig == 8000
    assert len(mono) == 32000
    np.testing.assert_allclose(mono[1000:31000:2], 0.75 * y[500:15500], atol=3e-3)


@pytest.mark.parametrize("subtype,tol", [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-8),
                                         ("FLOAT", 0), ("DOUBLE", 0)])
def test_every_sample_format_decodes_to_the_same_values(tmp_path, subtype, tol):
    y = sine_song(0.5, 8000)
    path = write(tmp_path / "x.wav", y, 8000, subtype=subtype)
    got, _ = audio.read_audio(path)
    np.testing.assert_allclose(got, y, atol=tol + 1e-7)


def test_six_channels_are_averaged(tmp_path):
    y = sine_song(0.5, 8000)
    chans = np.stack([y * k / 6 for k in range(6)], axis=1)
    got, _ = audio.read_audio(write(tmp_path / "six.wav", chans, 8000, subtype="FLOAT"))
    np.testing.assert_allclose(got, y * np.mean(np.arange(6) / 6), atol=1e-6)


def test_ogg_is_read(tmp_path):
    path = write(tmp_path / "x.ogg", sine_song(1.0, 8000), 8000, subtype="VORBIS")
    got, sr = audio.read_audio(path)
    assert sr == 8000 and abs(len(got) - 8000) < 100


def test_normalise_round_trip_uses_whole_song_constants():
    y = sine_song(1.0) + 0.1
    norm = audio.norm_of(y)
    z = audio.normalise(y, norm)
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5
    np.testing.assert_allclose(audio.denormalise(z, norm), y, atol=1e-6)


@pytest.mark.parametrize("make,fragment", [
    (lambda p: p, "not found"),
    (lambda p: (p.mkdir(), p)[1], "is a directory"),
    (lambda p: (p.write_bytes(b""), p)[1], "empty"),
    (lambda p: (p.write_bytes(np.random.default_rng(0).bytes(5000)), p)[1], "cannot read"),
    (lambda p: write(p, np.zeros(8000, np.float32)), "silent"),
    (lambda p: write(p, np.full(8000, np.nan, np.float32), subtype="FLOAT"), "NaN"),
])
def test_bad_song_files_raise_audio_errors(tmp_path, make, fragment):
    path = make(tmp_path / "bad.wav")
    with pytest.raises(AudioError, match=fragment):
        audio.load_song(path, 8000)


def test_write_wav_refuses_nonfinite_and_existing(tmp_path):
    with pytest.raises(RunError, match="NaN"):
        audio.write_wav(tmp_path / "a.wav", np.array([0.0, np.nan]), 8000)
    p = audio.write_wav(tmp_path / "a.wav", np.zeros(10), 8000)
    with pytest.raises(RunError, match="--overwrite"):
        audio.write_wav(p, np.zeros(10), 8000, overwrite=False)
    y, sr = sf.read(p, dtype="int16")
    assert sr == 8000 and len(y) == 10


def test_norm_is_plain_data():
    assert Norm(1.0, 2.0) == Norm(mean=1.0, std=2.0)
