"""framegen.spectral: the frame statistics evaluate gathers. Flatness and the Frechet distance are tested in
test_evaluate.py beside the thresholds that judge them; here, the nearest-second search and the log-mel frames."""

import numpy as np

from framegen import spectral as sp


def test_nearest_seconds_finds_where_each_second_was_copied_from():
    rng = np.random.default_rng(0)
    song = rng.standard_normal((500, 8))  # frames x features
    fps = 20
    starts = [37, 300, 123]
    gen = np.concatenate([song[s : s + fps] for s in starts]) + 1e-3 * rng.standard_normal((3 * fps, 8))
    np.testing.assert_array_equal(sp.nearest_seconds(gen, song, fps), starts)


def test_mel_power_puts_a_tone_in_one_band_and_has_n_mels_columns():
    rate = 16000
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    power = sp.mel_power(tone, rate)
    assert power.shape[1] == sp.N_MELS and 0.9 / sp.FEATURE_HOP_S <= len(power) <= 1 / sp.FEATURE_HOP_S + 1
    loudest = np.argmax(power.mean(axis=0))
    assert power.mean(axis=0)[loudest] > 100 * np.median(power.mean(axis=0))
    np.testing.assert_allclose(sp.to_db(np.array([1.0, 0.0]), 1e-5), [10 * np.log10(1 + 1e-5), -50.0])
