"""framegen.seams: the seam ramp and exemplar overlap-add turn frame borders into continuous audio."""

import numpy as np

from framegen.seams import overlap_add, smooth_seams

F = 40


def _max_seam_jump(y, frame_size):
    seams = np.arange(frame_size, len(y), frame_size)
    return float(np.max(np.abs(y[seams] - y[seams - 1])))


def test_smooth_seams_removes_steps_between_constant_frames_and_keeps_the_length():
    rng = np.random.default_rng(0)
    y = np.repeat(rng.uniform(-1, 1, 30), F).astype(np.float32)  # constant frames, a step at every border
    y = y[:-7]  # a partial last frame
    out = smooth_seams(y, F, 8)
    assert out.shape == y.shape
    before, after = _max_seam_jump(y, F), _max_seam_jump(out, F)
    assert before > 0.5 and after < 0.02 * before
    assert np.max(np.abs(np.diff(out))) < 0.25 * before  # the step became a ramp, with no new jump inside it
    middle = np.arange(len(y)) % F
    far = (middle >= 8) & (middle < F - 8)
    np.testing.assert_array_equal(out[far], y[far])  # frame interiors are untouched
    np.testing.assert_array_equal(smooth_seams(y, F, 0), y)


def test_smooth_seams_leaves_a_smooth_waveform_nearly_alone():
    t = np.arange(40 * F)
    y = np.sin(2 * np.pi * t / 97.0).astype(np.float32)
    out = smooth_seams(y, F, 10)
    assert np.max(np.abs(out - y)) < 0.01


def test_overlap_add_of_true_successors_is_the_song_itself():
    song = np.random.default_rng(1).standard_normal(50 * F).astype(np.float32)
    offsets = np.array([[5 * F + 3 + i * F for i in range(20)], [7 + i * F for i in range(20)]])
    out = overlap_add(song, offsets, F, 16)
    assert out.shape == (2, 19 * F)
    np.testing.assert_allclose(out[0], song[6 * F + 3 : 25 * F + 3], atol=1e-6)
    np.testing.assert_allclose(out[1], song[F + 7 : 20 * F + 7], atol=1e-6)


def test_overlap_add_crossfades_real_surroundings_instead_of_jumping():
    rng = np.random.default_rng(2)
    song = np.repeat(rng.uniform(-1, 1, 40), 4 * F).astype(np.float32)  # constant stretches of 4 frames
    offsets = (rng.integers(0, 40, (1, 25)) * 4 + 1) * F  # frames from the middle of random stretches
    hard = overlap_add(song, offsets, F, 0)[0]
    soft = overlap_add(song, offsets, F, 16)[0]
    assert hard.shape == soft.shape == (24 * F,)
    assert _max_seam_jump(hard, F) > 0.5 and _max_seam_jump(soft, F) < 0.1 * _max_seam_jump(hard, F)
    np.testing.assert_array_equal(hard, song[offsets[0, 1:, None] + np.arange(F)].reshape(-1))

