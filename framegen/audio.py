"""Audio in and out: read any song file to mono float32 at a chosen rate, normalise it and undo that, write WAV.

Reading goes through soundfile (WAV, FLAC, OGG, MP3 via libsndfile) block by block, mixing down as it goes so a
long stereo file never sits in memory at full width; librosa/audioread is the fallback for anything else.
"""

import os
from pathlib import Path

import numpy as np

from framegen.config import Norm
from framegen.errors import AudioError, RunError

BLOCK_FRAMES = 1 << 20  # frames per block while reading: bounds the extra memory of a multi-channel file


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        frames = f.frames if f.frames > 0 else None
        parts = []
        total = 0
        while True:
            block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            parts.append(block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy())
            total += block.shape[0]
            if frames is not None and total >= frames:
                break
    y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return y, sr


def _read_librosa(path: Path) -> tuple[np.ndarray, int]:
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y, sr = librosa.load(str(path), sr=None, mono=True)
    return y.astype(np.float32), int(sr)


def read_audio(path) -> tuple[np.ndarray, int]:
    """Decode a file to mono float32 at its own rate. Raises AudioError naming the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"song file not found: {path} (check the path)")
    if path.is_dir():
        raise AudioError(f"{path} is a directory, not an audio file: pass a WAV, FLAC, OGG or MP3 file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path} is empty (0 bytes): pass a WAV, FLAC, OGG or MP3 file with audio in it")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path} is not readable: check its permissions")
    try:
        y, sr = _read_soundfile(path)
    except Exception as first:  # noqa: BLE001 - libsndfile raises many types; fall back before giving up
        try:
            y, sr = _read_librosa(path)
        except Exception:  # noqa: BLE001
            reason = str(first).splitlines()[0] if str(first) else type(first).__name__
            raise AudioError(
                f"cannot read {path} as audio ({reason}): pass a WAV, FLAC, OGG or MP3 file"
            ) from None
    if y.size == 0:
        raise AudioError(f"{path} holds no audio samples: pass a file with at least a few seconds of audio")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path} contains NaN or infinite samples: re-export it as 16-bit PCM")
    return y, int(sr)


def resample(y: np.ndarray, orig_rate: int, rate: int) -> np.ndarray:
    """Resample with soxr (high quality); a no-op when the rates match."""
    if orig_rate == rate:
        return y.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(y, orig_rate, rate, quality="HQ").astype(np.float32, copy=False)


def load_song(path, sample_rate: int) -> tuple[np.ndarray, int]:
    """Mono float32 song at ``sample_rate`` and its original rate. Refuses empty and all-silent audio."""
    y, orig = read_audio(path)
    y = resample(y, orig, sample_rate)
    if y.size < 2 or float(np.max(np.abs(y))) < 1e-6:
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
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(str(tmp), np.clip(y, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
        tmp.replace(path)
    except OSError as e:
        raise RunError(f"cannot write {path} ({e.strerror or e}): choose a writable --out") from None
    return path


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
