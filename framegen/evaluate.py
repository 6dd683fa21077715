"""Generated-audio metrics and verdict flags: is a continuation silent, noise, stuck in a loop, a copy of the song,
or far from it? Plain numpy/scipy/librosa signal processing against the song it was trained on; no learned models.

Every metric is computed by a function of arrays; `evaluate` gathers them into an `Evaluation` and turns them into
flags with the thresholds below, `evaluate_files` is the file edge, `format_report` the human-readable text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from framegen.errors import AudioError

# Thresholds and analysis settings. The values were set from measurements on the demo song (framegen.synth) and on
# real music (the 31 pieces of Debian's drascula-music); the scores of each case are in tests/test_evaluate.py.

WINDOW_S = 0.1
"""Loudness is judged in 100 ms windows: short enough to follow a fade, long enough to span a bass period."""

AUDIBLE_FRACTION = 0.1
"""A window is audible when its RMS exceeds 10% (-20 dB) of the song's median window RMS: the quiet passages of
real music stay within that (real excerpts score 0.96-1.0); a fade-out or a collapsed generator falls far below."""

SILENT_BELOW = 0.5
"""'silent' when fewer than half of the windows are audible: a rest or a fade at the end does not make a clip
silent, a generator that dies out within seconds does (a 0.5 s exponential fade over 10 s scores 0.11)."""

NOISE_FLATNESS = math.exp(-np.euler_gamma)
"""Expected spectral flatness of a Gaussian noise periodogram, ~0.5615: each bin is exponentially distributed, so
exp(E log P) / E P = exp(-gamma). White and pink noise reach it within every octave band (measured 0.57-0.61)."""

NOISE_LIKE_ABOVE = 0.5
"""'noise_like' needs the band flatness more than half way from the song's own to that of noise (noise_likeness >
0.5): white and pink noise score 1.05-1.28, excerpts of the song -0.3-0.1, music with noise mixed in at 10 dB SNR
~0.1, at 0 dB ~0.5, at -10 dB ~0.9."""

NOISE_FLAT_ABOVE = 0.8 * NOISE_FLATNESS
"""... and the band flatness itself above 0.45, 80% of that of noise: a busy band (0.35-0.39, the flattest of the
31 drascula pieces) is halfway to noise next to a solo organ (0.05-0.15), yet it is not noise; noise scores
0.57-0.61."""

FAR_ABOVE = 4.0
"""'far_from_song' when the Frechet distance is more than 4x that of a real excerpt. Real excerpts score 0.3-1.3
(0.1 on the demo, see REAL_FLOOR), music in the song's style 0.4-3.3 (the demo re-pitched or re-seeded, drascula
pieces of like instrumentation); white or pink noise 9.6-17 against real music and 300-400 against the demo; very
different pieces (solo organ against a band) 4.2-17."""

COPYING_BELOW = 0.15
"""'copying' when the generated seconds are, on average, nearer to some second of the song than 0.15 of the
distance between two random moments of it. A verbatim copy scores ~0 (1e-9), a copy under -40 dB of noise or 10-bit
mu-law 0.02-0.09; the demo re-pitched by 1-3% scores 0.19-0.32 and other real music 0.45-1.0. The demo rendered with
another seed (same notes, new percussion noise) scores 0.11-0.15: copying, as it is the same recording bar the
noise of its hi-hat."""

LOOP_MAX_PERIOD_S = 1.0
"""Longest repetition called a loop. A GRU fixed point repeats one frame (tens of ms); music repeats bars of 2 s
and more (the demo song repeats exactly every 16 s), which must not count as stuck."""

LOOP_WINDOW_S = 2.0
"""The repetition must hold over the last 2 s of the clip (at least two periods) and up to its very end."""

LOOP_TOLERANCE = 3e-4
"""A period repeats when the residual energy |x[n] - x[n+P]|^2 is below 3e-4 (-35 dB) of the signal's energy. A
fixed point or DC repeats to float (or 16-bit PCM) precision, below 1e-9; the limit cycles trained MSE models fell
into (experiments/quality/README.md: a 0.6 s and a 0.45 s cycle) leave 1.9e-5 and 1.2e-4, 4-12 dB below the
tolerance; the most periodic 2 s anywhere in the 31 drascula-music pieces (a sustained synth chord) leave 9e-4,
5 dB above it, and the MSE clips that did not loop 4.6e-3 to 8.6e-3."""

LOOP_MIN_LEVEL = 1e-3
"""A loop must be louder than -60 dB of the song's RMS: digital silence repeats trivially and is 'silent', not
'stuck'. The fixed point met in practice (~4% of the song's loudness, -28 dB) is far above it."""

CLIP_LEVEL = 0.999
"""A sample at or above 0.999 of full scale counts as clipped."""

CLIPPING_ABOVE = 0.01
"""'clipping' when more than 1% of the samples are at full scale; mastered music stays well below that."""

MIN_SECONDS = 1.0
"""Both clips must hold at least one second: novelty compares whole seconds."""

N_MELS = 64
"""Mel bands of the log-mel frames behind the Frechet distance and the novelty."""

FEATURE_HOP_S = 0.01
"""10 ms hop of the log-mel frames: the nearest-second search is exact to 5 ms before it is refined to the sample."""

FEATURE_WINDOW_S = 0.064
"""~64 ms mel analysis window (rounded to a power of two of samples): several periods of a bass note."""

DB_FLOOR = 1e-5
"""Log-mel power is floored at 1e-5 (-50 dB) of the song's mean mel power, the same floor for clip and song: below
it a band is inaudible next to the rest, and a lower floor lets digital silence between synthetic drum hits (which
real recordings never have) dominate the statistics (with 1e-8, a -26 dB hiss on a copy reads as 10^4 x far)."""

FLATNESS_WINDOW_S = 0.128
"""~128 ms STFT window (rounded to a power of two of samples) for band flatness: 6-8 bins in the lowest octave."""

LOWEST_OCTAVE_HZ = 62.5
"""Octave bands start at 62.5 Hz and double up to HIGHEST_OCTAVE_HZ: 7 bands at 16 kHz and above."""

HIGHEST_OCTAVE_HZ = 8000.0
"""... and stop at 8 kHz (or Nyquist, if lower), so that a clip at 16 kHz and its song at 44.1 kHz are judged on
the same bands; above 8 kHz a recording holds mostly hiss, air and codec cut-offs."""

REAL_EXCERPTS = 4
"""Real excerpts averaged for `frechet_real`, at evenly spaced positions in the song (deterministic)."""

REAL_FLOOR = 0.01
"""`frechet_real` is never taken below 1% of the song's frame spread 2 tr(C_song). The demo song repeats exactly
every 16 s, so its excerpts match the whole to ~0.04% of that spread and without the floor any re-rendering of it
(another seed, 1% higher) would read as 20-50x 'far'; real music sits at ~10% and is unaffected."""

FLAG_ORDER = ("silent", "noise_like", "stuck", "copying", "far_from_song", "clipping", "nonfinite")


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one generated clip against the song it continues; plain Python values, JSON-ready (`to_dict`).

    seconds: length of the generated clip.
    sample_rate: rate of the generated clip; every metric is computed at this rate.
    reference_rate: rate of the song as given (resampled to `sample_rate` when they differ).
    audible_ratio: share of 100 ms windows whose RMS exceeds 10% of the song's median 100 ms window RMS
        (1 = sounds throughout, 0 = silent).
    loudness_ratio: RMS of the clip / RMS of the song (1 = as loud as the song).
    band_flatness: spectral flatness (geometric / arithmetic mean of power) within octave bands from 62.5 Hz to
        8 kHz, averaged over bands and 128 ms STFT frames weighted by each cell's RMS amplitude; cells 60 dB
        below the song's mean bin power (in that band or overall) are skipped, and a clip with none left scores 0.
        Noise is flat within every octave, white or pink (~0.56), where whole-spectrum flatness misses pink noise;
        music puts its power in partials and scores lower (0.02-0.39 for the 31 drascula pieces).
    reference_band_flatness: the same for the whole song.
    noise_likeness: (band_flatness - reference_band_flatness) / max(0.5615 - reference_band_flatness, 0.05), where
        0.5615 = exp(-Euler gamma) is the flatness of Gaussian noise: 0 = as tonal as the song, 1 = as flat as
        noise, below 0 = more tonal than the song.
    frechet: Frechet distance (dB^2) between Gaussians fitted to the 64-band log-mel frames (64 ms window, 10 ms hop)
        of the clip and of the whole song: |mu_c - mu_s|^2 + tr(C_c + C_s - 2 (C_c C_s)^1/2).
    frechet_real: the same distance for real excerpts of the song as long as the clip (at most half the song),
        averaged over 4 evenly spaced excerpts, and never below 1% of the song's frame spread 2 tr(C_s): what
        "sounds like this song" scores at this length.
    frechet_ratio: frechet / frechet_real: ~1 as close as a real excerpt; noise scores several times higher.
    novelty: for each whole second of the clip, the RMS log-mel distance to its nearest second of the song (found on
        the 10 ms frames, then aligned to the sample by waveform cross-correlation, both seconds analysed alone),
        divided by the RMS distance between two random frames of the song, sqrt(2 tr C_s); averaged over the
        seconds. 0 = a verbatim copy, ~1 = as different as two random moments of the song.
    loop_period_s: the shortest period P (up to 1 s) with which the last 2 s of the clip repeat exactly: residual
        sum (x[n] - x[n+P])^2 / sum (x[n]^2 + x[n+P]^2) below 3e-4 (YIN's normalised difference, by FFT
        autocorrelation). A stuck loop, a fixed-point frame (P = its length), DC (P = one sample); None when none.
    loop_start_s: time from which the clip repeats with that period up to its end; None when there is no loop.
    loop_score: 1 - the smallest residual over lags up to 1 s in the last 2 s: 1 = exact repetition, music ~0.9-0.999,
        white noise ~0; 0 when the end of the clip is silent (quieter than -60 dB of the song).
    clipping_ratio: share of samples at or above 0.999 of full scale.
    nonfinite_ratio: share of NaN or infinite samples (they are zeroed before every other metric).
    rate_mismatch: the song's rate differed from the clip's, and the song was resampled.
    flags: verdicts, in the order of FLAG_ORDER. 'silent' (audible_ratio < 0.5) and 'stuck' (a loop was found)
        name a collapse; the content flags 'noise_like' (noise_likeness > 0.5 and band_flatness > 0.45),
        'copying' (novelty < 0.15) and 'far_from_song' (frechet_ratio > 4) are only judged on a clip that is
        neither, since silence or a loop is far from the song by construction. A quiet fixed point is both
        'silent' and 'stuck'. 'clipping' (clipping_ratio > 1%) and 'nonfinite' (any NaN/inf) are always judged.
    """

    seconds: float
    sample_rate: int
    reference_rate: int
    audible_ratio: float
    loudness_ratio: float
    band_flatness: float
    reference_band_flatness: float
    noise_likeness: float
    frechet: float
    frechet_real: float
    frechet_ratio: float
    novelty: float
    loop_period_s: float | None
    loop_start_s: float | None
    loop_score: float
    clipping_ratio: float
    nonfinite_ratio: float
    rate_mismatch: bool
    flags: tuple[str, ...]

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (flags as a list)."""
        d = dataclasses.asdict(self)
        d["flags"] = list(self.flags)
        return d


# ---------------------------------------------------------------------------------------------------- metrics


def _pow2(seconds: float, sample_rate: int) -> int:
    return int(2 ** round(math.log2(seconds * sample_rate)))


def _window_rms(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS of consecutive non-overlapping 100 ms windows (a short tail is dropped): (n_windows,)."""
    length = max(1, int(round(WINDOW_S * sample_rate)))
    n = max(1, len(y) // length)
    windows = np.resize(y, n * length) if len(y) < length else y[: n * length]
    return np.sqrt(np.mean(np.square(windows.reshape(n, length), dtype=np.float64), axis=1))


def audible_ratio(y: np.ndarray, sample_rate: int, reference: np.ndarray) -> float:
    """Share of 100 ms windows of `y` whose RMS exceeds AUDIBLE_FRACTION of `reference`'s median window RMS."""
    ref_windows = _window_rms(reference, sample_rate)
    level = float(np.median(ref_windows)) or float(np.sqrt(np.mean(np.square(reference, dtype=np.float64))))
    return float(np.mean(_window_rms(y, sample_rate) > AUDIBLE_FRACTION * level))


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def _octave_power(y: np.ndarray, sample_rate: int) -> tuple[np.ndarray, list[slice]]:
    """STFT power (frames, bins) and the bin slice of each octave band from LOWEST_OCTAVE_HZ up to
    HIGHEST_OCTAVE_HZ or Nyquist."""
    import librosa

    n_fft = _pow2(FLATNESS_WINDOW_S, sample_rate)
    # center=False: zero padding would add a broadband step at both ends of every clip (and make DC look flat)
    stft = librosa.stft(y.astype(np.float32), n_fft=n_fft, hop_length=n_fft // 4, center=False)
    power = np.abs(stft).T.astype(np.float64) ** 2
    bin_hz = sample_rate / n_fft
    bands, lo = [], LOWEST_OCTAVE_HZ
    top = min(HIGHEST_OCTAVE_HZ, sample_rate / 2)
    while lo < top:
        a, b = int(math.ceil(lo / bin_hz)), int(math.ceil(min(2 * lo, top) / bin_hz))
        if b - a >= 2:
            bands.append(slice(a, b))
        lo *= 2
    return power, bands


def band_flatness(y: np.ndarray, sample_rate: int, reference: np.ndarray) -> tuple[float, float]:
    """(flatness of y, flatness of reference): mean over octave bands and STFT frames of geometric / arithmetic
    mean power in the band, each (band, frame) cell weighted by its RMS amplitude, so that a faint hiss filling
    the empty bands of a tonal piece does not make it noise (unweighted, -20 dB of hiss read as 0.4 of the way to
    noise; weighted, ~0). Cells 60 dB below the reference's mean bin power, in that band or over all bins, are
    skipped: a silent cell, or one holding only the window's leakage from a tone in another band, has no spectrum
    of its own to be flat or tonal. With no cell left the flatness is 0."""
    ref_power, bands = _octave_power(reference, sample_rate)
    gen_power, _ = _octave_power(y, sample_rate)
    overall = float(np.mean(ref_power))
    out = []
    for power in (gen_power, ref_power):
        total, weight = 0.0, 0.0
        for band in bands:  # a handful of octave bands; each is vectorised over frames
            level = float(np.mean(ref_power[:, band]))
            cells = power[:, band]  # (frames, bins)
            mean = cells.mean(axis=1)
            keep = mean > 1e-6 * max(level, overall)
            geo = np.exp(np.mean(np.log(cells[keep] + 1e-12 * level), axis=1))
            w = np.sqrt(mean[keep])  # amplitude weights: loud cells count more, yet the bass alone does not decide
            total += float(np.sum(w * geo / mean[keep]))
            weight += float(np.sum(w))
        out.append(total / weight if weight else 0.0)
    return out[0], out[1]


def noise_likeness(flatness: float, reference_flatness: float) -> float:
    """Where `flatness` sits between the song's own (0) and that of Gaussian noise (1); see NOISE_FLATNESS."""
    return (flatness - reference_flatness) / max(NOISE_FLATNESS - reference_flatness, 0.05)


def mel_power(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """N_MELS-band mel power spectrogram with a 10 ms hop: (..., frames, N_MELS), float64, for y: (..., samples)."""
    import librosa

    spec = librosa.feature.melspectrogram(
        y=y.astype(np.float32),
        sr=sample_rate,
        n_fft=_pow2(FEATURE_WINDOW_S, sample_rate),
        hop_length=max(1, int(round(FEATURE_HOP_S * sample_rate))),
        n_mels=N_MELS,
        center=False,  # no zero padding: it would put a step at both ends of every one-second piece
    )
    return np.swapaxes(spec, -1, -2).astype(np.float64)


def to_db(power: np.ndarray, floor: float) -> np.ndarray:
    """10 log10(power + floor): the floor (DB_FLOOR of the song's mean) keeps silence finite and equal for both."""
    return 10.0 * np.log10(power + floor)


def _gaussian(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return frames.mean(axis=0), np.cov(frames, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^1/2), with tr (C1 C2)^1/2 = sum sqrt(eig(C1^1/2 C2 C1^1/2)) so that
    it stays real and stable for singular covariances (a constant or silent clip)."""
    w, v = np.linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ cov2 @ root1), 0, None)))
    return float(max(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * cross, 0.0))


def nearest_seconds(gen: np.ndarray, song: np.ndarray, frames_per_second: int) -> np.ndarray:
    """Frame offset into `song` (frames, M) of the run of consecutive frames nearest (Euclidean) to each whole
    second of `gen` (frames, M): (n_seconds,) ints.

    ||g - s_k||^2 = ||g||^2 + ||s_k||^2 - 2 <g, s_k>: the frame-by-frame dot products of a few seconds against the
    whole song are one matrix product, the cross term for every offset k a sum along its diagonals (a strided view),
    the sliding ||s_k||^2 a cumulative sum."""
    length = frames_per_second
    n_sec = len(gen) // length
    offsets = len(song) - length + 1
    centre = song.mean(axis=0)  # distances are shift-invariant; centring keeps the float32 products accurate
    gen, song = gen - centre, song - centre
    song32 = np.ascontiguousarray(song, dtype=np.float32)
    energy = np.concatenate([[0.0], np.cumsum(np.sum(song**2, axis=1))])
    sliding = energy[length:] - energy[:offsets]  # (offsets,)
    out = np.empty(n_sec, dtype=int)
    batch = max(1, 16_000_000 // (length * len(song)))  # seconds per product: at most ~64 MB of float32 dots
    for start in range(0, n_sec, batch):
        stop = min(n_sec, start + batch)
        dots = np.ascontiguousarray(gen[start * length : stop * length].astype(np.float32) @ song32.T)
        row, col = dots.strides
        diagonals = np.lib.stride_tricks.as_strided(
            dots, shape=(stop - start, length, offsets), strides=(length * row, row + col, col), writeable=False
        )  # diagonals[c, i, k] = dots[c * length + i, k + i]; summing over i keeps the inner axis contiguous
        cross = diagonals.sum(axis=1)
        out[start:stop] = np.argmin(sliding[None, :] - 2 * cross, axis=1)
    return out


def novelty_distances(
    gen: np.ndarray, song: np.ndarray, sample_rate: int, gen_db: np.ndarray, song_db: np.ndarray, floor: float
) -> np.ndarray:
    """Mean squared log-mel distance per frame from each whole second of waveform `gen` to its nearest second of
    waveform `song`: (n_seconds,).

    The nearest second is found on the log-mel frames (`gen_db`, `song_db`: (frames, N_MELS)), then aligned to the
    sample by waveform cross-correlation within one hop, and both seconds are analysed alone, so that a verbatim
    copy at any sample offset scores 0 instead of a frame-grid misalignment (5 ms moves a drum hit a lot)."""
    from scipy.signal import correlate

    hop = max(1, int(round(FEATURE_HOP_S * sample_rate)))
    second = int(round(sample_rate))
    offsets = nearest_seconds(gen_db, song_db, int(round(1.0 / FEATURE_HOP_S))) * hop
    n_sec = len(offsets)
    pieces = gen[: n_sec * second].reshape(n_sec, second)
    matches = np.empty_like(pieces)
    sq = np.concatenate([[0.0], np.cumsum(song**2)])
    for i, (piece, offset) in enumerate(zip(pieces, offsets)):  # one short correlation per second of audio
        lo = int(min(max(offset - hop, 0), len(song) - second))
        hi = int(min(offset + second + hop, len(song)))
        cross = correlate(song[lo:hi], piece, mode="valid", method="fft")
        norm = np.sqrt(np.maximum(sq[lo + second : hi + 1] - sq[lo : hi - second + 1], 1e-30))
        start = lo + int(np.argmax(cross / norm))
        matches[i] = song[start : start + second]
    a = to_db(mel_power(pieces, sample_rate), floor)  # (n_sec, frames, N_MELS)
    b = to_db(mel_power(matches, sample_rate), floor)
    return np.mean(np.sum((a - b) ** 2, axis=2), axis=1)


def find_loop(y: np.ndarray, sample_rate: int, *, min_rms: float) -> tuple[float | None, float | None, float]:
    """(period_s, start_s, score) of an exact repetition that holds until the end of `y`.

    Over the last LOOP_WINDOW_S seconds the normalised difference d(P) = sum (x[n] - x[n+P])^2 /
    sum (x[n]^2 + x[n+P]^2) is computed for every lag P up to LOOP_MAX_PERIOD_S (YIN's difference function, one FFT
    correlation). The smallest P with d(P) < LOOP_TOLERANCE is the period; the start is the beginning of the last
    unbroken run of windows (max(P, 10 ms) long) in which the clip equals itself shifted by P. score = 1 - min d.
    No loop (None, None, score) when there is none, or when the end of the clip is quieter than `min_rms`."""
    from scipy.signal import correlate

    n = len(y)
    max_lag = min(int(LOOP_MAX_PERIOD_S * sample_rate), n // 3)
    window = min(int(LOOP_WINDOW_S * sample_rate), n - max_lag)
    tail = y[n - window - max_lag :]
    if max_lag < 1 or _rms(tail) <= min_rms:
        return None, None, 0.0
    head = tail[:window]
    cross = correlate(tail, head, mode="valid", method="fft")  # cross[P] = sum head[n] tail[n + P]
    sq = np.concatenate([[0.0], np.cumsum(tail**2)])
    shifted = sq[window:] - sq[: len(sq) - window]  # sum tail[n + P]^2 for P = 0..max_lag
    both = shifted[0] + shifted
    diff = np.clip(both - 2 * cross, 0, None) / np.where(both > 0, both, 1.0)
    diff = np.where(both > 0, diff, 1.0)[1:]  # lags 1..max_lag
    score = float(1.0 - diff.min())
    hits = np.flatnonzero(diff < LOOP_TOLERANCE)
    if len(hits) == 0:
        return None, None, score
    period = int(hits[0]) + 1
    length = max(period, int(round(0.01 * sample_rate)))
    err = (y[period:] - y[:-period]) ** 2
    energy = y[period:] ** 2 + y[:-period] ** 2
    n_win = len(err) // length
    offset = len(err) - n_win * length  # windows aligned to the end, where the loop is
    err_w = err[offset:].reshape(n_win, length).sum(axis=1)
    energy_w = energy[offset:].reshape(n_win, length).sum(axis=1)
    ok = (energy_w > 2 * length * min_rms**2) & (err_w < LOOP_TOLERANCE * energy_w)
    broken = np.flatnonzero(~ok)
    if len(broken) == 0:
        return period / sample_rate, 0.0, score
    last = int(broken[-1])
    # Refine to the sample inside the last broken window: after its last sample that differs one period later.
    run = energy[offset + (last + 1) * length :]
    seg = err[offset + last * length : offset + (last + 1) * length]
    differs = np.flatnonzero(seg > LOOP_TOLERANCE * (run.mean() if len(run) else seg.max()))
    start = offset + last * length + (int(differs[-1]) + 1 if len(differs) else 0)
    return period / sample_rate, start / sample_rate, score


# ----------------------------------------------------------------------------------------------------- verdict


def _check(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise AudioError(f"{what} must be mono (1-D), got shape {y.shape}; mix it down first")
    if not np.issubdtype(y.dtype, np.number):
        raise AudioError(f"{what} must hold numbers, got dtype {y.dtype}")
    return y.astype(np.float64)


def _one_blas_thread():
    """Limit BLAS to one thread where threadpoolctl is installed: the products here are small (64 x 64, 800 x 64),
    and on a busy 2-core machine (training alongside) a second, spin-waiting BLAS thread made evaluation 3x slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def evaluate(generated: np.ndarray, sample_rate: int, reference: np.ndarray, reference_rate: int) -> Evaluation:
    """Measure mono `generated` at `sample_rate` against the song `reference` at `reference_rate` (resampled to
    `sample_rate` when they differ). See `Evaluation` for every metric and flag.

    Raises AudioError when either clip is not mono, shorter than MIN_SECONDS, or the song is silent or non-finite.
    """
    with _one_blas_thread():
        return _evaluate(generated, sample_rate, reference, reference_rate)


def _evaluate(generated: np.ndarray, sample_rate: int, reference: np.ndarray, reference_rate: int) -> Evaluation:
    import librosa

    gen = _check(generated, "generated audio")
    ref = _check(reference, "reference song")
    sample_rate, reference_rate = int(sample_rate), int(reference_rate)
    if sample_rate <= 0 or reference_rate <= 0:
        raise AudioError(f"sample rates must be positive, got {sample_rate} and {reference_rate}")
    if not np.all(np.isfinite(ref)):
        raise AudioError("the reference song holds NaN or infinite samples; check the file")
    rate_mismatch = reference_rate != sample_rate
    if rate_mismatch:
        ref = librosa.resample(ref, orig_sr=reference_rate, target_sr=sample_rate)
    for y, what in ((gen, "generated audio"), (ref, "reference song")):
        if len(y) < MIN_SECONDS * sample_rate:
            raise AudioError(f"{what} is {len(y) / sample_rate:.2f} s long; evaluation needs at least {MIN_SECONDS} s")
    ref_rms = _rms(ref)
    if ref_rms == 0.0:
        raise AudioError("the reference song is silent; evaluate against the song the model was trained on")

    finite = np.isfinite(gen)
    nonfinite_ratio = float(1.0 - finite.mean())
    gen = np.where(finite, gen, 0.0)

    flat, ref_flat = band_flatness(gen, sample_rate, ref)
    noise = noise_likeness(flat, ref_flat)

    ref_mel = mel_power(ref, sample_rate)
    floor = DB_FLOOR * float(ref_mel.mean())
    song = to_db(ref_mel, floor)
    frames = to_db(mel_power(gen, sample_rate), floor)
    mu_s, cov_s = _gaussian(song)
    frechet = frechet_distance(*_gaussian(frames), mu_s, cov_s)
    # Real excerpts are cut from the waveform at sub-hop offsets, as a generator's output would fall on the song's
    # frame grid, and analysed alone; slicing the song's own frames would align them and flatter a periodic song.
    length = min(len(gen), len(ref) // 2)
    hop = max(1, int(round(FEATURE_HOP_S * sample_rate)))
    starts = np.linspace(0, len(ref) - length - hop, REAL_EXCERPTS).astype(int)
    starts += (np.arange(REAL_EXCERPTS) * 2 + 1) * hop // (2 * REAL_EXCERPTS)
    real = [
        frechet_distance(*_gaussian(to_db(mel_power(ref[s : s + length], sample_rate), floor)), mu_s, cov_s)
        for s in starts
    ]
    spread = 2.0 * float(np.trace(cov_s))  # mean squared distance between two random frames of the song
    frechet_real = max(float(np.mean(real)), REAL_FLOOR * spread, 1e-12)

    nearest = novelty_distances(gen, ref, sample_rate, frames, song, floor)
    novelty = float(np.mean(np.sqrt(nearest / max(spread, 1e-12))))

    period, start, score = find_loop(gen, sample_rate, min_rms=LOOP_MIN_LEVEL * ref_rms)

    ev = dict(
        seconds=len(gen) / sample_rate,
        sample_rate=sample_rate,
        reference_rate=reference_rate,
        audible_ratio=audible_ratio(gen, sample_rate, ref),
        loudness_ratio=_rms(gen) / ref_rms,
        band_flatness=flat,
        reference_band_flatness=ref_flat,
        noise_likeness=noise,
        frechet=frechet,
        frechet_real=frechet_real,
        frechet_ratio=frechet / frechet_real,
        novelty=novelty,
        loop_period_s=period,
        loop_start_s=start,
        loop_score=score,
        clipping_ratio=float(np.mean(np.abs(gen) >= CLIP_LEVEL)),
        nonfinite_ratio=nonfinite_ratio,
        rate_mismatch=rate_mismatch,
    )
    ev = {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in ev.items()}
    return Evaluation(**ev, flags=verdict(**ev))


def verdict(**metrics) -> tuple[str, ...]:
    """The flags for a dict of Evaluation's metric fields, in FLAG_ORDER (see Evaluation.flags)."""
    m = metrics
    flags = set()
    if m["audible_ratio"] < SILENT_BELOW:
        flags.add("silent")
    if m["loop_period_s"] is not None:
        flags.add("stuck")
    if not flags:
        if m["noise_likeness"] > NOISE_LIKE_ABOVE and m["band_flatness"] > NOISE_FLAT_ABOVE:
            flags.add("noise_like")
        if m["novelty"] < COPYING_BELOW:
            flags.add("copying")
        if m["frechet_ratio"] > FAR_ABOVE:
            flags.add("far_from_song")
    if m["clipping_ratio"] > CLIPPING_ABOVE:
        flags.add("clipping")
    if m["nonfinite_ratio"] > 0:
        flags.add("nonfinite")
    return tuple(f for f in FLAG_ORDER if f in flags)


# ------------------------------------------------------------------------------------------------------ edges


def load_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """(mono float32, rate) of any file framegen can read, NaN/inf kept so they are counted, not refused.

    The same loader as training (framegen.audio), so it never hangs and errors are one-line AudioErrors."""
    from framegen.audio import read_audio

    return read_audio(path, allow_nonfinite=True)


def evaluate_files(generated_path: str | Path, reference_path: str | Path) -> Evaluation:
    """`evaluate` on two audio files, mixed down to mono; the song is resampled to the generated file's rate (and
    `rate_mismatch` set) when they differ. Raises AudioError for a missing or unreadable file."""
    generated, rate = load_mono(generated_path)
    reference, reference_rate = load_mono(reference_path)
    return evaluate(generated, rate, reference, reference_rate)


_EXPLAIN = {
    "seconds": "length of the generated clip",
    "audible_ratio": "share of 100 ms windows louder than 10% of the song's median window (1 = sounds throughout)",
    "loudness_ratio": "RMS of the clip / RMS of the song (1 = as loud)",
    "band_flatness": "spectral flatness within octave bands (noise ~0.56, music lower)",
    "reference_band_flatness": "the same for the song",
    "noise_likeness": "0 = as tonal as the song, 1 = as flat as noise",
    "frechet": "Frechet distance of log-mel frame statistics to the whole song (dB^2)",
    "frechet_real": "the same for real excerpts of the song of this length",
    "frechet_ratio": "frechet / frechet_real (~1 = as close as a real excerpt)",
    "novelty": "distance of each second to its nearest second of the song (0 = verbatim copy, ~1 = novel)",
    "loop_period_s": "period of an exact repetition up to the end (None = no loop)",
    "loop_start_s": "where that repetition starts",
    "loop_score": "1 = exact repetition, ~0 = noise",
    "clipping_ratio": "share of samples at full scale",
    "nonfinite_ratio": "share of NaN/inf samples",
}


def format_report(ev: Evaluation) -> str:
    """Human-readable multi-line report: the flags, the rates, then one metric per line with a short explanation."""
    lines = [f"flags: {', '.join(ev.flags) if ev.flags else 'none'}"]
    rate = f"sample rate: {ev.sample_rate} Hz"
    if ev.rate_mismatch:
        rate += f" (song resampled from {ev.reference_rate} Hz)"
    lines.append(rate)
    for name, why in _EXPLAIN.items():
        value = getattr(ev, name)
        text = "None" if value is None else f"{value:.4g}"
        lines.append(f"{name:>24}: {text:<10} {why}")
    return "\n".join(lines)
