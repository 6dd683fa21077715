"""framegen.synth: the demo song is deterministic and in range, keeps a steady tempo, and its held-out tail is new
music, not a stretch of its training part (the loop it replaced fails that test)."""

import numpy as np
import pytest

from framegen import clock, evaluate, synth

RATE = 8000  # the property tests run at half the demo rate: the same music, half the work


def test_demo_song_is_deterministic_and_in_range():
    a = synth.demo_song(4.0, 8000)
    assert a.dtype == np.float32 and a.shape == (32000,)
    np.testing.assert_array_equal(a, synth.demo_song(4.0, 8000))
    assert not np.array_equal(a, synth.demo_song(4.0, 8000, seed=1))  # the drums' noise follows the seed
    assert 0.79 < np.max(np.abs(a)) <= 0.8 + 1e-6
    assert synth.DEMO_SECONDS == synth.DEMO_BARS * synth.BAR_S and len(synth.demo_song()) == synth.DEMO_SECONDS * 16000


def test_another_seed_is_another_take_of_the_same_notes():
    # Only snare and hi-hat noise is redrawn: a low-passed song (kick, bass, pad, melody) barely changes.
    from scipy.signal import butter, sosfiltfilt

    low = butter(4, 1500, fs=RATE, output="sos")
    a, b = (sosfiltfilt(low, synth.demo_song(16.0, RATE, seed=s).astype(np.float64)) for s in (0, 1))
    assert np.corrcoef(a, b)[0, 1] > 0.95


def test_librosa_finds_the_synthesis_tempo():
    import librosa

    y = synth.demo_song(sample_rate=RATE)
    # librosa's tempo on a 10 ms onset envelope (what framegen.rhythm measures), and the beat clock's fitted grid.
    env = librosa.onset.onset_strength(y=y, sr=RATE, hop_length=RATE // 100)
    bpm = float(librosa.feature.tempo(onset_envelope=env, sr=RATE, hop_length=RATE // 100)[0])
    assert bpm == pytest.approx(synth.DEMO_BPM, rel=0.02)
    assert clock.track(y, RATE).tempo_bpm == pytest.approx(synth.DEMO_BPM, rel=0.02)


def _split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(training part, held-out tail) as framegen splits a song: the last 10% is the tail (DataConfig.val_fraction)."""
    n_train = int(round(0.9 * len(y)))
    return y[:n_train].astype(np.float64), y[n_train:].astype(np.float64)


def _best_match(window: np.ndarray, song: np.ndarray) -> float:
    """Highest normalised correlation of `window` with `song` at any lag (1 = `song` holds an exact copy)."""
    from scipy.signal import correlate

    cross = correlate(song, window, mode="valid", method="fft")
    sq = np.concatenate([[0.0], np.cumsum(song**2)])
    energy = sq[len(window) :] - sq[: len(sq) - len(window)]
    return float(np.max(cross / np.sqrt(np.maximum(energy, 1e-12) * np.sum(window**2))))


def _copied_bars(y: np.ndarray) -> float:
    """The best match in the training part of any one-bar (2 s) window of the tail, at quarter-beat steps."""
    train, tail = _split(y)
    bar = int(synth.BAR_S * RATE)
    return max(_best_match(tail[s : s + bar], train) for s in range(0, len(tail) - bar + 1, bar // 16))


def test_no_bar_of_the_held_out_tail_is_a_copy_of_the_training_part():
    # Bars share the drum pattern and often the chord, so the waveform correlation of the closest bar is well above
    # zero (0.86 measured), but far from a copy (1.0); the replaced loop repeats every 16 s and scores 1.
    assert _copied_bars(synth.demo_song(sample_rate=RATE)) < 0.95
    assert _copied_bars(synth.loop_song(synth.DEMO_SECONDS, RATE)) > 0.999


def test_the_held_out_tail_is_new_material_with_the_songs_pulse():
    # The measure behind evaluate's 'copying' flag, the tail scored against the training part: the demo's tail is
    # as far from its nearest training seconds as a continuation should be (0.46 measured), and keeps the pulse of
    # the steady drum pattern (what the beat clock and no_pulse rely on); the loop's tail is a verbatim copy (~0).
    train, tail = _split(synth.demo_song(sample_rate=RATE))
    ev = evaluate.evaluate(tail, RATE, train, RATE)
    assert ev.novelty > 2 * evaluate.COPYING_BELOW and ev.flags == ()
    assert ev.pulse_real > 0.6 and ev.pulse_ratio > 0.8 and ev.tempo_match
    train, tail = _split(synth.loop_song(synth.DEMO_SECONDS, RATE))
    assert "copying" in evaluate.evaluate(tail, RATE, train, RATE).flags
