"""The beat clock: the song's beat grid (tracked once, saved as ``beats.npz`` in the run), the beat position of any
sample, the clock features a model reads beside each frame, and the clock continued past a prompt at the song's tempo.

A beat position is a float in beats: its integer part counts beats from the first tracked one, its fraction is the
phase inside the beat; bars are taken as 4 beats (``BAR``). All positions are in samples of the resampled song.
"""

from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from framegen.atomic import atomic_path
from framegen.checksums import read_npz
from framegen.errors import RunError

BEATS_FILE = "beats.npz"
BEATS_VERSION = 1
BAR = 4  # beats per bar: the tracker gives no downbeats; 4/4 is by far the commonest metre
HOP = 256  # onset-envelope hop of the tracker: 16 ms at 16 kHz
# A tracked beat interval this far off the median starts a new stretch of steady tempo (an inserted or skipped beat,
# measured on drascula track5: 6,400-6,912-sample glitches among 8,448s). Each stretch is fitted by a straight line:
# the tracker quantises beats to its 16 ms hop, and a clock continued from quantised intervals drifts off the song's
# beat by a hop every few bars (rhythm similarity 0.42 vs 0.98 with the fitted grid, track1, measured).
GLITCH = 0.12
MIN_STRETCH = 8  # beats: shorter stretches keep the tracker's own beats
PULSE_MIN = 0.3  # auto turns the clock on when the song's excerpts have a pulse (evaluate's no_pulse threshold)
EXCERPT_S = 30.0  # excerpt length for that decision: what generate writes by default


@dataclass(frozen=True)
class BeatGrid:
    """beats: (N,) sample positions of beats 0..N-1 (fitted, strictly increasing). tempo_bpm at the song's median."""

    beats: np.ndarray
    sample_rate: int

    @property
    def period(self) -> float:
        """Median beat period in samples."""
        return float(np.median(np.diff(self.beats)))

    @property
    def tempo_bpm(self) -> float:
        return 60.0 * self.sample_rate / self.period


def fit_stretches(beats: np.ndarray) -> np.ndarray:
    """Tracked beat positions (N,) in samples, each stretch of steady intervals (none more than GLITCH off the
    median) replaced by its least-squares line: sub-sample positions, strictly increasing. A stretch shorter than
    MIN_STRETCH keeps the tracker's beats."""
    b = beats.astype(np.float64)
    d = np.diff(b)
    med = np.median(d)
    breaks = np.flatnonzero(np.abs(d - med) > GLITCH * med) + 1
    out = b.copy()
    for seg in np.split(np.arange(len(b)), breaks):
        if len(seg) >= MIN_STRETCH:
            slope, icept = np.polyfit(seg, b[seg], 1)
            out[seg] = icept + slope * seg
    return np.maximum.accumulate(out + np.arange(len(out)) * 1e-6)  # strictly increasing for interpolation


def track(y: np.ndarray, sample_rate: int) -> BeatGrid | None:
    """The beat grid of a song ``y`` (N,) at ``sample_rate``; None when the tracker finds fewer than 8 beats."""
    import librosa

    _, beats = librosa.beat.beat_track(y=np.asarray(y, np.float32), sr=sample_rate, hop_length=HOP, units="samples")
    if len(beats) < MIN_STRETCH:
        return None
    return BeatGrid(beats=fit_stretches(np.asarray(beats)), sample_rate=int(sample_rate))


def choose(y: np.ndarray, sample_rate: int) -> str:
    """``--clock auto``: "beat" when the song has a pulse (median pulse of its 30 s excerpts >= PULSE_MIN) and the
    tracker finds its beats, else "none"."""
    from framegen import rhythm

    rate = sample_rate / rhythm.onset_hop(sample_rate)
    env = rhythm.smooth(rhythm.onset_envelope(np.asarray(y, np.float32), sample_rate), rate)
    length = min(len(env), int(EXCERPT_S * rate))
    pulses = [rhythm.pulse(env[s : s + length], rate) for s in rhythm.excerpt_starts(len(env), length)]
    if float(np.median(pulses)) < PULSE_MIN:
        return "none"
    return "none" if track(y, sample_rate) is None else "beat"


