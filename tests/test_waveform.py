"""framegen.waveform: loudness over 100 ms windows and exact loops up to a clip's end, on the demo loop song and
signals built from it whose answer is known. Their thresholds at work, on whole clips, are in test_evaluate.py."""

import numpy as np
import pytest

from framegen import waveform as wf
from framegen.synth import loop_song

SR = 16000
N = 10 * SR
SONG = loop_song(30.0, SR)
SONG_RMS = wf.rms(SONG)


def test_window_rms_is_the_rms_of_each_whole_window():
    length = int(wf.WINDOW_S * SR)
    y = np.concatenate([np.full(length, 0.5), np.full(length, -0.25), np.ones(length // 2)])  # a short tail
    np.testing.assert_allclose(wf.window_rms(y, SR), [0.5, 0.25])
    assert wf.rms(np.array([3.0, -4.0])) == pytest.approx(np.sqrt(12.5))


def test_audible_ratio_counts_windows_above_a_tenth_of_the_song_median():
    half_silent = np.concatenate([SONG[: N // 2], np.zeros(N // 2, np.float32)])
    assert wf.audible_ratio(SONG[:N], SR, SONG) == 1.0
    assert wf.audible_ratio(half_silent, SR, SONG) == pytest.approx(0.5)
    level = np.median(wf.window_rms(SONG, SR))
    assert wf.audible_ratio(np.full(N, 0.09 * level), SR, SONG) == 0.0
    assert wf.audible_ratio(np.full(N, 0.11 * level), SR, SONG) == 1.0


@pytest.mark.parametrize("length", [400, 441, 1600])
def test_loop_period_of_a_tiled_frame_is_its_length(length):
    clip = np.tile(SONG[SR : SR + length], 6 * SR // length)
    period, start, score = wf.find_loop(clip.astype(np.float64), SR, min_rms=1e-3 * SONG_RMS)
    assert period == length / SR
    assert start == 0.0
    assert score == pytest.approx(1.0)


def test_loop_start_is_where_the_repetition_begins():
    # 2.7 s of song, then its own last 400 samples over and over: the repetition begins one frame before 2.7 s.
    frame = SONG[int(2.7 * SR) - 400 : int(2.7 * SR)]
    clip = np.concatenate([SONG[: int(2.7 * SR)], np.tile(frame, 3 * SR // 400)]).astype(np.float64)
    period, start, _ = wf.find_loop(clip, SR, min_rms=1e-3 * SONG_RMS)
    assert (period, start) == (400 / SR, (int(2.7 * SR) - 400) / SR)


def test_no_loop_in_music_noise_or_a_clip_quieter_than_min_rms():
    assert wf.find_loop(SONG[:N].astype(np.float64), SR, min_rms=1e-3 * SONG_RMS)[:2] == (None, None)
    noise = np.random.default_rng(0).standard_normal(N)
    period, _, score = wf.find_loop(noise, SR, min_rms=1e-3)
    assert period is None and score < 0.1
    assert wf.find_loop(np.zeros(N), SR, min_rms=1e-3) == (None, None, 0.0)
