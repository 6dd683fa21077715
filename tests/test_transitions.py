"""Tests for framegen.transitions on a song whose transitions are known: a 16-beat chord progression at 120 bpm played
six times, each time in another timbre. An excerpt of it follows it; its beats in random order do not; jumps from a
beat to the next beat of another pass (same chords, same predecessor, another timbre) fall in between. A held chord
does not change from beat to beat; the song does."""

import functools
import json

import numpy as np
import pytest

from framegen import evaluate as ev
from framegen import transitions as tr

SR = 16000
BPM = 120.0
BEAT = SR // 2  # samples per beat at 120 bpm
BEATS, PASSES = 16, 6
CHORDS = np.array([[220.0, 275.0, 330.0], [196.0, 246.9, 293.7], [174.6, 220.0, 261.6], [246.9, 311.1, 370.0],
                   [261.6, 329.6, 392.0], [146.8, 185.0, 220.0], [164.8, 207.7, 246.9], [293.7, 370.0, 440.0]])
PROGRESSION = np.random.default_rng(0).integers(0, len(CHORDS), BEATS)


def beat(chord: int, brightness: float) -> np.ndarray:
    """One beat: the chord's three tones with harmonics decaying by `brightness`, struck at the beat's start."""
    t = np.arange(BEAT) / SR
    tone = sum(brightness**k * np.sin(2 * np.pi * f * (k + 1) * t) for f in CHORDS[chord] for k in range(4))
    return (np.exp(-np.arange(BEAT) / (0.3 * SR)) * tone).astype(np.float64)


@functools.cache
def song() -> np.ndarray:
    """PASSES passes of PROGRESSION, pass p with brightness 0.15 + 0.15 p: (PASSES * BEATS * BEAT,)."""
    return np.concatenate([beat(c, 0.15 + 0.15 * p) for p in range(PASSES) for c in PROGRESSION]) * 0.1


def beats_at(order) -> np.ndarray:
    """The song's beats (indices into its PASSES * BEATS beats) played in `order`."""
    y = song()
    return np.concatenate([y[b * BEAT : (b + 1) * BEAT] for b in order])


