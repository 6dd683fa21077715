"""Time structure of audio for framegen.evaluate: the onset-strength envelope, its autocorrelation (pulse, rhythm
pattern), tempo and the beat grid (librosa), and the continuity of held notes; pure numpy/librosa functions.

Frame statistics (log-mel, flatness) are blind to time: a shuffle of a song's 25 ms fragments has its sound but no
beat and no held note. These measures see it; `rhythm_metrics` gathers them for one clip against its song.
"""

from __future__ import annotations

import math

import numpy as np

ONSET_HOP_S = 0.01
"""10 ms hop of the onset envelope: a beat period of 0.25-4 s spans 25-400 lags, and a click is placed to 5 ms."""

ONSET_WINDOW_S = 0.05
"""~50 ms onset analysis window (rounded to a power of two of samples: 64 ms at 16 kHz, 46 ms at 44.1 kHz); with
librosa's default 2048 samples a 16 kHz clip would smear each attack over 128 ms."""

PULSE_MIN_LAG_S = 0.25
"""Beat periods searched for the pulse start at 0.25 s (240 bpm) ..."""

PULSE_MAX_LAG_S = 4.0
"""... and end at 4 s (a bar of 4 at 60 bpm), or half the clip: longer lags rest on too few periods."""

RHYTHM_MIN_LAG_S = 0.1
"""The rhythm pattern is the onset autocorrelation from 0.1 s (below, every envelope is its own attack's shape) ..."""

RHYTHM_MAX_LAG_S = 8.0
"""... to 8 s (two bars at 60 bpm), or half the clip where it is shorter than 16 s."""

SMOOTH_S = 0.05
"""The envelope is averaged over 50 ms before its autocorrelation: a generator's frame seams click periodically (a
25 ms frame grid at 40 Hz, and the multiples of its period cover every lag of 0.25-4 s), which is a buzz, not a
beat; unsmoothed, a shuffle of drascula track8's 25 ms fragments reached pulse 0.28 (half its real 0.54), smoothed
0.09. A 50 ms boxcar nulls 20 and 40 Hz and leaves beats (0.25-4 Hz) and their subdivisions (<= 16 Hz) alone."""

BEAT_HOP_S = 0.005
"""beat_grid places beats on a 5 ms envelope (the tempo is still estimated at 10 ms, where librosa's 8 s tempogram
is a quarter the size): beat times within +-2.5 ms."""

BEAT_DELAY_S = 0.006
"""The flux of envelope frame t is the change from frame t-1 to t, and the window reaches a click before it is
centred on it: on click tracks the tracked beats fell 4.8-8.7 ms after the clicks at 16 kHz (64 ms window) and
2.5-7.0 ms at 44.1 kHz (46 ms), over click phases 0-9 ms off the 5 ms grid; 6 ms earlier they fall within -4.1 to
+2.7 ms of the clicks (16, 22.05 and 44.1 kHz)."""

REAL_EXCERPTS = 8
"""Song excerpts (evenly spaced, sliced from the song's envelope computed once) behind `pulse_real` and
`rhythm_similarity_real`: the median of 8 is stable to ~0.02 on the drascula pieces, and slicing costs nothing."""

TEMPO_TOLERANCE = 0.04
"""Tempi agree within 4% (a human hears a 4% tempo change), or at twice or half the tempo (estimators' octave
errors: librosa reads a 120 bpm click as 60 or 240 depending on its prior)."""

CONTINUITY_WINDOW_S = 0.04
"""Continuity frames: ~40 ms windows (a power of two: 32 ms at 16 kHz, 46 ms at 44.1 kHz) that do NOT overlap, so
two consecutive frames share no sample: a texture of 25 ms fragments from unrelated places cannot carry a peak from
one to the next, a held note does (with overlapping windows both frames would hold the same fragment)."""

