"""Every bad input of README's "Bad input and faults" table, through the real CLI: its message and exit code.

Refused inputs give one line ``Error: ...`` and exit 1 (file, run) or 2 (an option out of range); accepted oddities
(extreme rates, 6 channels, 8/24-bit, a header claiming more frames than the file has) load with the decoded values
checked. A few go through a real ``framegen`` process to prove the exit code and that no traceback escapes.
"""

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from framegen import audio, data
from framegen.cli import cli
from framegen.config import DataConfig, load_config, save_config
from framegen.train import train_song
from tests.conftest import sine_song, tiny_config, write

RATE = 8000


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_refused(r, fragment: str, code: int = 1):
    assert r.exit_code == code, (r.exit_code, r.output)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], r.output
    assert "Traceback" not in r.output


def wav_bytes(y, rate=RATE, subtype="PCM_16", fmt="WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def raw_wav(pcm: bytes, *, bits: int, channels: int = 1, rate: int = RATE, claim: int | None = None) -> bytes:
    """A PCM WAV written byte by byte (not by the library under test); ``claim`` overrides the data chunk size."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    size = len(pcm) if claim is None else claim
    return b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + \
        struct.pack("<I", size) + pcm


# ------------------------------------------------------------------------------------------------ song files refused

SONG_CASES = {
    "missing file": (lambda p: p, "song file not found"),
    "directory": (lambda p: (p.mkdir(), p)[1], "is a directory, not an audio file"),
    "zero-byte file": (lambda p: (p.write_bytes(b""), p)[1], "is empty (0 bytes)"),
    "random bytes named .wav": (lambda p: (p.write_bytes(np.random.default_rng(0).bytes(5000)), p)[1],
                                "cannot read"),
    "truncated WAV header": (lambda p: (p.write_bytes(wav_bytes(sine_song(1.0))[:30]), p)[1],
                             "No 'data' chunk marker"),
    "text file": (lambda p: (p.with_suffix(".txt").write_text("not audio\n" * 50), p.with_suffix(".txt"))[1],
                  "Format not recognised"),
    "PNG image": (lambda p: (p.with_suffix(".png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
                             p.with_suffix(".png"))[1], "Format not recognised"),
    "WAV with no audio frames": (lambda p: (p.write_bytes(wav_bytes(np.zeros(0, np.float32))), p)[1],
                                 "holds no audio samples"),
    "all-zero audio": (lambda p: write(p, np.zeros(80_000, np.float32)), "is silent"),
    "float WAV with NaN": (lambda p: write(p, np.where(np.arange(80_000) % 7 == 0, np.nan, 0.3).astype(np.float32),
                                           subtype="FLOAT"), "contains NaN or infinite samples"),
    "1-sample song": (lambda p: write(p, np.array([0.5], np.float32)), "song is too short: 1 samples"),
    "song shorter than one F x T example": (lambda p: write(p, sine_song(2.0)),
                                            "needs 2,040 samples in each: use a song of at least 2.6 s"),
    "a pipe instead of a file": (lambda p: (os.mkfifo(p), p)[1], "is not a regular file"),
}


@pytest.mark.parametrize("case", list(SONG_CASES))
def test_bad_song_is_refused_in_one_line(tmp_path, case):
    make, fragment = SONG_CASES[case]
    song = make(tmp_path / "song.wav")
    r = invoke("train", song, "-F", "40", "-T", "50", "--sample-rate", RATE)
    assert_refused(r, fragment)


def test_too_short_song_says_which_sizes_fit(tmp_path):
    song = write(tmp_path / "song.wav", sine_song(12.0))  # a 9,600-sample validation tail
    r = invoke("train", song, "-F", "800", "-T", "100", "--sample-rate", RATE)
    assert_refused(r, "needs 80,800 samples in each: try --frame-size 95")
    # the "at least" length is rounded up, so a song of that length fits (2.55 s would print as 2.5)
    assert data.fits(int(2.6 * RATE), DataConfig(frame_size=40, seq_len=50, sample_rate=RATE))
    assert not data.fits(int(2.5 * RATE), DataConfig(frame_size=40, seq_len=50, sample_rate=RATE))


# ------------------------------------------------------------------------------------------------ accepted oddities


def test_header_claiming_more_frames_than_present_loads_the_frames_present(tmp_path):
    pcm = (np.arange(4000, dtype=np.int16) * 7).tobytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(raw_wav(pcm, bits=16, claim=10 * len(pcm)))  # says 40,000 frames, has 4,000
    y, sr = audio.read_audio(path)
    np.testing.assert_array_equal(y, np.arange(4000) * 7 / 32768)
    r = invoke("info", path, "--sample-rate", RATE)
    assert r.exit_code == 0 and "0.50 s, 8000 Hz, 1 channel(s)" in r.output, r.output


@pytest.mark.parametrize("rate", [4000, 192_000])
def test_extreme_sample_rates_are_accepted_and_resampled(tmp_path, rate):
    t = np.arange(int(1.0 * rate)) / rate
    path = write(tmp_path / f"r{rate}.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, "FLOAT")
    y, orig = audio.load_song(path, 16_000)
    assert orig == rate and len(y) == 16_000
    t16 = np.arange(16_000) / 16_000
    np.testing.assert_allclose(y[500:-500], 0.5 * np.sin(2 * np.pi * 440 * t16)[500:-500], atol=2e-3)
    r = invoke("info", path, "--sample-rate", 16_000)
    assert r.exit_code == 0 and f"{rate} Hz" in r.output and "16,000 samples" in r.output, r.output


def test_six_channels_are_mixed_down(tmp_path):
    y = sine_song(0.5)
    chans = np.stack([y * (k - 2) / 4 for k in range(6)], axis=1)  # mean of (k-2)/4 over k=0..5 is 1/8
    path = write(tmp_path / "six.wav", chans, subtype="FLOAT")
    got, _ = audio.read_audio(path)
    np.testing.assert_allclose(got, y / 8, atol=1e-7)
    r = invoke("info", path, "--sample-rate", RATE)
    assert r.exit_code == 0 and "6 channel(s)" in r.output


def test_unsigned_8_bit_and_24_bit_decode_to_the_right_values(tmp_path):
    u8 = bytes([0, 64, 128, 192, 255])  # offset binary: 128 is zero
    (tmp_path / "u8.wav").write_bytes(raw_wav(u8, bits=8))
    y, _ = audio.read_audio(tmp_path / "u8.wav")
    np.testing.assert_array_equal(y, np.array([-128, -64, 0, 64, 127]) / 128)

    ints = [0, 1, -1, 2**23 - 1, -(2**23), 1234567]
    pcm24 = b"".join(v.to_bytes(3, "little", signed=True) for v in ints)
    (tmp_path / "s24.wav").write_bytes(raw_wav(pcm24, bits=24))
    y, _ = audio.read_audio(tmp_path / "s24.wav")
    np.testing.assert_array_equal(y, np.array(ints, np.float64) / 2**23)

    stereo24 = b"".join(a.to_bytes(3, "little", signed=True) + b.to_bytes(3, "little", signed=True)
                        for a, b in [(2**22, 0), (-(2**22), 2**21)])
    (tmp_path / "st24.wav").write_bytes(raw_wav(stereo24, bits=24, channels=2))
    y, _ = audio.read_audio(tmp_path / "st24.wav")
    np.testing.assert_array_equal(y, [0.25, -0.125])


LONG_LOAD = r"""
import json, resource, sys, time, tracemalloc
from framegen import audio
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tracemalloc.start()
t0 = time.monotonic()
y, sr = audio.read_audio(sys.argv[1])
seconds = time.monotonic() - t0
traced = tracemalloc.get_traced_memory()[1]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"n": len(y), "sr": sr, "bytes": y.nbytes, "traced_peak": traced, "rss_growth": peak - base,
                  "seconds": seconds, "head": y[:4000].tolist(), "tail": y[-4000:].tolist()}))
