"""Audio in and out: read any song file to mono float32 at a chosen rate, normalise it and undo that, write WAV.

Reading goes through soundfile (WAV, FLAC, OGG, MP3 via libsndfile) block by block, mixing down as it goes so a
long stereo file never sits in memory at full width; the ffmpeg command (audioread's decoder), when installed, is
the fallback for anything else, run with a timeout so a stuck decoder cannot hang training.
"""

import errno
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from framegen.atomic import atomic_path
from framegen.config import Norm, RunConfig
from framegen.errors import AudioError, RunError

BLOCK_FRAMES = 1 << 20  # mono frames per block while reading: bounds the extra memory of a multi-channel file
FFMPEG_TIMEOUT_S = 300  # the fallback decoder is killed after this (a healthy ffmpeg decodes an hour in seconds)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        frames = f.frames if f.frames > 0 else None
        parts = []
        total = 0
        per_block = max(1, BLOCK_FRAMES // max(f.channels, 1))  # a header may claim up to 1024 channels
        while True:
            block = f.read(per_block, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            parts.append(block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy())
            total += block.shape[0]
            if frames is not None and total >= frames:
                break
    y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return y, sr


def _read_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Decode with the ffmpeg command (M4A/AAC, WMA, ...) to mono float32; LookupError when it is not installed.

    A subprocess with a timeout rather than librosa/audioread, whose ffmpeg and GStreamer readers can block forever
    on a decoder that stops talking.
    """
    import re
    import subprocess

    exe = shutil.which("ffmpeg")
    if exe is None:
        raise LookupError("ffmpeg is not installed")
    cmd = [exe, "-nostdin", "-hide_banner", "-i", f"file:{path.absolute()}", "-vn", "-ac", "1", "-f", "f32le",
           "-acodec", "pcm_f32le", "-"]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ValueError(f"ffmpeg did not finish within {FFMPEG_TIMEOUT_S} s") from None
    err = p.stderr.decode("utf-8", "replace")
    rate = re.search(r"Audio: .*?(\d+) Hz", err)
    if p.returncode != 0 or rate is None:
        lines = [line.strip() for line in err.splitlines() if line.strip()]
        raise ValueError(f"ffmpeg: {lines[-1] if lines else 'no audio stream'}")
    return np.frombuffer(p.stdout, "<f4", count=len(p.stdout) // 4).astype(np.float32), int(rate.group(1))


@contextmanager
def _c_stderr_silenced():
    """Mute fd 2 while libsndfile decodes: its MP3 decoder (mpg123) prints 'Note: Illegal Audio-MPEG-Header' lines
    straight to it when probing a corrupt file, around the one-line error the user should see."""
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _reason(e: Exception, path: Path) -> str:
    """libsndfile's complaint without the path it repeats; its 'does not exist' means 'unrecognised' here."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    text = text.replace(f"Error opening {str(path)!r}: ", "")
    return "unrecognised or corrupt audio data" if "does not exist" in text else text.rstrip(".")


def read_audio(path, *, allow_nonfinite: bool = False, what: str = "song file") -> tuple[np.ndarray, int]:
    """Decode a file to mono float32 at its own rate. Raises AudioError naming the file (as ``what``) and the problem.

    NaN/inf samples are refused unless ``allow_nonfinite`` (evaluate counts them in generated audio)."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{what} not found: {path} (check the path)")
    if path.is_dir():
        raise AudioError(f"{path} is a directory, not an audio file: pass a WAV, FLAC, OGG or MP3 file")
    if not path.is_file():  # a pipe or a device: reading it could block forever
        raise AudioError(f"{path} is not a regular file (a pipe or device): save the audio to a file first")
    if path.stat().st_size == 0:
        raise AudioError(f"{path} is empty (0 bytes): pass a WAV, FLAC, OGG or MP3 file with audio in it")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path} is not readable: check its permissions")
    try:
        with _c_stderr_silenced():
            y, sr = _read_soundfile(path)
    except Exception as first:  # noqa: BLE001 - libsndfile raises many types; fall back before giving up
        reason = _reason(first, path)
        hint = "pass a WAV, FLAC, OGG or MP3 file"
        try:
            y, sr = _read_ffmpeg(path)
        except LookupError:
            raise AudioError(f"cannot read {path} as audio ({reason}): {hint} (or install ffmpeg for other "
                             f"formats)") from None
        except Exception as second:  # noqa: BLE001
            raise AudioError(f"cannot read {path} as audio ({reason}; {second}): {hint}") from None
    if y.size == 0:
        raise AudioError(f"{path} holds no audio samples: pass a file with at least a few seconds of audio")
    if not allow_nonfinite and not np.all(np.isfinite(y)):
        raise AudioError(f"{path} contains NaN or infinite samples: re-export it as 16-bit PCM")
    return y, int(sr)


def resample(y: np.ndarray, orig_rate: int, rate: int) -> np.ndarray:
    """Resample with soxr (high quality); a no-op when the rates match."""
    if orig_rate == rate:
        return y.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(y, orig_rate, rate, quality="HQ").astype(np.float32, copy=False)


def load_song(path, sample_rate: int, what: str = "song file") -> tuple[np.ndarray, int]:
    """Mono float32 song at ``sample_rate`` and its original rate. Refuses empty and all-silent audio."""
    y, orig = read_audio(path, what=what)
    y = resample(y, orig, sample_rate)
    # a song of a sample or two is too short, not silent: data.check_fits says so with the sizes it needs
    if y.size and float(np.max(np.abs(y))) < 1e-6:
        raise AudioError(f"{path} is silent (every sample is ~0): pass a song with audible sound")
    return y, orig


def norm_of(y: np.ndarray) -> Norm:
    """The whole song's mean and standard deviation (float64 accumulation), used for every batch alike."""
    mean = float(np.mean(y, dtype=np.float64))
    std = float(np.std(y, dtype=np.float64))
    if not std > 0:
        raise AudioError("the song has no variation (constant signal): pass a song with audible sound")
    return Norm(mean=mean, std=std)


def normalise(y: np.ndarray, norm: Norm) -> np.ndarray:
    return ((y - norm.mean) / norm.std).astype(np.float32)


def denormalise(y: np.ndarray, norm: Norm) -> np.ndarray:
    return (np.asarray(y, np.float64) * norm.std + norm.mean).astype(np.float32)


def write_wav(path, y: np.ndarray, sample_rate: int, *, overwrite: bool = True) -> Path:
    """Write 16-bit PCM, clipped to [-1, 1], atomically (temp file + rename). Refuses non-finite audio."""
    import soundfile as sf

    path = Path(path)
    y = np.asarray(y, np.float32)
    if not np.all(np.isfinite(y)):
        raise RunError(f"refusing to write {path}: the audio contains NaN or infinite samples")
    if path.exists() and not overwrite:
        raise RunError(f"{path} already exists: pass --overwrite to replace it, or choose another --out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            sf.write(str(tmp), np.clip(y, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    except (OSError, RuntimeError) as e:
        raise RunError(f"cannot write {path} ({_why(e, path, 2 * y.size)}): free disk space or choose a writable "
                       f"--out") from None
    return path


# libsndfile's sf_command codes (sndfile.h), which soundfile does not name: rewrite the header now.
_SFC_UPDATE_HEADER_NOW = 0x1060
WAV_MAX_BYTES = 2**32 - 1  # a RIFF WAV's sizes are 32-bit


class WavStream:
    """A 16-bit PCM WAV written a piece at a time (soundfile's streaming writer), its header rewritten after every
    piece: the file is a valid WAV of everything written so far at any moment, even after a kill -9 (a reader sees
    the samples the header counts; a piece half-written when the process died lies past them, unread). The one
    exception is the first piece: until its header is rewritten the header counts 0 samples, which libsndfile reads
    as "to the end of the file", so a kill -9 inside the first write keeps whatever part of it reached the disk.

    ``write`` clips to [-1, 1] as ``write_wav`` does and refuses non-finite audio; a write or disk error is a
    ``RunError`` naming the file. Use as a context manager (``close`` finalises the header)."""

    def __init__(self, path, sample_rate: int):
        import soundfile as sf

        self.path, self._closed_frames = Path(path), 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = sf.SoundFile(str(self.path), "w", sample_rate, 1, "PCM_16", format="WAV")
        except (OSError, RuntimeError) as e:
            raise RunError(f"cannot write {self.path} ({_why(e)}): choose a writable --out") from None

    def write(self, y: np.ndarray) -> None:
        from soundfile import _ffi, _snd

        y = np.asarray(y, np.float32)
        if not np.all(np.isfinite(y)):
            raise RunError(f"refusing to write {self.path}: the audio contains NaN or infinite samples")
        try:
            self.file.write(np.clip(y, -1.0, 1.0))
            _snd.sf_command(self.file._file, _SFC_UPDATE_HEADER_NOW, _ffi.NULL, 0)
            self.file.flush()
        except (OSError, RuntimeError) as e:
            raise RunError(f"cannot write {self.path} ({_why(e, self.path, 2 * y.size)}): free disk space or "
                           f"choose another --out") from None

    @property
    def frames(self) -> int:
        """Samples written so far: libsndfile's own count, so a Ctrl-C between two calls of ``write`` cannot make
        it disagree with the file."""
        return self._closed_frames if self.file.closed else int(self.file.tell())

    def close(self) -> None:
        if not self.file.closed:
            self._closed_frames = self.frames
            try:
                self.file.close()
            except (OSError, RuntimeError):
                pass  # the header was rewritten after the last complete piece: the file stands as it is

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _why(e: Exception, path: Path | None = None, size: int = 0) -> str:
    """The reason of a write error; libsndfile reports a full disk as a RuntimeError ("System error.")."""
    reason = getattr(e, "strerror", None) or str(e).strip() or type(e).__name__
    try:
        if path is not None and not isinstance(e, OSError) and shutil.disk_usage(path.parent).free < size + 4096:
            reason = os.strerror(errno.ENOSPC)
    except OSError:
        pass
    return reason


def describe(path) -> dict:
    """Facts about a song file as stored: duration, rate, channels, format (and the decoded length)."""
    import soundfile as sf

    y, sr = read_audio(path)  # validates the file the same way training will
    try:
        info = sf.info(str(path))
        channels, fmt = info.channels, f"{info.format} {info.subtype}"
    except Exception:  # noqa: BLE001 - decoded by the librosa fallback; soundfile knows nothing more
        channels, fmt = None, "decoded by librosa"
    return {"path": str(path), "seconds": len(y) / sr, "sample_rate": sr, "channels": channels, "format": fmt,
            "peak": float(np.max(np.abs(y)))}


def load_song_for(cfg: RunConfig) -> np.ndarray:
    """The run's song, resampled and normalised exactly as in training."""
    if not Path(cfg.song).is_file():
        raise RunError(f"the run's song {cfg.song} is missing: put it back at that path to take a prompt from it")
    y, _ = load_song(cfg.song, cfg.data.sample_rate)
    return normalise(y, cfg.norm)