PEAK_PROMINENCE_DB = 15.0
"""A spectral peak stands 15 dB above the geometric mean power of its +-16 bins. Noise bins are exponentially
distributed (geometric mean 0.56 of the mean), so one bin in ~10^7 reaches that; partials of music stand 20-40 dB
above their neighbourhood."""

PEAK_NEIGHBOURS = 16
"""... the neighbourhood: +-16 bins (+-340 Hz at 44.1 kHz, +-500 Hz at 16 kHz), wider than a partial's main lobe."""

PEAK_FLOOR = 1e-6
"""Peaks 60 dB below the song's mean bin power are ignored: silence and dither hold no notes."""


def _pow2(seconds: float, sample_rate: int) -> int:
    return int(2 ** round(math.log2(seconds * sample_rate)))


def onset_hop(sample_rate: int) -> int:
    """Samples per onset-envelope frame (ONSET_HOP_S)."""
    return max(1, int(round(ONSET_HOP_S * sample_rate)))


def onset_envelope(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """librosa's onset strength (spectral flux of log-mel power) of mono `y`: (frames,) float64, one per
    `onset_hop(sample_rate)` samples, frame i centred on sample i * hop."""
    import librosa

    env = librosa.onset.onset_strength(
        y=np.asarray(y, dtype=np.float32), sr=sample_rate, hop_length=onset_hop(sample_rate),
        n_fft=_pow2(ONSET_WINDOW_S, sample_rate),
    )
    return env.astype(np.float64)


def smooth(envelope: np.ndarray, frame_rate: float) -> np.ndarray:
    """`envelope` (frames,) averaged over SMOOTH_S s (a centred moving average, edges held): (frames,)."""
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(np.asarray(envelope, dtype=np.float64), max(1, int(round(SMOOTH_S * frame_rate))),
                            mode="nearest")


def autocorrelation(envelope: np.ndarray, *, max_lag: int) -> np.ndarray:
    """Autocorrelation of `envelope` (frames,) with its mean removed, normalised so that lag 0 is 1, at lags
    0..max_lag frames: (max_lag + 1,). The biased estimate (sum over the overlap, not divided by it), as
    librosa.autocorrelate: a period seen once at half the clip's length counts half. Zeros for a constant
    envelope (silence)."""
    x = np.asarray(envelope, dtype=np.float64)
    x = x - x.mean()
    n = len(x)
    spectrum = np.fft.rfft(x, n=2 ** int(math.ceil(math.log2(max(2 * n, 2)))))
    r = np.fft.irfft(np.abs(spectrum) ** 2)[: max_lag + 1]
    out = np.zeros(max_lag + 1)
    if r[0] > 1e-12 * max(n, 1):
        out[: len(r)] = r / r[0]
    return out


def pulse(envelope: np.ndarray, frame_rate: float) -> float:
    """Highest autocorrelation peak (a local maximum, so a slope falling from lag 0 never counts) of the onset
    `envelope` at lags PULSE_MIN_LAG_S..PULSE_MAX_LAG_S s, capped at half its length; 0 when there is none.
    A click track scores ~1 minus the overlap loss (0.95 for a 10 s clip), white noise ~0.05-0.1."""
    hi = min(int(round(PULSE_MAX_LAG_S * frame_rate)), len(envelope) // 2)
    lo = int(round(PULSE_MIN_LAG_S * frame_rate))
    if hi <= lo:
        return 0.0
    r = autocorrelation(envelope, max_lag=hi + 1)
    k = np.arange(max(lo, 1), hi + 1)
    peaks = k[(r[k] > r[k - 1]) & (r[k] >= r[k + 1])]
    return float(max(r[peaks].max(), 0.0)) if len(peaks) else 0.0


def rhythm_lags(n_frames: int, frame_rate: float) -> slice:
    """The lags of the rhythm curve for an envelope of `n_frames`: RHYTHM_MIN_LAG_S to RHYTHM_MAX_LAG_S s, capped
    at half the envelope (a 10 s clip compares lags 0.1-5 s)."""
    lo = int(round(RHYTHM_MIN_LAG_S * frame_rate))
    hi = min(int(round(RHYTHM_MAX_LAG_S * frame_rate)), n_frames // 2)
    return slice(lo, max(hi, lo) + 1)


def rhythm_curve(envelope: np.ndarray, lags: slice) -> np.ndarray:
    """The onset autocorrelation at `lags` (see rhythm_lags): the rhythm pattern, (lags.stop - lags.start,)."""
    return autocorrelation(envelope, max_lag=lags.stop - 1)[lags]


def similarity(curve: np.ndarray, other: np.ndarray) -> float:
    """Cosine similarity of two rhythm curves, each centred on its mean over the lags first: every onset
    autocorrelation decays with lag, and uncentred even unrelated rhythms score 0.6-0.9. 0 when one is flat."""
    a, b = curve - curve.mean(), other - other.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 1e-12 else 0.0


def tempo(envelope: np.ndarray, sample_rate: int) -> float:
    """librosa's tempo estimate (bpm) from an onset envelope made by `onset_envelope` at `sample_rate`; 0 for an
    envelope without onsets (silence), where librosa would return its prior's 120 bpm."""
    import librosa

    if not np.any(envelope > 0):
        return 0.0

    return float(librosa.feature.tempo(onset_envelope=envelope, sr=sample_rate, hop_length=onset_hop(sample_rate))[0])


def tempo_match(bpm: float, other_bpm: float) -> bool:
    """Whether two tempi agree within TEMPO_TOLERANCE, directly or at a factor of 2."""
    if bpm <= 0 or other_bpm <= 0:
        return False
    return any(abs(bpm * k / other_bpm - 1.0) <= TEMPO_TOLERANCE for k in (0.5, 1.0, 2.0))


def beat_grid(y: np.ndarray, sample_rate: int) -> tuple[float, np.ndarray]:
    """(tempo_bpm, beat_times_s: (beats,)) of mono `y`: librosa's tempo estimate on the 10 ms onset envelope, then
    its dynamic-programming beat tracker at that tempo on a BEAT_HOP_S envelope; the beat clock of a song.

    Beats are moved BEAT_DELAY_S earlier than their envelope frames (see there): within 4.1 ms of a click."""
    import librosa

    bpm = tempo(onset_envelope(y, sample_rate), sample_rate)
    hop = max(1, int(round(BEAT_HOP_S * sample_rate)))
    env = librosa.onset.onset_strength(
        y=np.asarray(y, dtype=np.float32), sr=sample_rate, hop_length=hop, n_fft=_pow2(ONSET_WINDOW_S, sample_rate)
    )
    _, frames = librosa.beat.beat_track(onset_envelope=env, sr=sample_rate, hop_length=hop, bpm=bpm)
    return bpm, np.asarray(frames, dtype=np.float64) * hop / sample_rate - BEAT_DELAY_S


def peak_power(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Power spectra of consecutive non-overlapping CONTINUITY_WINDOW_S Hann windows: (frames, bins) float64."""
    n = _pow2(CONTINUITY_WINDOW_S, sample_rate)
    frames = np.asarray(y, dtype=np.float64)[: len(y) // n * n].reshape(-1, n)
    return np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2


def continuity(power: np.ndarray, *, min_power: float) -> float:
    """Share of the spectral peaks of each frame of `power` (frames, bins; from `peak_power`) that a peak of the
    next frame continues (the same bin +-1), weighted by amplitude: 1 = every partial held across the ~40 ms
    border, 0 = none. Peaks are local maxima (+-2 bins) PEAK_PROMINENCE_DB above the geometric mean of their
    +-PEAK_NEIGHBOURS bins and above `min_power`; 0 when there is no peak.

    Measured: a held tone 1.0; the demo song 0.87 (16 kHz); drascula track1, 5, 8 (44.1 kHz) 0.50, 0.70, 0.69,
    their real 30 s excerpts 0.95-1.11 of that; the same excerpts cut into 25 ms fragments and shuffled 0.10-0.18
    (0.15-0.36 of the song), the demo's 0.37 (0.43: its pad and bass hold one chord for seconds, so unrelated
    fragments share partials by chance); white noise 0 (no peak stands 15 dB out). Why peaks, not chroma: the cosine of
    consecutive chroma vectors (46 ms, 23 ms hop) barely separates them (0.94 for those real excerpts, 0.84-0.92
    for their shuffles: the song's key is in every fragment). Held peaks on half-overlapping frames separate them
    too (0.66-0.79 vs 0.15-0.17), but there both frames of a pair hold the same fragment; without overlap, a peak
    held is a note held."""
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    if len(power) < 2:
        return 0.0
    log = np.log(power + 1e-30)
    local = uniform_filter1d(log, 2 * PEAK_NEIGHBOURS + 1, axis=1, mode="nearest")
    peaks = (
        (power >= maximum_filter1d(power, 5, axis=1))
        & (log - local > PEAK_PROMINENCE_DB / 10 * math.log(10))
        & (power > min_power)
    )
    held = peaks[:-1] & maximum_filter1d(peaks[1:].astype(np.uint8), 3, axis=1).astype(bool)
    weight = np.sqrt(power[:-1])
    total = float(np.sum(weight[peaks[:-1]]))
    return float(np.sum(weight[held]) / total) if total > 0 else 0.0


def excerpt_starts(n_frames: int, length: int, count: int = REAL_EXCERPTS) -> np.ndarray:
    """`count` evenly spaced starts of `length`-frame excerpts in `n_frames` (deterministic): (count,) ints."""
    return np.linspace(0, max(n_frames - length, 0), count).astype(int)


def rhythm_metrics(clip: np.ndarray, song: np.ndarray, sample_rate: int) -> dict:
    """Every rhythm and continuity metric of mono `clip` against mono `song`, both at `sample_rate`: a dict of
    plain floats and a bool (see framegen.evaluate.METRICS for their meaning). The song's envelope is computed once
    and sliced into REAL_EXCERPTS excerpts of the clip's length (at most half the song) for the references."""
    rate = sample_rate / onset_hop(sample_rate)
    clip_raw, song_raw = onset_envelope(clip, sample_rate), onset_envelope(song, sample_rate)
    clip_env, song_env = smooth(clip_raw, rate), smooth(song_raw, rate)
    length = min(len(clip_env), len(song_env) // 2)
    lags = rhythm_lags(length, rate)
    song_curve = rhythm_curve(song_env, lags)
    excerpts = [song_env[s : s + length] for s in excerpt_starts(len(song_env), length)]
    pulse_clip = pulse(clip_env, rate)
    pulse_real = float(np.median([pulse(e, rate) for e in excerpts]))
    tempo_clip, tempo_song = tempo(clip_raw, sample_rate), tempo(song_raw, sample_rate)
    song_power = peak_power(song, sample_rate)
    min_power = PEAK_FLOOR * float(song_power.mean())
    held, held_song = continuity(peak_power(clip, sample_rate), min_power=min_power), continuity(
        song_power, min_power=min_power)
    return dict(
        pulse=pulse_clip,
        pulse_real=pulse_real,
        pulse_ratio=pulse_clip / max(pulse_real, 0.05),
        tempo=tempo_clip,
        tempo_song=tempo_song,
        tempo_match=tempo_match(tempo_clip, tempo_song),
        rhythm_similarity=similarity(rhythm_curve(clip_env, lags), song_curve),
        rhythm_similarity_real=float(np.median([similarity(rhythm_curve(e, lags), song_curve) for e in excerpts])),
        continuity=held,
        continuity_song=held_song,
        continuity_ratio=held / max(held_song, 0.05),
    )
