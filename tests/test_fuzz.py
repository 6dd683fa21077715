"""The loader under random and mutated audio bytes: ``audio.read_audio`` returns finite mono float32 or raises
``AudioError``; never another exception, a crash or a hang. Plus the ffmpeg fallback's bounds: absent, it fails
at once; stuck, it is killed at its timeout; working, its output is used.
"""

import faulthandler
import io
import os
import stat
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framegen import audio
from framegen.errors import AudioError

RATE = 8000
_t = np.arange(2000) / RATE
_y = (0.5 * np.sin(2 * np.pi * 330 * _t)).astype(np.float32)
_stereo = np.stack([_y, -0.5 * _y], axis=1)


def _encode(fmt: str, subtype: str, y) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, RATE, format=fmt, subtype=subtype)
    return buf.getvalue()


SEEDS = [  # (bytes, suffix): small valid files of each container the loader reads
    (_encode("WAV", "PCM_16", _stereo), "wav"),
    (_encode("WAV", "FLOAT", _y), "wav"),
    (_encode("WAV", "PCM_U8", _y), "wav"),
    (_encode("WAV", "PCM_24", _stereo), "wav"),
    (_encode("FLAC", "PCM_16", _stereo), "flac"),
    (_encode("OGG", "VORBIS", _y), "ogg"),
    (_encode("MP3", "MPEG_LAYER_III", _y), "mp3"),
]


@st.composite
def mutated(draw):
    """A seed file with 1-6 mutations: bit flips, byte sets (often in the header), cuts, inserts, deletions."""
    data, suffix = SEEDS[draw(st.integers(0, len(SEEDS) - 1))]
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        i = draw(st.integers(0, min(len(data) - 1, draw(st.sampled_from([63, len(data) - 1])))))
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[i] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif kind == "cut":
            del data[i:]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[i : i + draw(st.integers(1, 256))]
    return bytes(data), suffix


random_files = st.tuples(st.binary(min_size=1, max_size=4096), st.sampled_from(["wav", "flac", "ogg", "mp3", "bin"]))


@pytest.fixture
def hang_guard():
    """A hang inside libsndfile cannot be interrupted from Python: dump the stacks and end the run instead."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.mark.slow
def test_loader_never_fails_other_than_audio_error(tmp_path, hang_guard, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # the fallback's ffmpeg, if installed, is exercised below instead
    slowest, outcomes = [], set()

    @settings(max_examples=1000, deadline=None, derandomize=False, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(mutated(), random_files))
    def load(case):
        data, suffix = case
        path = tmp_path / f"fuzz.{suffix}"
        path.write_bytes(data)
        t0 = time.monotonic()
        try:
            y, sr = audio.read_audio(path)
        except AudioError as e:
            assert str(e) and "\n" not in str(e)
            outcomes.add("refused")
        else:
            outcomes.add("loaded")
            assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.ndim == 1 and y.size > 0
            assert np.all(np.isfinite(y)) and isinstance(sr, int) and sr > 0
        slowest.append(time.monotonic() - t0)

    load()
    assert outcomes == {"loaded", "refused"}  # mutants that still decode, and ones that do not
    assert max(slowest) < 10, f"one input took {max(slowest):.1f} s to load or refuse"


def test_every_seed_loads(tmp_path):
    """The mutations start from files the loader reads: each seed decodes to its own signal."""
    for i, (data, suffix) in enumerate(SEEDS):
        path = tmp_path / f"seed{i}.{suffix}"
        path.write_bytes(data)
        y, sr = audio.read_audio(path)
        assert sr == RATE and abs(len(y) - len(_y)) < 1200 and 0.1 < np.max(np.abs(y)) < 1, (suffix, len(y))


def _fake_ffmpeg(tmp_path, body: str):
    """An ``ffmpeg`` on PATH that runs ``body`` (Python) instead: sys.argv is ffmpeg's command line."""
    exe = tmp_path / "bin" / "ffmpeg"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe.parent


def test_ffmpeg_fallback_absent_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + os.urandom(2000))
    t0 = time.monotonic()
    with pytest.raises(AudioError, match="install ffmpeg for other formats"):
        audio.read_audio(path)
    assert time.monotonic() - t0 < 2


def test_ffmpeg_fallback_that_hangs_is_killed_at_its_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(_fake_ffmpeg(tmp_path, "time.sleep(600)")))
    monkeypatch.setattr(audio, "FFMPEG_TIMEOUT_S", 1)
    path = tmp_path / "song.m4a"
    path.write_bytes(os.urandom(2000))
    t0 = time.monotonic()
    with pytest.raises(AudioError, match="ffmpeg did not finish within 1 s"):
        audio.read_audio(path)
    assert time.monotonic() - t0 < 10


def test_ffmpeg_fallback_output_is_used(tmp_path, monkeypatch):
    """What ffmpeg prints (its stream line on stderr, f32le samples on stdout) becomes the song."""
    body = ("sys.stderr.write('  Stream #0:0: Audio: aac (LC), 22050 Hz, stereo, fltp\\n')\n"
            "import array; sys.stdout.buffer.write(array.array('f', [0.25, -0.5, 0.75]).tobytes())")
    monkeypatch.setenv("PATH", str(_fake_ffmpeg(tmp_path, body)))
    path = tmp_path / "song.m4a"
    path.write_bytes(os.urandom(2000))
    y, sr = audio.read_audio(path)
    assert sr == 22050 and y.dtype == np.float32
    np.testing.assert_array_equal(y, [0.25, -0.5, 0.75])
