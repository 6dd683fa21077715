"""Frame statistics of sound for framegen.evaluate: octave-band spectral flatness (is it noise?), log-mel frames
and the Frechet distance between their Gaussians (does it sound like the song?), and the nearest-second search behind
novelty (is it a copy?). Pure numpy/scipy/librosa functions; the thresholds that judge them live in evaluate.
"""

from __future__ import annotations

import math

import numpy as np

NOISE_FLATNESS = math.exp(-np.euler_gamma)
"""Expected spectral flatness of a Gaussian noise periodogram, ~0.5615: each bin is exponentially distributed, so
exp(E log P) / E P = exp(-gamma). White and pink noise reach it within every octave band (measured 0.57-0.61)."""

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

def _pow2(seconds: float, sample_rate: int) -> int:
    return int(2 ** round(math.log2(seconds * sample_rate)))


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


def gaussian(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def frechet_and_novelty(gen: np.ndarray, ref: np.ndarray, sample_rate: int) -> dict:
    """{frechet, frechet_real, frechet_ratio, novelty} of clip `gen` against song `ref` (mono, both at
    `sample_rate`); see framegen.evaluate.METRICS."""
    ref_mel = mel_power(ref, sample_rate)
    floor = DB_FLOOR * float(ref_mel.mean())
    song = to_db(ref_mel, floor)
    frames = to_db(mel_power(gen, sample_rate), floor)
    mu_s, cov_s = gaussian(song)
    frechet = frechet_distance(*gaussian(frames), mu_s, cov_s)
    # Real excerpts are cut from the waveform at sub-hop offsets, as a generator's output would fall on the song's
    # frame grid, and analysed alone; slicing the song's own frames would align them and flatter a periodic song.
    length = min(len(gen), len(ref) // 2)
    hop = max(1, int(round(FEATURE_HOP_S * sample_rate)))
    starts = np.linspace(0, len(ref) - length - hop, REAL_EXCERPTS).astype(int)
    starts += (np.arange(REAL_EXCERPTS) * 2 + 1) * hop // (2 * REAL_EXCERPTS)
    real = [
        frechet_distance(*gaussian(to_db(mel_power(ref[s : s + length], sample_rate), floor)), mu_s, cov_s)
        for s in starts
    ]
    spread = 2.0 * float(np.trace(cov_s))  # mean squared distance between two random frames of the song
    frechet_real = max(float(np.mean(real)), REAL_FLOOR * spread, 1e-12)

    nearest = novelty_distances(gen, ref, sample_rate, frames, song, floor)
    novelty = float(np.mean(np.sqrt(nearest / max(spread, 1e-12))))
    return dict(frechet=frechet, frechet_real=frechet_real, frechet_ratio=frechet / frechet_real, novelty=novelty)
