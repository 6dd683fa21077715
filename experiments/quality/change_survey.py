"""Where the `static` flag's threshold comes from (issue 19): framegen.transitions' change ratio (median beat-to-beat
change of the clip / of the song) of real excerpts of every song given, and of drones and noise against some of them.

    python experiments/quality/change_survey.py SONG [SONG ...] [--drones-on SONG ...] [--rate 16000]

For each song: the change ratio of 8 evenly spaced 30 s excerpts (min, median, max). For each --drones-on song: a
held chord (pure, with noise 20 and 10 dB below it, with 4 Hz tremolo, 5 Hz vibrato, an 8 s swell), a chord changing
every 4 s, white noise, the song's first 6 s followed by a chord at a quarter of its loudness (the MSE drone), a
tiled 50 ms frame of the song (a fixed point) and the same under noise 30 dB down. Songs under 20 s are skipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from framegen import audio, rhythm, transitions

EXCERPT_S = 30.0


def index(y: np.ndarray, rate: int) -> transitions.SongIndex:
    return transitions.index_song(y, rate, rhythm.tempo(rhythm.onset_envelope(y, rate), rate))


def ratio(idx: transitions.SongIndex, clip: np.ndarray, rate: int) -> float:
    song = transitions.change(idx.windows, idx.length)
    return transitions.change(transitions.clip_windows(idx, clip, rate), idx.length) / song


def drones(y: np.ndarray, rate: int) -> dict[str, np.ndarray]:
    n = int(EXCERPT_S * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(0)
    freqs = (110.0, 220.0, 277.18, 329.63)  # tempered: the partials of a real chord beat slowly

    def chord(phase=0.0):
        return sum(np.sin(2 * np.pi * f * t + phase) for f in freqs) / len(freqs)

    def rms(x):
        return float(np.sqrt(np.mean(np.square(x))))

    c = chord()
    frame = y[30 * rate : 30 * rate + rate // 20]
    cases = {
        "chord": c,
        "chord + noise -20 dB": c + 0.1 * rms(c) * rng.standard_normal(n),
        "chord + noise -10 dB": c + 0.316 * rms(c) * rng.standard_normal(n),
        "chord, 4 Hz tremolo 30%": c * (1 + 0.3 * np.sin(2 * np.pi * 4 * t)),
        "chord, 5 Hz vibrato": sum(np.sin(2 * np.pi * f * t + 0.002 * f * np.sin(2 * np.pi * 5 * t))
                                   for f in freqs) / len(freqs),
        "chord, 8 s swell": c * (0.6 + 0.4 * np.sin(2 * np.pi * t / 8)),
        "chord changing every 4 s": sum(np.sin(2 * np.pi * f * (1 + 0.12 * (np.floor(t / 4) % 3)) * t)
                                        for f in freqs[1:]) / 3,
        "white noise": rng.standard_normal(n),
        "song 6 s, then a chord at 1/4": np.concatenate([y[20 * rate : 26 * rate],
                                                         0.25 * rms(y) / rms(c) * c[: n - 6 * rate]]),
        "tiled 50 ms frame (fixed point)": np.tile(frame, n // len(frame) + 1)[:n],
        "tiled frame + noise -30 dB": np.tile(frame, n // len(frame) + 1)[:n]
        + 0.03 * rms(frame) * rng.standard_normal(n),
    }
    return {k: v * rms(y) / max(rms(v), 1e-12) for k, v in cases.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("songs", nargs="+")
    ap.add_argument("--drones-on", nargs="*", default=[])
    ap.add_argument("--rate", type=int, default=16000)
    a = ap.parse_args()
    print("| song | seconds | real 30 s excerpts: min | median | max |")
    print("|---|---:|---:|---:|---:|")
    for song in a.songs:
        y, _ = audio.load_song(song, a.rate)
        if len(y) < 20 * a.rate:
            continue
        idx = index(y, a.rate)
        length = min(int(EXCERPT_S * a.rate), len(y) // 2)
        r = [ratio(idx, y[s : s + length], a.rate) for s in np.linspace(0, len(y) - length, 8).astype(int)]
        print(f"| {Path(song).stem} | {len(y) / a.rate:.0f} | {min(r):.2f} | {np.median(r):.2f} | {max(r):.2f} |",
              flush=True)
    if a.drones_on:
        names = list(drones(np.zeros(40 * a.rate), a.rate))
        print("\n| clip | " + " | ".join(Path(s).stem for s in a.drones_on) + " |")
        print("|---|" + "---:|" * len(a.drones_on))
        cols = []
        for song in a.drones_on:
            y, _ = audio.load_song(song, a.rate)
            idx = index(y, a.rate)
            cols.append([ratio(idx, clip, a.rate) for clip in drones(y, a.rate).values()])
        for i, name in enumerate(names):
            print(f"| {name} | " + " | ".join(f"{c[i]:.3f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
