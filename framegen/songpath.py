"""The path through the song: which song sample each output frame of a generated WAV came from, saved beside the
WAV (``x.path.npz`` next to ``x.wav``) so the listening report can draw it and evaluate can score each jump exactly.
"""

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from framegen.atomic import atomic_path
from framegen.errors import FramegenWarning, RunError

SUFFIX = ".path.npz"
VERSION = 1


@dataclass(frozen=True)
class SongPath:
    """positions: (n,) song sample offset of each output frame (-1: not a frame of the song); frame_size and
    sample_rate of the run; prompt_start: where the prompt was cut from the song (-1: from another file); marks:
    named song times in seconds the output was asked to reach (e.g. "toward", "ending"); likeness: for a passage
    to reach, by its mark's name, (n,) how much each output frame's beat sounds like it (``shape.similarity``).
    """

    positions: np.ndarray
    frame_size: int
    sample_rate: int
    prompt_start: int = -1
    marks: dict = field(default_factory=dict)
    likeness: dict = field(default_factory=dict)

    @property
    def jumps(self) -> np.ndarray:
        """Output frames that do not continue the frame before them in the song (the first frame excluded)."""
        return jumps(self.positions, self.frame_size)

    def misfit(self, *, sample_rate: int, song_samples: int) -> str | None:
        """Why this path cannot be a path through a song of `song_samples` samples at `sample_rate` (a sidecar of
        another run's song or rate), or None when it can."""
        if self.sample_rate != sample_rate:
            return f"its path is at {self.sample_rate} Hz, the clip at {sample_rate} Hz"
        p = self.positions
        if self.frame_size <= 0 or p.ndim != 1 or (len(p) and p.min() < -1):
            return "its path is malformed"
        end = int(p.max(initial=0)) + self.frame_size
        if end > song_samples + self.frame_size:  # a frame of slack: a song resampled may end a few samples short
            return f"its path reaches song sample {end:,}, past the song's {song_samples:,}: not this song"
        return None


def fitting(path: SongPath | None, *, sample_rate: int, song_samples: int) -> tuple[np.ndarray | None, int]:
    """(positions, frame_size) of `path` when it fits a song of `song_samples` samples at `sample_rate`, else
    (None, 0): no path, or one that does not fit, ignored with a FramegenWarning that says why."""
    if path is None:
        return None, 0
    why = path.misfit(sample_rate=sample_rate, song_samples=song_samples)
    if why:
        warnings.warn(f"the clip's path sidecar is ignored: {why}", FramegenWarning, stacklevel=2)
        return None, 0
    return path.positions, path.frame_size


def jumps(positions: np.ndarray, frame_size: int) -> np.ndarray:
    """Indices into `positions` (n,) (song sample of each output frame, -1: not the song's) of the frames that do
    not continue the frame before them in the song, the first frame excluded: (jumps,) int."""
    p = np.asarray(positions, np.int64)
    return np.flatnonzero((p[1:] != p[:-1] + frame_size) | (p[1:] < 0)) + 1


def sidecar(wav: Path) -> Path:
    wav = Path(wav)
    return wav.with_name(wav.stem + SUFFIX)


def save(wav: Path, path: SongPath) -> Path:
    """Write the sidecar of ``wav`` atomically."""
    out = sidecar(wav)
    marks = {f"mark_{k}": np.float64(v) for k, v in path.marks.items()}
    marks.update({f"like_{k}": np.asarray(v, np.float32) for k, v in path.likeness.items()})
    try:
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, version=np.int64(VERSION), positions=np.asarray(path.positions, np.int64),
                     frame_size=np.int64(path.frame_size), sample_rate=np.int64(path.sample_rate),
                     prompt_start=np.int64(path.prompt_start), **marks)
    except OSError as e:
        raise RunError(f"cannot write {out} ({e.strerror or e}): free disk space or choose another --out") from None
    return out


def load(wav: Path) -> SongPath | None:
    """The sidecar of ``wav``, or None when it has none or cannot read it (the path is an extra, never required)."""
    src = sidecar(wav)
    if not src.is_file():
        return None
    try:
        with np.load(src) as z:
            if int(z["version"]) != VERSION:
                return None
            marks = {k[len("mark_"):]: float(z[k]) for k in z.files if k.startswith("mark_")}
            likeness = {k[len("like_"):]: np.asarray(z[k], np.float32) for k in z.files if k.startswith("like_")}
            return SongPath(positions=np.asarray(z["positions"], np.int64), frame_size=int(z["frame_size"]),
                            sample_rate=int(z["sample_rate"]), prompt_start=int(z["prompt_start"]), marks=marks,
                            likeness=likeness)
    except (OSError, KeyError, ValueError):
        return None