@functools.cache
def metrics(name: str) -> dict:
    rng = np.random.default_rng(1)
    n = 24  # beats: a 12 s clip
    if name == "excerpt":  # off the beat and off the feature frame grid
        start = int(3.3 * SR) + 7
        clip = song()[start : start + n * BEAT]
    elif name == "shuffled":
        clip = beats_at(rng.integers(0, PASSES * BEATS, n))
    elif name == "similar_jumps":  # every other beat, go on from the same place of another pass
        order, b = [], 5
        for i in range(n):
            order.append(b)
            b += 1
            if i % 2 == 1:
                other = (b // BEATS + rng.integers(1, PASSES)) % PASSES
                b = other * BEATS + b % BEATS
            b %= PASSES * BEATS
        clip = beats_at(order)
    elif name == "held_chord":
        clip = _held(n)
    return tr.transition_metrics(clip, song(), SR, BPM)


def _held(n_beats: int) -> np.ndarray:
    """A chord like the song's first, sustained without attacks: three tones and their octaves, tuned so that no
    two partials beat and the sum never repeats exactly (a repeating one would be 'stuck', not 'static')."""
    t = np.arange(n_beats * BEAT) / SR
    return 0.05 * sum(0.3**k * np.sin(2 * np.pi * f * (k + 1) * t) for f in (220.0, 275.3, 330.7) for k in range(2))


# --------------------------------------------------------------------------------------------------- pieces


def test_beat_windows_average_every_run_of_frames():
    frames = np.random.default_rng(0).standard_normal((50, 3))
    windows = tr.beat_windows(frames, 7)
    assert windows.shape == (44, 3)
    for j in (0, 13, 43):
        np.testing.assert_allclose(windows[j], frames[j : j + 7].mean(axis=0), atol=1e-12)


def test_the_beat_is_the_songs_tempo_folded_into_range():
    per_second = SR / tr.feature_hop(SR)  # 50 frames
    assert tr.beat_frames(SR, 120.0) == 24  # 0.5 s: 25 frames, to a whole number of quarter-beat steps
    assert tr.beat_frames(SR, 480.0) == 12  # 0.125 s doubled to 0.25 s
    assert tr.beat_frames(SR, 30.0) == 48  # 2 s halved to 1 s: 50 frames
    assert tr.beat_frames(SR, 0.0) == 4 * round(tr.DEFAULT_BEAT_S * per_second / 4)
    for bpm in (41.0, 97.0, 133.0, 239.0):
        frames = tr.beat_frames(SR, bpm)
        assert frames % tr.STEPS_PER_BEAT == 0
        assert tr.MIN_BEAT_S - 0.05 < frames / per_second < tr.MAX_BEAT_S + 0.05


# ------------------------------------------------------------------------------------------------- transitions


def test_an_excerpt_follows_the_song():
    m = metrics("excerpt")
    # measured 0.999 and 0.0; without ties (TIE) it read as jumping at 0.4 of its steps between the identical beats
    # of a pass (the progression holds repeated chord pairs)
    assert m["transition"] > 0.9 and m["jump_rate"] < 0.1


def test_a_beat_shuffle_scores_near_chance_at_its_jumps():
    m = metrics("shuffled")
    assert m["jump_rate"] > 0.8  # a jump at (almost) every beat: 0.97
    assert m["transition_jumps"] < 0.35  # 0.12
    # the reference evaluate prints beside it is the same mechanism, built from the song's own frames
    assert m["transition_jumps"] == pytest.approx(m["transition_shuffled"], abs=0.2)


def test_jumps_between_similar_beats_score_in_between():
    jumps, shuffled, excerpt = metrics("similar_jumps"), metrics("shuffled"), metrics("excerpt")
    assert 0.2 < jumps["jump_rate"] < 0.8  # a jump every other beat: 0.65
    # 0.12 < 0.58 < 0.999: what follows a beat in another pass is the same chord in another timbre
    assert shuffled["transition_jumps"] + 0.2 < jumps["transition_jumps"] < excerpt["transition"] - 0.1


def test_references_come_from_the_song_and_are_deterministic():
    m = metrics("excerpt")
    # the song repeats its progression, so real excerpts (matched against the rest of it) find where it goes
    assert m["transition_real"] > m["transition_shuffled"] + 0.3
    again = tr.transition_metrics(song()[1000 : 1000 + 10 * SR], song(), SR, BPM)
    assert again == tr.transition_metrics(song()[1000 : 1000 + 10 * SR], song(), SR, BPM)


def test_a_clip_shorter_than_two_beats_has_no_transition():
    m = tr.transition_metrics(song()[: BEAT + BEAT // 2], song(), SR, BPM)
    assert m["transition"] is m["transition_jumps"] is m["jump_rate"] is None
    json.dumps(m, allow_nan=False)


# -------------------------------------------------------------------------------------------------- change


def test_a_held_chord_does_not_change_and_an_excerpt_changes_as_the_song():
    assert metrics("held_chord")["change_ratio"] < 0.05  # 0.001
    assert metrics("excerpt")["change_ratio"] == pytest.approx(1.0, abs=0.3)


def test_a_held_chord_is_flagged_static_and_an_excerpt_is_not():
    held = ev.evaluate(_held(20), SR, song(), SR)
    assert "static" in held.flags and held.change_ratio < ev.STATIC_BELOW
    excerpt = ev.evaluate(song()[int(3.3 * SR) : int(13.3 * SR)], SR, song(), SR)
    assert "static" not in excerpt.flags


# ------------------------------------------------------------------------------------ exact, from the path sidecar
# A song that repeats itself exactly (PROGRESSION's first 8 beats, one timbre, 4 passes): a path that jumps from a
# beat to the next beat of another pass plays what the song plays there; one that jumps to another chord does not.

PASS_BEATS, REPEATS, F = 8, 4, 400
PER_BEAT = BEAT // F  # frames per beat


@functools.cache
def repeating() -> tuple[np.ndarray, tr.SongIndex]:
    y = np.concatenate([beat(c, 0.4) for _ in range(REPEATS) for c in range(PASS_BEATS)]) * 0.1
    return y, tr.index_song(y, SR, BPM)


def beats_path(starts) -> np.ndarray:
    """Positions (frames of F samples) of one beat from each song sample in `starts`: (len(starts) * PER_BEAT,)."""
    return np.concatenate([s + np.arange(PER_BEAT) * F for s in starts])


def test_an_excerpt_s_path_has_no_jump_and_copies_throughout():
    _, index = repeating()
    positions = 1234 + np.arange(100) * F
    m = tr.path_metrics(index, positions, frame_size=F, sample_rate=SR)
    assert m == dict(jump_score_exact=None, jumps_exact=0.0, longest_copy_s=100 * F / SR)
    assert len(tr.jump_scores(index, positions, frame_size=F, sample_rate=SR)) == 0


def test_jumps_between_identical_beats_score_one_and_jumps_to_another_chord_score_low():
    _, index = repeating()
    bar = PASS_BEATS * BEAT
    rng = np.random.default_rng(0)
    same, other, b, p = [], [], 1, 0
    for i in range(12):  # the next beat, but from another pass; off the beat by 3 frames, as a jump may be
        same.append(p * bar + b * BEAT + 3 * F)
        other.append((i % REPEATS) * bar + (3 * i % PASS_BEATS) * BEAT)  # three beats on: another chord
        b, p = (b + 1) % PASS_BEATS, (p + 1 + rng.integers(0, REPEATS - 1)) % REPEATS
    similar = tr.jump_scores(index, beats_path(same), frame_size=F, sample_rate=SR)
    unrelated = tr.jump_scores(index, beats_path(other), frame_size=F, sample_rate=SR)
    assert len(unrelated) == 11 and 9 <= len(similar) <= 11  # from a pass's last beat into the next is no jump
    assert similar.min() > 0.95  # 1.0: the same samples
    assert unrelated.max() < 0.2 and np.median(unrelated) < 0.0  # -0.54 to -0.10
    m = tr.path_metrics(index, beats_path(other), frame_size=F, sample_rate=SR)
    assert m["jump_score_exact"] == pytest.approx(np.median(unrelated))
    assert m["jumps_exact"] == pytest.approx(11 / 12, abs=0.05) and m["longest_copy_s"] == pytest.approx(0.5)


def test_a_frame_not_from_the_song_is_a_jump_without_a_score():
    _, index = repeating()
    positions = np.array([0, F, -1, 3 * F, 4 * F, 5 * F])
    scores = tr.jump_scores(index, positions, frame_size=F, sample_rate=SR)
    assert scores.shape == (2,) and np.isnan(scores).all()
    m = tr.path_metrics(index, positions, frame_size=F, sample_rate=SR)
    assert m["jump_score_exact"] is None and m["longest_copy_s"] == pytest.approx(3 * F / SR)


def test_transition_metrics_report_the_exact_jumps_only_with_a_path():
    y, _ = repeating()
    clip = y[8000 : 8000 + 40 * F]
    assert {k: tr.transition_metrics(clip, y, SR, BPM)[k] for k in tr.EXACT} == dict.fromkeys(tr.EXACT)
    m = tr.transition_metrics(clip, y, SR, BPM, 8000 + np.arange(40) * F, F)
    assert m["jumps_exact"] == 0.0 and m["longest_copy_s"] == pytest.approx(1.0)
