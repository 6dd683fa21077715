"""framegen.synth: the demo song is deterministic, in range, and has the structure it promises."""

import numpy as np

from framegen import synth


def test_demo_song_is_deterministic_and_in_range():
    a = synth.demo_song(4.0, 8000)
    assert a.dtype == np.float32 and a.shape == (32000,)
    np.testing.assert_array_equal(a, synth.demo_song(4.0, 8000))
    assert not np.array_equal(a, synth.demo_song(4.0, 8000, seed=1))  # the pulse's noise burst follows the seed
    assert 0.79 < np.max(np.abs(a)) <= 0.8 + 1e-6


def test_demo_song_repeats_its_two_second_bass_figure():
    rate = 8000
    y = synth.demo_song(8.0, rate).astype(np.float64)
    two = 2 * rate

    def corr(lag):
        return float(np.corrcoef(y[: len(y) - lag], y[lag:])[0, 1])

    assert corr(two) > 0.5 > corr(int(0.37 * rate))  # structure at 2 s, unlike an unrelated lag
