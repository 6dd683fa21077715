"""Transitions and change at the scale of a beat, for framegen.evaluate: after each moment, does the clip play what
the song plays after that moment (overall, and where the clip jumps to another place), and does it change at all?

Frame statistics and the onset envelope miss both: a random re-sequencing of the song's beats keeps its sound and
its pulse, and a drone holding one chord keeps the song's spectrum. Both are plain in one-beat windows of chroma
(harmony) and MFCC (timbre), z-scored by the song; `transition_metrics` gathers them for one clip against its song.
Where the clip's path through the song is known (framegen.songpath), `jump_scores` scores each jump exactly.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from framegen import songpath
from framegen.spectral import DB_FLOOR, to_db

FEATURE_HOP_S = 0.02
"""20 ms hop of the chroma and MFCC frames: a beat (0.25-1 s) spans 12-50 of them, and the song's windows start at
every frame, so a clip window is matched to within 10 ms whatever its phase against the song's frame grid."""

FEATURE_WINDOW_S = 0.1
"""~100 ms STFT window (a power of two of samples: 128 ms at 16 kHz, 93 ms at 44.1 kHz): 8-11 Hz bins, enough to
tell the semitones of a chroma apart from ~150 Hz up."""

N_MELS = 64
"""Mel bands behind the MFCCs."""

N_MFCC = 13
"""MFCC 0-12 (the loudness and the spectral envelope's broad shape) beside the 12 chroma bins: timbre and harmony
weigh about equally once each dimension is z-scored."""

STEPS_PER_BEAT = 4
"""Clip windows start every quarter beat: a jump falls anywhere against the clip's window grid, and each phase is
measured; a jump is then seen by about 4 consecutive steps (one beat of them), so the share of steps that jump
counts jumps per beat (up to 1: jumping every beat or faster reads the same)."""

ON_PATH_BEATS = 0.25
"""The clip stays on the song's path when the song window nearest to its next beat lies within a quarter beat of
one beat after the song window nearest to this one; anything else is a jump to another place of the song."""

TIE = 0.01
"""Song windows within 0.01 unit of the nearest one are as near: a song that repeats itself exactly (a loop, the demo
song) has several places a clip window sounds like, and the clip stays on the song's path if it goes on from any of
them (one of them alone, an excerpt of such a song read as jumping at 0.4 of its steps between identical places)."""

RANDOM_PAIRS = 4096
"""Random pairs of song windows (fixed seed) whose median distance is the unit of every distance here: a transition
distance of 1 is as far as two random moments of the song are apart. The median of 4,096 is stable to ~1%."""

SHUFFLED_BEATS = 128
"""The shuffled reference plays 128 beats (about a minute), whatever the clip's length: the median over its ~500
steps moves by ~0.05 between seeds where a 12 s clip's moves by ~0.1."""

SEED = 0
"""Seed of the random pairs and of the shuffled reference: the same song and clip always score the same."""

REAL_EXCERPTS = 8
"""Evenly spaced excerpts of the song behind `transition_real` and `jump_rate_real`, each matched against the rest
of the song only (the median of 8: a piece's sections differ, one excerpt may repeat earlier material, another not)."""

REAL_SECONDS = 30.0
"""... each as long as the clip, at most half the song and at most 30 s (~250 steps), so that a long clip does not
make the reference cost more."""

DEFAULT_BEAT_S = 0.5
"""The window when the song has no tempo (no onsets at all): 120 bpm."""

MIN_BEAT_S, MAX_BEAT_S = 0.25, 1.5
"""The song's beat period is taken within 0.25-1.5 s (240-40 bpm), doubled or halved into that range: librosa's
tempo may read a subdivision or a half-time feel, and a window must hold a few feature frames and leave a clip of a
few seconds several beats."""


def _pow2(seconds: float, sample_rate: int) -> int:
    return int(2 ** round(math.log2(seconds * sample_rate)))


def feature_hop(sample_rate: int) -> int:
    """Samples per chroma/MFCC frame (FEATURE_HOP_S)."""
    return max(1, int(round(FEATURE_HOP_S * sample_rate)))


