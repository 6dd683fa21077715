"""Wall time of vq.fit (mini-batch k-means + exemplar assignment) for K = 512..4096 on a 3-minute song, F=800.

    python experiments/quality/kmeans_timing.py SONG      # prints one markdown row per K and kind
"""

import sys
import time

import numpy as np

from framegen import audio, vq


def main(song_path):
    y, _ = audio.load_song(song_path, 16000)
    song = audio.normalise(y, audio.norm_of(y))
    n_train = len(song) - int(round(0.1 * len(song)))
    print(f"song: {song_path} ({len(song) / 16000:.0f} s at 16 kHz, training part {n_train / 16000:.0f} s)")
    print("| K | kind | iterations x batch | fit s (first call, incl. compile) | fit s (again) | unused codes |")
    print("|---|---|---|---|---|---|")
    for k in (512, 1024, 2048, 4096):
        for kind in vq.KINDS:
            times = []
            for _ in range(2):
                t = time.monotonic()
                cb = vq.fit(song, n_train, frame_size=800, k=k, kind=kind)
                times.append(time.monotonic() - t)
            print(f"| {k} | {kind} | {vq.n_iterations(k)} x {vq.BATCH} | {times[0]:.1f} | {times[1]:.1f} | "
                  f"{int(np.sum(cb.counts == 0))} |")


if __name__ == "__main__":
    main(sys.argv[1])
