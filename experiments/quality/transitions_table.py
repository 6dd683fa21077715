"""Calibration of the transition measure and the `static` flag (issue 19) on real songs: each song's last --tail
seconds (the held-out tail) as a real excerpt, its beats re-sequenced at random, the jukebox of jukebox.py, white
noise and a held chord (a drone), all scored by framegen.evaluate against the rest of the song.

    python experiments/quality/transitions_table.py SONG [SONG ...] [--rate 16000] [--tail 30] [--seeds 0 1 2]

Prints one markdown row per song, clip and seed (the real tail, noise and the drone once), and the CPU seconds of
evaluate and of its transition metrics (experiments/quality/transitions.md keeps the results).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from jukebox import jukebox, render

from framegen import audio, clock, evaluate, transitions

COLUMNS = ("transition", "transition_jumps", "jump_rate", "change_ratio")


def clips(train: np.ndarray, tail: np.ndarray, rate: int, seeds) -> dict[str, np.ndarray]:
    """The clips of one song: the real tail; per seed its beats re-sequenced at random and the jukebox; white noise
    at the song's loudness; a held tempered chord (its partials beat slowly, as a real drone's do) at a quarter."""
    n = len(tail)
    rms = float(np.sqrt(np.mean(train.astype(np.float64) ** 2)))
    beats = clock.track(train, rate).beats
    t = np.arange(n) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 277.18, 329.63))
    out = {"real tail": tail}
    for seed in seeds:
        order = np.random.default_rng(seed).integers(0, len(beats) - 2, int(2 * n / rate / 0.25))
        out[f"beat shuffle, seed {seed}"] = render(train, beats, list(order), rate, n)
    for seed in seeds:
        out[f"jukebox, seed {seed}"] = jukebox(train, rate, n / rate, seed=seed)[0]
    out["white noise"] = rms * np.random.default_rng(0).standard_normal(n)
    out["held chord (drone)"] = 0.25 * rms * chord / np.sqrt(np.mean(chord**2))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("songs", nargs="+")
    ap.add_argument("--rate", type=int, default=16000)
    ap.add_argument("--tail", type=float, default=30.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = ap.parse_args()
    print("| song | clip | " + " | ".join(COLUMNS) + " | flags | real / shuffled (jump rate real) | CPU s: evaluate, "
          "transitions |")
    print("|" + "---|" * (len(COLUMNS) + 5))
    for song in a.songs:
        y, _ = audio.load_song(song, a.rate)
        cut = len(y) - int(a.tail * a.rate)
        train, tail = y[:cut], y[cut:]
        for name, clip in clips(train, tail, a.rate, a.seeds).items():
            t0 = time.process_time()
            ev = evaluate.evaluate(clip, a.rate, train, a.rate)
            t1 = time.process_time()
            with evaluate._one_blas_thread():
                transitions.transition_metrics(clip, train, a.rate, ev.tempo_song)
            took = f"{t1 - t0:.1f}, {time.process_time() - t1:.1f}"
            cells = " | ".join("-" if getattr(ev, c) is None else f"{getattr(ev, c):.2f}" for c in COLUMNS)
            print(f"| {Path(song).stem} | {name} | {cells} | {', '.join(ev.flags) or 'none'} | "
                  f"{ev.transition_real:.2f} / {ev.transition_shuffled:.2f} ({ev.jump_rate_real:.2f}) | {took} |",
                  flush=True)


if __name__ == "__main__":
    main()