"""


@pytest.mark.slow
def test_thirty_minute_stereo_file_loads_within_3x_its_mono_float32_size(tmp_path):
    """30 min of 44.1 kHz 16-bit stereo (318 MB) decodes in blocks, mixed down per block: the load's peak memory
    (numpy allocations traced, and the process's peak RSS growth) stays under 3x the 318 MB mono float32 result."""
    t_start = time.monotonic()
    rate, frames = 44_100, 30 * 60 * 44_100
    path = tmp_path / "long.wav"
    period = np.arange(44_100)  # one second: 441 Hz left, its negative at half level right
    left = np.round(16_000 * np.sin(2 * np.pi * 441 * period / rate)).astype(np.int16)
    second = np.stack([left, -(left // 2)], axis=1)
    with sf.SoundFile(str(path), "w", rate, 2, "PCM_16") as f:
        block = np.tile(second, (60, 1))
        for _ in range(frames // len(block)):
            f.write(block)
    p = subprocess.run([sys.executable, "-c", LONG_LOAD, str(path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    if time.monotonic() - t_start > 60:
        pytest.skip(f"writing and loading took {time.monotonic() - t_start:.0f} s on this machine (> 60 s)")
    m = json.loads(p.stdout)
    assert m["n"] == frames and m["sr"] == rate
    expected = (left - (left // 2)).astype(np.float64) / 2 / 32768  # the mean of the two channels
    np.testing.assert_allclose(m["head"], expected[:4000], atol=1e-7)
    np.testing.assert_allclose(m["tail"], expected[-4000:], atol=1e-7)
    assert m["traced_peak"] <= 3 * m["bytes"], m["traced_peak"] / m["bytes"]
    assert m["rss_growth"] <= 3 * m["bytes"], m["rss_growth"] / m["bytes"]


# ------------------------------------------------------------------------------------------------ options out of range

TRAIN_OPTIONS = [
    (["-F", "39"], "frame size 39 is outside 40-40,000"),
    (["-F", "40001"], "frame size 40001 is outside"),
    (["-T", "49"], "sequence length 49 is outside 50-10,000"),
    (["-T", "10001"], "sequence length 10001 is outside"),
    (["--hidden", "198"], "hidden size 198 is outside 199-256"),
    (["--hidden", "257"], "hidden size 257 is outside"),
    (["--layers", "0"], "layer count 0 is outside 1-8"),
    (["--epochs", "0"], "epochs must be a positive whole number"),
    (["--batch-size", "0"], "batch size must be a positive whole number"),
    (["--lr", "0"], "learning rate must be a positive number"),
    (["--lr", "nan"], "learning rate must be a positive number"),
    (["--lr", "inf"], "learning rate must be a positive number"),
    (["--sample-rate", "999"], "sample rate 999 is outside 1,000-192,000"),
    (["--sample-rate", "192001"], "sample rate 192001 is outside"),
    (["--val-fraction", "0"], "validation fraction 0.0 must be in (0, 0.5)"),
    (["--val-fraction", "0.5"], "validation fraction 0.5 must be in (0, 0.5)"),
    (["--max-minutes", "-1"], "max minutes must be a positive number"),
    (["--sample-every", "-1"], "--sample-every must be 0 or more"),
    (["--feedback-prob", "1.5"], "--feedback-prob must be in [0, 1]"),
    (["--input-noise", "-0.1"], "--input-noise must be 0 or more"),
]


@pytest.mark.parametrize("args,fragment", TRAIN_OPTIONS, ids=[" ".join(a) for a, _ in TRAIN_OPTIONS])
def test_train_options_out_of_range_exit_2(tmp_path, args, fragment):
    r = invoke("train", tmp_path / "song.wav", *args)  # checked before the song is even opened
    assert_refused(r, fragment, code=2)


def test_train_argument_mistakes_exit_2(tmp_path):
    assert_refused(invoke("train", tmp_path / "a.wav", "--resume", tmp_path), "either SONG or --resume", 2)
    assert_refused(invoke("train"), "no song given", 2)
    r = invoke("train", tmp_path / "a.wav", "-F", "forty")
    assert r.exit_code == 2 and "Invalid value for '--frame-size'" in r.output


# ------------------------------------------------------------------------------------------------ generate


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One trained run (1 epoch of the smallest model) for the generate cases."""
    tmp = tmp_path_factory.mktemp("gen")
    song = write(tmp / "song.wav", sine_song(3.0))
    return train_song(song, tiny_config(epochs=1, sample_every=0), run_dir=tmp / "run").run_dir


def test_generate_with_a_missing_checkpoint_is_refused(tmp_path, run_dir):
    empty = tmp_path / "no-ckpt"
    empty.mkdir()
    shutil.copy(run_dir / "config.json", empty / "config.json")
    assert_refused(invoke("generate", "--run", empty, "--seconds", "0.1"), "has no last checkpoint")


def test_generate_with_a_checkpoint_from_another_config_is_refused(tmp_path, run_dir):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    cfg = load_config(other)
    save_config(replace(cfg, data=replace(cfg.data, frame_size=80)), other)  # a config that checks out, not the run's
    assert_refused(invoke("generate", "--run", other, "--seconds", "0.1"), "does not match its config.json")


def test_generate_run_mistakes_are_refused(tmp_path, run_dir):
    assert_refused(invoke("generate", "--run", tmp_path, "--seconds", "0.1"), "has no config.json")
    (tmp_path / "config.json").write_text("{not json")
    assert_refused(invoke("generate", "--run", tmp_path), "is not a valid framegen config")
    assert_refused(invoke("train", "--resume", tmp_path / "nothing"), "has no config.json")


@pytest.mark.parametrize("args,fragment", [
    (["--seconds", "0"], "--seconds must be positive"),
    (["--seconds", "nan"], "--seconds must be positive"),
    (["--streams", "0"], "--streams must be at least 1"),
    (["--prompt-offset", "-1"], "--prompt-offset must be 0 or more seconds"),
    (["--prompt-offset", "2.9"], "runs past the song's end"),
    (["--seconds", "inf"], "--seconds must be positive"),
    (["--seconds", "75h"], "--seconds 270000 at 8000 Hz passes the WAV format's 4 GB limit: pass at most 268,435 "
                           "seconds"),
])
def test_generate_options_out_of_range_exit_2(run_dir, args, fragment):
    assert_refused(invoke("generate", "--run", run_dir, "--seconds", "0.1", *args), fragment, code=2)


def test_generate_prompt_file_mistakes_are_refused(tmp_path, run_dir):
    assert_refused(invoke("generate", "--run", run_dir, "--prompt-file", tmp_path / "none.wav"),
                   "prompt file not found: ")
    short = write(tmp_path / "short.wav", sine_song(0.1))
    assert_refused(invoke("generate", "--run", run_dir, "--prompt-file", short),
                   "short.wav is too short: 0.10 s at 8000 Hz, but 50 prompt frames of 40 samples need 0.25 s: pass "
                   "a longer file, or fewer --prompt-frames")
    assert_refused(invoke("generate", "--run", run_dir, "--prompt-file", short, "--prompt-frames", "10",
                          "--prompt-offset", "0.08"), "from --prompt-offset 0.08 s need 0.13 s")


def test_generate_without_room_on_disk_is_refused_before_generating(tmp_path, run_dir, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "x.wav"
    assert_refused(invoke("generate", "--run", run_dir, "--seconds", "1", "--out", out),
                   f"the output needs 0.00 GB and {tmp_path} has 0.00 GB free: free disk space")
    assert not out.exists() and not (tmp_path / "x.partial.wav").exists()


def test_out_to_an_existing_file_is_refused_unless_overwrite(tmp_path, run_dir):
    out = tmp_path / "x.wav"
    out.write_bytes(b"keep me")
    r = invoke("generate", "--run", run_dir, "--seconds", "0.1", "--out", out)
    assert_refused(r, "already exists: pass --overwrite")
    assert out.read_bytes() == b"keep me"
    r = invoke("generate", "--run", run_dir, "--seconds", "0.1", "--out", out, "--overwrite")
    assert r.exit_code == 0, r.output
    y, sr = sf.read(out)
    assert sr == RATE and len(y) == 800 and np.all(np.isfinite(y))


# ------------------------------------------------------------------------------------------------ the real process


@pytest.mark.slow
def test_real_process_prints_one_line_and_the_exit_code(tmp_path):
    """No traceback and the documented exit codes from the installed entry point (run side by side)."""
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"\xff\xfb\x90\x00" + np.random.default_rng(2).bytes(3000))  # probed as MP3: mpg123 notes
    cases = [
        (["train", tmp_path / "missing.wav"], 1, "song file not found"),
        (["train", garbage], 1, "cannot read"),
        (["train", tmp_path / "x.wav", "--hidden", "512"], 2, "hidden size 512 is outside 199-256"),
        (["generate", "--run", tmp_path], 1, "has no config.json"),
    ]
    procs = [subprocess.Popen([sys.executable, "-m", "framegen.cli", *map(str, args)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args, _, _ in cases]
    for p, (args, code, fragment) in zip(procs, cases):
        out, err = p.communicate(timeout=120)
        assert p.returncode == code, (args, err)
        assert out == "" and err.splitlines() == [err.splitlines()[0]], (args, err)  # one line, nothing else
        assert err.startswith("Error: ") and fragment in err, (args, err)
