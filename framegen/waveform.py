"""Waveform measures for framegen.evaluate: RMS loudness over 100 ms windows (is a clip audible?) and an exact
repetition that holds up to a clip's end (is it stuck in a loop?). Pure numpy/scipy; evaluate's flags judge them.
"""

from __future__ import annotations

import numpy as np

WINDOW_S = 0.1
"""Loudness is judged in 100 ms windows: short enough to follow a fade, long enough to span a bass period."""

AUDIBLE_FRACTION = 0.1
"""A window is audible when its RMS exceeds 10% (-20 dB) of the song's median window RMS: the quiet passages of
real music stay within that (real excerpts score 0.96-1.0); a fade-out or a collapsed generator falls far below."""

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


def window_rms(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS of consecutive non-overlapping 100 ms windows (a short tail is dropped): (n_windows,)."""
    length = max(1, int(round(WINDOW_S * sample_rate)))
    n = max(1, len(y) // length)
    windows = np.resize(y, n * length) if len(y) < length else y[: n * length]
    return np.sqrt(np.mean(np.square(windows.reshape(n, length), dtype=np.float64), axis=1))


def audible_ratio(y: np.ndarray, sample_rate: int, reference: np.ndarray) -> float:
    """Share of 100 ms windows of `y` whose RMS exceeds AUDIBLE_FRACTION of `reference`'s median window RMS."""
    ref_windows = window_rms(reference, sample_rate)
    level = float(np.median(ref_windows)) or float(np.sqrt(np.mean(np.square(reference, dtype=np.float64))))
    return float(np.mean(window_rms(y, sample_rate) > AUDIBLE_FRACTION * level))


def rms(y: np.ndarray) -> float:
    """RMS of all of ``y``, in float64."""
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


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
    if max_lag < 1 or rms(tail) <= min_rms:
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
