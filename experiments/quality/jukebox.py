"""A simple infinite jukebox: the model-free reference for where a generator jumps (issue 19).

Plays a song's own beats in order and, at a beat whose sound and predecessor both match another beat's, sometimes
jumps there, i.e. plays what followed that other beat next. Beats are the fitted grid of framegen.clock; a beat's
sound is the mean chroma + MFCC of framegen.transitions over it, z-scored by the song. Beats a and c match when
(|f_a - f_c| + |f_{a-1} - f_{c-1}|) / 2 is below --max-distance times the median distance of two random beats;
at a matching beat the jukebox jumps with probability --jump-prob to the successor of a random match (never to
within 4 beats of where it is, which would be a stutter or a skip, not a new path). At the end of the song it must
jump: to the nearest match. Joins are crossfaded over 5 ms.

Only the first --train part of the song is used (by default all but its last 30 s: the held-out tail that
experiments compare against), so the jukebox never plays what a run's generator never saw.

    python experiments/quality/jukebox.py SONG out.wav [--seconds 30] [--seed 0] [--max-distance 0.5]
        [--jump-prob 0.5] [--rate 16000] [--tail 30]
"""

from __future__ import annotations

import argparse

import numpy as np

from framegen import audio, clock, transitions

MIN_JUMP_BEATS = 4
FADE_S = 0.005


def beat_features(y: np.ndarray, rate: int, beats: np.ndarray) -> np.ndarray:
    """(n_beats - 1, D) mean chroma + MFCC over each beat [b_k, b_{k+1}), z-scored over the beats."""
    frames = transitions.frame_features(y, rate)
    hop = transitions.feature_hop(rate)
    edges = np.clip(np.round(beats / hop).astype(int), 0, len(frames))
    c = np.concatenate([np.zeros((1, frames.shape[1])), np.cumsum(frames, axis=0)])
    f = (c[edges[1:]] - c[edges[:-1]]) / np.maximum(edges[1:] - edges[:-1], 1)[:, None]
    return (f - f.mean(axis=0)) / np.maximum(f.std(axis=0), 1e-9)


def matches(f: np.ndarray, max_distance: float, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """For each beat a, the beats c it may jump to (play c + 1 next), and each beat's nearest such c (any
    distance, for the forced jump at the end): (list of (k,) ints, (n,) ints)."""
    n = len(f)
    d = np.linalg.norm(f[:, None, :] - f[None, :, :], axis=2)
    pair = np.full((n, n), np.inf)
    pair[1:, 1:] = (d[1:, 1:] + d[:-1, :-1]) / 2  # this beat and its predecessor
    idx = np.arange(n)
    pair[np.abs(idx[:, None] - idx[None, :]) < MIN_JUMP_BEATS] = np.inf
    pair[:, n - 1] = np.inf  # c + 1 must exist
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n, (2, 4096))
    unit = float(np.median(d[a, b]))
    return [np.flatnonzero(row < max_distance * unit) for row in pair], np.argmin(pair, axis=1)


def play(n_beats: int, seconds_needed: float, beat_s: np.ndarray, allowed, nearest, jump_prob: float,
         seed: int) -> list[int]:
    """The order of beats to play, from beat 1 on, until `seconds_needed` is filled."""
    rng = np.random.default_rng(seed)
    order, total, a = [], 0.0, 1
    while total < seconds_needed:
        order.append(a)
        total += beat_s[a]
        if a + 1 >= n_beats:
            a = int(nearest[a]) + 1
        elif len(allowed[a]) and rng.random() < jump_prob:
            a = int(rng.choice(allowed[a])) + 1
        else:
            a += 1
    return order


def render(y: np.ndarray, beats: np.ndarray, order: list[int], rate: int, n: int) -> np.ndarray:
    """The beats in `order` joined; where one does not follow the other, the first FADE_S of the new beat fades in
    over what would have followed the previous one (equal gain), so no join clicks."""
    fade = max(1, int(FADE_S * rate))
    ramp = np.linspace(0.0, 1.0, fade)
    edges = np.round(beats).astype(int)
    out, prev = [], None
    for k in order:
        piece = y[edges[k] : edges[k + 1]].astype(np.float64)
        if prev is not None and k != prev + 1:
            went_on = y[edges[prev + 1] : edges[prev + 1] + fade]
            m = min(fade, len(piece), len(went_on))
            piece[:m] = went_on[:m] * (1 - ramp[:m]) + piece[:m] * ramp[:m]
        out.append(piece)
        prev = k
    return np.concatenate(out)[:n].astype(np.float32)


def jukebox(y: np.ndarray, rate: int, seconds: float, *, max_distance: float = 0.5, jump_prob: float = 0.5,
            seed: int = 0) -> tuple[np.ndarray, dict]:
    """(clip of `seconds`, facts) played from `y` (mono at `rate`)."""
    grid = clock.track(y, rate)
    if grid is None:
        raise SystemExit("the beat tracker found fewer than 8 beats: no jukebox for this song")
    beats = grid.beats
    f = beat_features(y, rate, beats)
    allowed, nearest = matches(f, max_distance, seed)
    beat_s = np.diff(beats) / rate
    order = play(len(f), seconds + 1.0, beat_s, allowed, nearest, jump_prob, seed)
    jumps = sum(b != a + 1 for a, b in zip(order, order[1:]))
    forced = sum(b != a + 1 and a + 1 >= len(f) for a, b in zip(order, order[1:]))
    clip = render(y, beats, order, rate, int(seconds * rate))
    facts = dict(beats=len(f), with_matches=int(sum(len(a) > 0 for a in allowed)), jumps=jumps,
                 forced_at_the_end=forced, played=len(order), tempo_bpm=round(grid.tempo_bpm, 1))
    return clip, facts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("song")
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-distance", type=float, default=0.5)
    ap.add_argument("--jump-prob", type=float, default=0.5)
    ap.add_argument("--rate", type=int, default=16000)
    ap.add_argument("--tail", type=float, default=30.0, help="seconds at the end the jukebox never plays")
    a = ap.parse_args()
    y, _ = audio.load_song(a.song, a.rate)
    y = y[: len(y) - int(a.tail * a.rate)]
    clip, facts = jukebox(y, a.rate, a.seconds, max_distance=a.max_distance, jump_prob=a.jump_prob, seed=a.seed)
    audio.write_wav(a.out, clip, a.rate)
    print(f"wrote {a.out}: {len(clip) / a.rate:.1f} s; {facts}")


if __name__ == "__main__":
    main()
