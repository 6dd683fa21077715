"""The model-free ceiling of beat-aligned re-sequencing, and why the beat grid must be fitted (issue 10).

Plays 30 s of a song's training part in runs of HOLD beats, each run starting in a random bar at the clock's bar
phase, the clock continued from the held-out tail's start at the grid's tempo; scores the clip with
framegen.evaluate. --quantised uses the tracker's raw beats and their median period instead of the fitted grid.

    python experiments/quality/rhythm_oracle.py SONG [--hold-beats 0 1 2] [--quantised]
"""

import argparse

import librosa
import numpy as np

from framegen import clock, evaluate

RATE, F = 16000, 400


def clip(y, beats, period, hold_beats, seed=0):
    n_train = int(0.9 * len(y))
    rng = np.random.default_rng(seed)
    pos0 = clock.beat_position(beats, np.array([float(n_train)]))[0]
    n_bars = int(np.searchsorted(beats, n_train - 2 * F)) // clock.BAR - 1
    max_run = int(hold_beats * period / F)
    out, pos, run = [], None, 0
    for k in range(int(30 * RATE / F)):
        phase = (pos0 + k * F / period) % clock.BAR
        if pos is not None and run < max_run:
            pos, run = pos + F, run + 1
        else:
            bar = rng.integers(0, n_bars)
            pos, run = int(round(np.interp(clock.BAR * bar + phase, np.arange(len(beats)), beats))), 0
        out.append(y[pos : pos + F])
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("song")
    ap.add_argument("--hold-beats", type=float, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quantised", action="store_true")
    a = ap.parse_args()
    y, _ = librosa.load(a.song, sr=RATE)
    if a.quantised:
        _, raw = librosa.beat.beat_track(y=y, sr=RATE, hop_length=clock.HOP, units="samples")
        beats, period = raw.astype(float), float(np.median(np.diff(raw)))
    else:
        grid = clock.track(y, RATE)
        beats, period = grid.beats, grid.period
    for hb in a.hold_beats:
        ev = evaluate.evaluate(clip(y, beats, period, hb), RATE, y, RATE)
        print(f"hold {hb} beats: pulse ratio {ev.pulse_ratio:.2f}, rhythm similarity {ev.rhythm_similarity:.2f}, "
              f"Frechet ratio {ev.frechet_ratio:.2f}, novelty {ev.novelty:.2f}, flags {', '.join(ev.flags) or 'none'}")


if __name__ == "__main__":
    main()