def _spectra(y: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(STFT power (bins, frames), N_MELS-band mel power (N_MELS, frames)) of mono `y`, float32."""
    import librosa

    n_fft = _pow2(FEATURE_WINDOW_S, sample_rate)
    # float32 throughout: the mel and chroma products are the costliest step, and 7 digits are plenty for a dB scale
    power = np.abs(librosa.stft(np.asarray(y, dtype=np.float32), n_fft=n_fft, hop_length=feature_hop(sample_rate)))
    power **= 2
    return power, librosa.feature.melspectrogram(S=power, sr=sample_rate, n_fft=n_fft, n_mels=N_MELS)


def frame_features(y: np.ndarray, sample_rate: int, *, floor: float | None = None) -> np.ndarray:
    """Chroma (12, each frame scaled to max 1 as librosa does) and N_MFCC MFCCs of mono `y` from one STFT:
    (frames, 12 + N_MFCC) float64, one per `feature_hop(sample_rate)` samples. The mel power is floored at `floor`
    (default: DB_FLOOR of y's own mean mel power; a clip takes its song's, see SongIndex.floor)."""
    return _features(*_spectra(y, sample_rate), sample_rate, floor)


def _features(power: np.ndarray, mel: np.ndarray, sample_rate: int, floor: float | None) -> np.ndarray:
    import librosa

    if floor is None:
        floor = DB_FLOOR * float(mel.mean(dtype=np.float64))
    # tuning=0: librosa's tuning estimate costs 30x the rest of the chroma, and a quarter-tone off only blurs bins
    chroma = librosa.feature.chroma_stft(S=power, sr=sample_rate, n_fft=_pow2(FEATURE_WINDOW_S, sample_rate),
                                         tuning=0.0)
    mfcc = librosa.feature.mfcc(S=to_db(mel, floor), n_mfcc=N_MFCC)
    return np.concatenate([chroma, mfcc]).T.astype(np.float64)


def beat_windows(frames: np.ndarray, length: int) -> np.ndarray:
    """Mean of every run of `length` consecutive rows of `frames` (n, D): (n - length + 1, D); row j averages
    frames j..j+length-1 (a cumulative sum, so every start costs the same)."""
    c = np.concatenate([np.zeros((1, frames.shape[1])), np.cumsum(frames, axis=0)])
    return (c[length:] - c[: len(c) - length]) / length


def beat_frames(sample_rate: int, tempo_bpm: float) -> int:
    """Feature frames per beat of the song at `tempo_bpm` (its estimate), folded by octaves into MIN_BEAT_S-
    MAX_BEAT_S (DEFAULT_BEAT_S without a tempo), rounded to a multiple of STEPS_PER_BEAT (24 frames, 0.48 s, at
    120 bpm)."""
    beat = 60.0 / tempo_bpm if tempo_bpm > 0 else DEFAULT_BEAT_S
    while beat < MIN_BEAT_S:
        beat *= 2
    while beat > MAX_BEAT_S:
        beat /= 2
    # a whole number of steps, so that a step's end is the start of a later one (each window is matched once)
    per = STEPS_PER_BEAT
    return per * max(1, int(round(beat * sample_rate / feature_hop(sample_rate) / per)))


@dataclass(frozen=True)
class SongIndex:
    """A song cut into one-beat windows at every frame, z-scored by their own mean and spread, and the unit of
    distance: what every clip is matched against. Build it once per song with `index_song`."""

    frames: np.ndarray  # (n, D) z-scored frame features (windows of any excerpt are cut from these)
    windows: np.ndarray  # (n - length + 1, D) z-scored one-beat windows, row j starting at frame j
    length: int  # frames per beat
    mean: np.ndarray  # (D,) and
    scale: np.ndarray  # (D,): frame features are z-scored as (f - mean) / scale
    unit: float  # median distance between two random windows of the song
    # The mel floor of every clip's features, DB_FLOOR of the song's mean mel power: without a floor set by the song
    # the MFCCs of a held chord follow the window's leakage in its empty bands, 60-100 dB down, and a drone reads as
    # changing (measured: beat-to-beat change 0.07-0.16 of the song's instead of ~0).
    floor: float
    onsets: np.ndarray  # (n,) spectral flux of the song's frames, peaking at frames where an attack starts

    @functools.cached_property
    def centre(self) -> np.ndarray:
        return self.windows.mean(axis=0)

    @functools.cached_property
    def centred(self) -> tuple[np.ndarray, np.ndarray]:
        """The windows centred (distances are shift-invariant; centring keeps float32 products accurate) as float32
        (n - length + 1, D), and their squared norms (n - length + 1,) float32: computed once per song."""
        song = np.ascontiguousarray(self.windows - self.centre, dtype=np.float32)
        return song, np.sum(song.astype(np.float64) ** 2, axis=1).astype(np.float32)


def index_song(song: np.ndarray, sample_rate: int, tempo_bpm: float) -> SongIndex:
    """The SongIndex of mono `song` at `sample_rate` with beat windows at `tempo_bpm` (see beat_frames)."""
    power, mel = _spectra(song, sample_rate)
    floor = DB_FLOOR * float(mel.mean(dtype=np.float64))
    raw = _features(power, mel, sample_rate, floor)
    length = beat_frames(sample_rate, tempo_bpm)
    while length > STEPS_PER_BEAT and length > len(raw) // 4:  # a song of a few seconds still holds a few beats
        length -= STEPS_PER_BEAT
    windows = beat_windows(raw, length)
    mean = windows.mean(axis=0)
    # floored: a dimension the song never moves (a chroma bin of a one-chord song) must not blow up a tiny change
    scale = np.maximum(windows.std(axis=0), 1e-3 * max(float(windows.std(axis=0).max()), 1e-12))
    frames = (raw - mean) / scale
    windows = (windows - mean) / scale
    rng = np.random.default_rng(SEED)
    a, b = rng.integers(0, len(windows), (2, RANDOM_PAIRS))
    unit = float(np.median(np.linalg.norm(windows[a] - windows[b], axis=1)))
    flux = np.sum(np.maximum(np.diff(to_db(mel, floor), axis=1), 0.0), axis=0)  # flux[k]: the rise from k to k + 1
    # A centred window meets an attack before its centre does: struck tones off the frame grid peaked 2.0 frames early
    # at 8 and 16 kHz (half window 3.2 frames), 1.1 at 22.05 and 44.1 kHz (2.3), measured; onsets[t] is the attack
    # at frame t.
    lead = max(int(round(_pow2(FEATURE_WINDOW_S, sample_rate) / (2 * feature_hop(sample_rate)) - 1.2)), 0)
    onsets = np.concatenate([np.zeros(1 + lead), flux])[: len(raw)]
    return SongIndex(frames=frames, windows=windows, length=length, mean=mean, scale=scale, unit=max(unit, 1e-12),
                     floor=floor, onsets=onsets)


def clip_windows(index: SongIndex, clip: np.ndarray, sample_rate: int) -> np.ndarray:
    """One-beat windows of mono `clip` at every frame, z-scored as the song's: (frames - length + 1, D)."""
    raw = frame_features(clip, sample_rate, floor=index.floor)
    if len(raw) < index.length:
        return np.zeros((0, index.windows.shape[1]))
    return (beat_windows(raw, index.length) - index.mean) / index.scale


def follow(index: SongIndex, windows: np.ndarray, exclude: tuple[int, int] | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(distance, jump) for each one-beat step of a clip given as its `windows` (every frame, from clip_windows),
    steps starting every 1/STEPS_PER_BEAT beat: (steps,) floats and bools.

    Step i goes from clip window w_i to w_{i+L} (L = one beat). The places the clip sounds like at i are the song
    windows nearest to w_i (within TIE of the nearest: a song that repeats itself exactly has several); the
    distance is |w_{i+L} - song[j + L]| / unit for the best of them, j: how far what the clip plays one beat later
    is from what the song plays one beat after the place the clip sounds like (0 = the same, ~1 = as two random
    moments of the song). A jump: no place w_{i+L} sounds like lies within ON_PATH_BEATS of one beat after a place
    w_i sounds like (the clip went on elsewhere in the song).

    `exclude` = (first, stop) song frames: no window overlapping them is a place the clip sounds like, nor is one
    whose next beat overlaps them (a real excerpt of the song is matched against the rest of it only)."""
    from scipy.ndimage import maximum_filter1d

    L, per = index.length, STEPS_PER_BEAT
    grid = np.arange(0, len(windows), L // per)  # step i goes from grid[i] to grid[i + per] = grid[i] + L
    n_steps = len(grid) - per
    if n_steps <= 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    song, energy = index.centred
    m = len(song)
    # Where the clip is now: a window whose next beat is in the song too (the first m - L); one beat later: any.
    block_now, block_later = np.zeros(m - L, np.float32), np.zeros(m, np.float32)
    if exclude is not None:
        block_later[max(exclude[0] - L + 1, 0) : max(exclude[1], 0)] = np.inf
        block_now[max(exclude[0] - 2 * L + 1, 0) : max(exclude[1], 0)] = np.inf
    tie, width = TIE * index.unit, 2 * int(ON_PATH_BEATS * L) + 1
    distance, jump = np.empty(n_steps), np.empty(n_steps, dtype=bool)
    batch = max(1, 2_000_000 // m)  # steps at a time: a few (batch, m) arrays of at most 8 MB
    for lo in range(0, n_steps, batch):
        b = min(batch, n_steps - lo)
        sq = _squared_distances(windows[grid[lo : lo + b + per]] - index.centre, song, energy)  # (b + per, m)
        now, later = sq[:b, : m - L], sq[per:]
        if exclude is not None:
            now, later = now + block_now, later + block_later
        here = now <= _tied(now, tie)  # (b, m - L): the places the clip sounds like now
        there = later <= _tied(later, tie)  # (b, m): ... and one beat later
        distance[lo : lo + b] = np.sqrt(np.maximum(np.where(here, later[:, L:], np.inf).min(axis=1), 0.0))
        went_on = np.zeros_like(there)
        went_on[:, L:] = here  # one beat after each place it sounded like, give or take ON_PATH_BEATS
        went_on = maximum_filter1d(went_on.view(np.uint8), width, axis=1).view(bool)
        jump[lo : lo + b] = ~np.any(went_on & there, axis=1)
    return distance / index.unit, jump


def _squared_distances(rows: np.ndarray, song: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances from each of `rows` (b, D) to each of `song` (m, D) float32 with squared norms
    `energy` (m,): (b, m) float32, |r - s|^2 = |r|^2 + |s|^2 - 2 r.s (one product; may dip below 0 by rounding)."""
    r = rows.astype(np.float32)
    return np.sum(r.astype(np.float64) ** 2, axis=1).astype(np.float32)[:, None] + energy[None, :] - 2.0 * (r @ song.T)


def _tied(squared: np.ndarray, tie: float) -> np.ndarray:
    """(b, 1) squared distance within `tie` of each row's nearest: (sqrt(min) + tie)^2."""
    return (np.sqrt(np.maximum(squared.min(axis=1, keepdims=True), 0.0)) + tie) ** 2


def scores(distance: np.ndarray, jump: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """(transition, transition_jumps, jump_rate) of one clip's steps: 1 - the median distance over all steps and
    over its jumps (None where there is none), and the share of steps that jump."""
    if len(distance) == 0:
        return None, None, None
    at_jumps = 1.0 - float(np.median(distance[jump])) if jump.any() else None
    return 1.0 - float(np.median(distance)), at_jumps, float(np.mean(jump))


def change(windows: np.ndarray, length: int) -> float:
    """Median distance between windows one beat apart, every 1/STEPS_PER_BEAT beat, in the z-scored units of
    `windows` (from a SongIndex or clip_windows): how much the sound moves from one beat to the next; 0 for fewer
    than two beats."""
    starts = np.arange(0, len(windows) - length, length // STEPS_PER_BEAT)
    if len(starts) == 0:
        return 0.0
    return float(np.median(np.linalg.norm(windows[starts + length] - windows[starts], axis=1)))


def shuffled_frames(index: SongIndex, n_frames: int, seed: int = SEED) -> np.ndarray:
    """The song's beats re-sequenced at random: `n_frames` frames of one-beat stretches of the song, each starting
    at the strongest onset within a beat of a random frame (fixed seed), so that stretches start on beats as a
    beat-aligned generator's do; the features audio cut that way would have, bar the frame at each cut:
    (n_frames, D). On the tests' song, whose beats start with a chord, its beats in random order score 0.05-0.23 at
    their jumps (12 s clips, 5 seeds) and this reference 0.09-0.14; stretches from random frames instead of onsets
    scored 0.34-0.38."""
    rng = np.random.default_rng(seed)
    L = index.length
    n = len(index.frames) - 2 * L + 1  # a start and the beat searched after it
    starts = rng.integers(0, max(n, 1), -(-n_frames // L))
    starts += np.argmax(index.onsets[starts[:, None] + np.arange(L)[None, :]], axis=1)
    return index.frames[(starts[:, None] + np.arange(L)[None, :]).reshape(-1)[:n_frames]]


# ------------------------------------------------------------------------------------- exact, from the path sidecar


def song_window(index: SongIndex, starts: np.ndarray, sample_rate: int) -> np.ndarray:
    """The index's one-beat windows starting at song samples `starts` (n,): (n, D). Feature frame k is centred at
    sample k * hop, so the window of frames j..j+L-1 is the one that starts at sample j * hop; a start past the
    song's last whole beat takes that last beat."""
    rows = np.rint(np.asarray(starts, np.float64) / feature_hop(sample_rate)).astype(np.int64)
    return index.windows[np.clip(rows, 0, len(index.windows) - 1)]


def jump_scores(index: SongIndex, positions: np.ndarray, *, frame_size: int, sample_rate: int) -> np.ndarray:
    """The exact score of each jump of a path through the song (`positions` (n,): the song sample each output frame
    of `frame_size` samples came from, at `sample_rate`, the index's rate): (jumps,) floats, in the order of
    `songpath.jumps`. The beat where the output lands against the beat the song itself plays there (the continuation
    of the frame before), by the index's z-scored chroma + MFCC beat windows: 1 - distance / unit, the unit being
    the median distance between two random beats of the song, as for `follow` (1 = what the song plays, 0 = as
    far as two random moments of it). NaN at a jump from or to a frame that is not the song's (-1)."""
    p = np.asarray(positions, np.int64)
    jumps = songpath.jumps(p, frame_size)
    landed, before = p[jumps], p[jumps - 1]
    d = np.linalg.norm(song_window(index, landed, sample_rate) - song_window(index, before + frame_size, sample_rate),
                       axis=1)
    return np.where((landed >= 0) & (before >= 0), 1.0 - d / index.unit, np.nan)


def path_metrics(index: SongIndex, positions: np.ndarray, *, frame_size: int, sample_rate: int) -> dict:
    """What the path says exactly about a clip's transitions: jump_score_exact (the median of `jump_scores`, None
    without a scorable jump), jumps_exact (jumps per beat of the index, the exact counterpart of `follow`'s
    jump rate) and longest_copy_s (the longest stretch played as in the song, seconds)."""
    p = np.asarray(positions, np.int64)
    if len(p) == 0:
        return dict(jump_score_exact=None, jumps_exact=None, longest_copy_s=None)
    jumps = songpath.jumps(p, frame_size)
    scored = jump_scores(index, p, frame_size=frame_size, sample_rate=sample_rate)
    scored = scored[np.isfinite(scored)]
    edges = np.concatenate([[0], jumps, [len(p)]])
    runs = np.diff(edges)[p[edges[:-1]] >= 0]  # stretches of the song's own frames (not the -1 ones)
    beats = len(p) * frame_size / (index.length * feature_hop(sample_rate))
    return dict(jump_score_exact=float(np.median(scored)) if len(scored) else None,
                jumps_exact=len(jumps) / beats,
                longest_copy_s=float(runs.max(initial=0) * frame_size / sample_rate))


EXACT = ("jump_score_exact", "jumps_exact", "longest_copy_s")
"""The keys of `path_metrics`, None in `transition_metrics` for a clip without a path."""


def transition_metrics(clip: np.ndarray, song: np.ndarray, sample_rate: int, tempo_bpm: float,
                       positions: np.ndarray | None = None, frame_size: int = 0) -> dict:
    """Every transition and change metric of mono `clip` against mono `song` (both at `sample_rate`; `tempo_bpm` the
    song's tempo estimate): a dict of plain floats (or None), see framegen.evaluate.METRICS.

    The song's features are computed once; its references are cut from them: REAL_EXCERPTS excerpts of the clip's
    length (at most half the song), each matched against the rest of the song only, and one random beat
    re-sequencing. With the clip's `positions` in `song` (its path sidecar, output frames of `frame_size`
    samples), the exact jump metrics of `path_metrics` too (None without)."""
    index = index_song(song, sample_rate, tempo_bpm)
    exact = (path_metrics(index, positions, frame_size=frame_size, sample_rate=sample_rate)
             if positions is not None else dict.fromkeys(EXACT))
    windows = clip_windows(index, clip, sample_rate)
    transition, at_jumps, jump_rate = scores(*follow(index, windows))

    n = len(index.frames)
    length = min(len(windows) + index.length - 1, n // 2, int(REAL_SECONDS / FEATURE_HOP_S))
    real = []
    for s in np.linspace(0, n - length, REAL_EXCERPTS).astype(int):
        excerpt = beat_windows(index.frames[s : s + length], index.length)
        real.append(scores(*follow(index, excerpt, exclude=(s, s + length))))
    shuffled = beat_windows(shuffled_frames(index, SHUFFLED_BEATS * index.length), index.length)
    song_change = change(index.windows, index.length)
    clip_change = change(windows, index.length)
    return dict(
        transition=transition,
        transition_jumps=at_jumps,
        jump_rate=jump_rate,
        transition_real=_median([r[0] for r in real]),
        jump_rate_real=_median([r[2] for r in real]),
        transition_shuffled=scores(*follow(index, shuffled))[1],
        change=clip_change,
        change_song=song_change,
        change_ratio=clip_change / max(song_change, 1e-12),
        **exact,
    )


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None