def beat_position(grid_beats, samples):
    """Beat positions (float beats) of ``samples`` (...,); linear between beats and extrapolated at the first/last
    interval's period beyond them. Works on numpy or jax arrays (``grid_beats`` (N,) float)."""
    xp = jnp if isinstance(samples, jnp.ndarray) or isinstance(grid_beats, jnp.ndarray) else np
    b = grid_beats
    n = b.shape[0]
    idx = xp.arange(n, dtype=b.dtype)
    inside = xp.interp(samples, b, idx)
    first = (samples - b[0]) / (b[1] - b[0])
    last = (n - 1) + (samples - b[-1]) / (b[-1] - b[-2])
    return xp.where(samples < b[0], first, xp.where(samples > b[-1], last, inside))


def features(pos):
    """Clock features (..., 4) of beat positions ``pos`` (...,): sin/cos of the beat phase and of the bar phase."""
    xp = jnp if isinstance(pos, jnp.ndarray) else np
    beat = 2 * np.pi * pos
    bar = beat / BAR
    return xp.stack([xp.sin(beat), xp.cos(beat), xp.sin(bar), xp.cos(bar)], axis=-1).astype(xp.float32)


def example_features(grid_beats, offsets, seq_len: int, frame_size: int, time_major: bool = True):
    """(T, B, 4) clock features of the inputs of examples starting at ``offsets`` (B,): input frame t is given the
    phase where its target frame starts, offset + (t + 1) F (the moment the model must predict)."""
    t = jnp.arange(1, seq_len + 1, dtype=jnp.int32)
    pos = offsets[None, :] + t[:, None] * frame_size  # (T, B)
    f = features(beat_position(grid_beats, pos.astype(jnp.float32)))
    return f if time_major else jnp.swapaxes(f, 0, 1)


def continued(grid: BeatGrid, start_sample, n_frames: int, frame_size: int, first: int = 0) -> np.ndarray:
    """(S, n) beat positions of n frame starts after sample ``start_sample`` (S,) (each stream's first generated
    frame starts there), continuing the song's beat at the local tempo of the last stretch before it.

    ``first`` skips that many frames: frames first..first+n-1, each computed exactly as in one call from frame 0
    (streamed generation asks for the clock a chunk at a time)."""
    start = np.atleast_1d(np.asarray(start_sample, np.float64))
    b = grid.beats
    i = np.clip(np.searchsorted(b, start) - 1, 1, len(b) - 1)
    local = b[i] - b[i - 1]  # the beat period where the prompt ends: the clock keeps the song's tempo from there
    pos0 = beat_position(b, start)
    return pos0[:, None] + np.arange(first, first + n_frames)[None, :] * frame_size / local[:, None]


def steady(period: float, n_samples: int, sample_rate: int) -> BeatGrid:
    """A grid of beats every ``period`` samples from sample 0, covering ``n_samples``: the clock of audio whose own
    beat the tracker cannot find (a prompt file too short or without a pulse), at the song's tempo."""
    count = max(int(np.ceil(n_samples / period)) + 2, 2)
    return BeatGrid(beats=period * np.arange(count, dtype=np.float64), sample_rate=int(sample_rate))


def of_prompt(y: np.ndarray, sample_rate: int, song: BeatGrid) -> BeatGrid:
    """The beat grid a prompt from another file (``y`` (N,) at the run's rate) continues: its own tracked beats when
    the tracker finds them (the output keeps the prompt's beat and tempo), else a steady grid at the song's tempo
    from the file's start."""
    return track(y, sample_rate) or steady(song.period, len(y), sample_rate)


# ---------------------------------------------------------------------------------------------------- the file


def save(run_dir: Path, grid: BeatGrid) -> Path:
    """Write ``beats.npz`` atomically (temp file + rename)."""
    path = Path(run_dir) / BEATS_FILE
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, version=np.int64(BEATS_VERSION), beats=grid.beats, sample_rate=np.int64(grid.sample_rate))
    except OSError as e:
        raise RunError(f"cannot write {path} ({e.strerror or e}): free disk space or pass a writable --run-dir") \
            from None
    return path


def load(run_dir: Path) -> BeatGrid:
    """The run's beat grid; refuses a damaged file (``checksums.read_npz``: the zip's CRC-32 of every array)."""
    path = Path(run_dir) / BEATS_FILE
    if not path.is_file():
        raise RunError(f"{run_dir} has no {BEATS_FILE} though its config uses the beat clock: retrain the run")
    z = read_npz(path, ("version", "beats", "sample_rate"))
    if int(z["version"]) != BEATS_VERSION:
        raise RunError(f"{path} has version {int(z['version'])}; this framegen reads {BEATS_VERSION}")
    return BeatGrid(beats=np.asarray(z["beats"], np.float64), sample_rate=int(z["sample_rate"]))
