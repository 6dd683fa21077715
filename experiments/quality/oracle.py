"""Codebook ceiling: re-synthesise a song's held-out tail from its true codes (no model) and score it.

Each tail frame is encoded with a codebook fitted on the training part, then replaced by what its code emits
(centroid / scaled / one of its exemplars); the result is what a VQ model that always picked the right code
would play. Compares codebook kinds and emissions before any training.

    python experiments/quality/oracle.py SONG [K ...]      # prints one markdown row per kind x emission
"""

import sys
import time

import jax.numpy as jnp
import numpy as np

from framegen import audio, vq
from framegen import evaluate as ev_mod

F, RATE = 800, 16000


def main(song_path, ks):
    y, _ = audio.load_song(song_path, RATE)
    norm = audio.norm_of(y)
    song = audio.normalise(y, norm)
    n_train = len(song) - int(round(0.1 * len(song)))
    tail = song[n_train : n_train + (len(song) - n_train) // F * F].reshape(-1, F)
    print("| song | K | codebook | fit s | codes used by the tail | emission | tail MSE | loudness | noise-like | "
          "Fréchet ratio | flags |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in ks:
        for kind in vq.KINDS:
            t = time.monotonic()
            cb = vq.fit(song, n_train, frame_size=F, k=k, kind=kind)
            fit_s = time.monotonic() - t
            codes = np.asarray(vq.encode(jnp.asarray(tail), jnp.asarray(cb.centroids), cb.gain_shape))
            for emit in vq.EMITS:
                table = vq.emission_table(cb, song, emit)
                which = np.random.default_rng(0).integers(0, table.shape[1], len(codes))
                frames = table[codes, which]
                out = audio.denormalise(frames.reshape(-1), norm)
                e = ev_mod.evaluate(np.clip(out, -1, 1), RATE, y, RATE)
                print(f"| {song_path.split('/')[-1]} | {k} | {kind} | {fit_s:.1f} | {len(set(codes))} of "
                      f"{len(codes)} frames | {emit} | {np.mean((frames - tail) ** 2):.2f} | {e.loudness_ratio:.2f} | "
                      f"{e.noise_likeness:.2f} | {e.frechet_ratio:.2f} | {', '.join(e.flags) or 'none'} |")


if __name__ == "__main__":
    main(sys.argv[1], [int(k) for k in sys.argv[2:]] or [512])
