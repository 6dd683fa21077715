"""Tests for framegen.rhythm on signals whose rhythm is known: click tracks at a set tempo, white noise, a synthetic
120 bpm song (kick on the beat, hi-hat between, a chord held for each bar), a held tone, shuffled 25 ms fragments."""

import functools

import numpy as np
import pytest

from framegen import rhythm as rh

SR = 16000
RATE = SR / rh.onset_hop(SR)  # onset-envelope frames per second


def clicks(bpm: float, seconds: float, sr: int = SR, offset_s: float = 0.0) -> np.ndarray:
    """5 ms 1 kHz clicks every beat from `offset_s`: (round(seconds * sr),)."""
    y = np.zeros(int(round(seconds * sr)))
    n = int(0.005 * sr)
    burst = np.hanning(2 * n)[n:] * np.sin(2 * np.pi * 1000 * np.arange(n) / sr)
    for t in np.arange(offset_s, seconds - 0.01, 60.0 / bpm):
        i = int(round(t * sr))
        y[i : i + n] += burst
    return y


@functools.cache
def rhythmic_song(seconds: float = 60.0, bpm: float = 120.0, seed: int = 0) -> np.ndarray:
    """A kick on every beat, a noise hi-hat on every off-beat and a three-note chord held for each bar of 4 beats
    (four chords in turn): a pulse at `bpm` and held notes, by construction."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    beat = 60.0 / bpm
    phase, off_phase = np.mod(t, beat), np.mod(t + beat / 2, beat)
    kick = np.exp(-phase / 0.05) * np.sin(2 * np.pi * 60 * phase)
    hat = 0.3 * np.exp(-off_phase / 0.01) * rng.standard_normal(len(t))
    root = np.array([220.0, 196.0, 261.63, 174.61])[np.floor(t / (4 * beat)).astype(int) % 4]
    chord = sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1.0, 1.25, 1.5)) / 3
    return (0.5 * kick + hat + 0.3 * chord).astype(np.float32)


def shuffled_fragments(y: np.ndarray, seed: int = 0, fragment_s: float = 0.025) -> np.ndarray:
    """`y`'s consecutive 25 ms fragments in a random order: its sound, no beat, no held note."""
    n = int(fragment_s * SR)
    pieces = y[: len(y) // n * n].reshape(-1, n)
    return pieces[np.random.default_rng(seed).permutation(len(pieces))].reshape(-1)


def envelope(y: np.ndarray) -> np.ndarray:
    return rh.smooth(rh.onset_envelope(y, SR), RATE)


# ------------------------------------------------------------------------------------------ pulse and tempo


def test_a_120_bpm_click_track_has_pulse_near_one_and_tempo_120():
    y = clicks(120, 10)
    assert rh.pulse(envelope(y), RATE) > 0.9  # 0.94: the biased autocorrelation loses 5% at lag 0.5 s of 10 s
    assert rh.tempo(rh.onset_envelope(y, SR), SR) == pytest.approx(120, rel=rh.TEMPO_TOLERANCE)


@pytest.mark.parametrize("seed", range(3))
def test_white_noise_has_pulse_near_zero(seed):
    # Measured 0.08-0.15 over 10 s of noise, seeds 0-4: the highest chance bump of a decorrelated envelope.
    noise = np.random.default_rng(seed).standard_normal(10 * SR)
    assert rh.pulse(envelope(noise), RATE) < 0.2


def test_pulse_counts_peaks_only_not_the_slope_from_lag_zero():
    # A slow envelope (one 10 s swell) is correlated with itself at every lag up to seconds, but has no peak there.
    t = np.arange(int(10 * RATE)) / RATE
    swell = np.sin(np.pi * t / 10.0)
    assert rh.autocorrelation(swell, max_lag=100)[25] > 0.8
    assert rh.pulse(swell, RATE) == 0.0


def test_autocorrelation_is_one_at_lag_zero_and_zero_for_a_constant():
    x = np.random.default_rng(0).standard_normal(500)
    r = rh.autocorrelation(x, max_lag=50)
    assert r.shape == (51,) and r[0] == pytest.approx(1.0)
    assert np.all(np.abs(r) <= 1.0 + 1e-12)
    assert not np.any(rh.autocorrelation(np.full(500, 3.0), max_lag=50))


def test_tempo_match_allows_four_percent_and_a_factor_of_two():
    assert rh.tempo_match(120, 124.5) and rh.tempo_match(60, 120) and rh.tempo_match(240, 117)
    assert not rh.tempo_match(120, 126) and not rh.tempo_match(90, 120) and not rh.tempo_match(0.0, 120)


@pytest.mark.parametrize("sr, offset_s", [(16000, 0.0), (16000, 0.0071), (44100, 0.0033)])
def test_beat_grid_finds_the_clicks_within_a_few_ms(sr, offset_s):
    bpm, beats = rh.beat_grid(clicks(120, 10, sr, offset_s), sr)
    assert bpm == pytest.approx(120, rel=rh.TEMPO_TOLERANCE)
    assert len(beats) >= 17  # the tracker trims weak beats at the ends only
    error = (beats - offset_s + 0.25) % 0.5 - 0.25  # to the nearest click
    assert np.max(np.abs(error)) < 0.005


# ------------------------------------------------------------------------------------------- rhythm pattern


def test_similarity_is_a_centred_cosine():
    curve = np.exp(-np.arange(100) / 30.0)  # a bare decay: every envelope's autocorrelation has one
    assert rh.similarity(curve, curve) == pytest.approx(1.0)
    assert rh.similarity(curve, 2 * curve + 5) == pytest.approx(1.0)  # scale and offset do not count
    assert rh.similarity(curve, -curve) == pytest.approx(-1.0)
    assert rh.similarity(curve, np.ones(100)) == 0.0


def test_rhythm_lags_are_capped_at_half_a_short_clip():
    lags = rh.rhythm_lags(int(10 * RATE), RATE)
    assert (lags.start, lags.stop - 1) == (10, 500)  # 0.1-5 s for 10 s
    assert rh.rhythm_lags(int(60 * RATE), RATE).stop - 1 == 800  # 8 s for a minute


def test_a_90_bpm_click_track_against_a_120_bpm_song_has_low_rhythm_similarity():
    m = rh.rhythm_metrics(clicks(90, 30), rhythmic_song(), SR)
    assert m["rhythm_similarity"] < 0.2  # measured 0.06
    assert m["pulse"] > 0.9 and not m["tempo_match"]  # it has a pulse, just not the song's


def test_a_real_excerpt_of_the_song_scores_like_the_song():
    song = rhythmic_song()
    m = rh.rhythm_metrics(song[int(13.37 * SR) : int(43.37 * SR)], song, SR)
    assert m["rhythm_similarity"] > 0.95 and m["rhythm_similarity_real"] > 0.95  # 0.999 both
    assert m["pulse_ratio"] == pytest.approx(1.0, abs=0.1) and m["pulse_real"] > 0.9
    assert m["tempo"] == pytest.approx(120, rel=rh.TEMPO_TOLERANCE) and m["tempo_match"]
    assert m["continuity_ratio"] == pytest.approx(1.0, abs=0.1)


def test_shuffled_fragments_lose_pulse_pattern_and_continuity():
    song = rhythmic_song()
    m = rh.rhythm_metrics(shuffled_fragments(song[13 * SR : 43 * SR]), song, SR)
    assert m["pulse_ratio"] < 0.3 and m["rhythm_similarity"] < 0.5
    assert m["continuity_ratio"] < 0.6


# --------------------------------------------------------------------------------------------- continuity


def test_a_held_tone_is_more_continuous_than_shuffled_fragments_and_noise_has_no_peaks():
    t = np.arange(10 * SR) / SR
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    fragments = shuffled_fragments(rhythmic_song()[: 10 * SR])

    def held(y):
        power = rh.peak_power(y, SR)
        return rh.continuity(power, min_power=1e-6 * float(power.mean()))

    assert held(tone) == pytest.approx(1.0)
    assert held(fragments) < 0.5 * held(rhythmic_song()[: 10 * SR])
    assert held(np.random.default_rng(0).standard_normal(10 * SR)) == 0.0
    assert held(np.zeros(10 * SR)) == 0.0


def test_silence_has_no_pulse_and_no_tempo():
    silent = rh.onset_envelope(np.zeros(5 * SR), SR)
    assert rh.pulse(silent, RATE) == 0.0 and rh.tempo(silent, SR) == 0.0
