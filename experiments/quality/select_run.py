"""Model-scored unit selection, measured: for each song, generate 30 s from the held-out tail with each mechanism and
sampling seed, score every clip with framegen.evaluate, and score each jump exactly from the clip's path sidecar.
One JSON line per clip in OUT/select.jsonl.

    python experiments/quality/select_run.py OUT TRAINED_RUN:ONE_STEP_RUN [...] [--seeds 0 1 2] [--seconds 30]

Mechanisms (the same generation code, only the scores differ):
  model     the trained model's lookahead scores (the default path, --select model)
  onestep   the same recipe after one optimizer step (--select model on the one-step run)
  uniform   the trained run with every candidate scored alike (--select uniform)
  off       the trained run without unit selection (MSE: free-running feedback; VQ: sampled codes' exemplars)

Exact jump score (needs the sidecar): at each jump, the song's beat-long window where the output lands against the
one the song itself plays there (the continuation), by mean chroma + MFCC z-scored over the song's beats, in units
of the median distance between two random beat windows of the song: 1 - median(d / d_random) (1: what the song
plays, 0: unrelated). Also the jump rate per beat and the longest stretch copied verbatim.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

MECHANISMS = ("model", "onestep", "uniform", "off")


def beat_features(y: np.ndarray, rate: int, starts: np.ndarray, length: int) -> np.ndarray:
    """(n, 24) mean chroma (12) + MFCC 1-12 of the windows y[s : s + length]."""
    import librosa

    out = []
    for s in starts:
        w = y[max(int(s), 0) : max(int(s), 0) + length]
        if len(w) < length:
            w = np.pad(w, (0, length - len(w)))
        c = librosa.feature.chroma_stft(y=w, sr=rate, n_fft=2048, hop_length=512).mean(axis=1)
        m = librosa.feature.mfcc(y=w, sr=rate, n_mfcc=13, n_fft=2048, hop_length=512)[1:].mean(axis=1)
        out.append(np.concatenate([c, m]))
    return np.asarray(out)


class JumpScorer:
    def __init__(self, song: np.ndarray, rate: int, beat: int, n_train: int):
        self.song, self.rate, self.beat = song, rate, beat
        starts = np.arange(0, n_train - beat, beat)
        feats = beat_features(song, rate, starts, beat)
        self.mu, self.sd = feats.mean(0), feats.std(0) + 1e-8
        z = (feats - self.mu) / self.sd
        rng = np.random.default_rng(0)
        i, j = rng.integers(0, len(z), 2000), rng.integers(0, len(z), 2000)
        self.d_random = float(np.median(np.linalg.norm(z[i] - z[j], axis=1)))

    def score(self, positions: np.ndarray, frame_size: int) -> dict:
        jumps = np.flatnonzero(positions[1:] != positions[:-1] + frame_size) + 1
        runs = np.diff(np.concatenate([[0], jumps, [len(positions)]]))
        out = {"jumps": int(len(jumps)), "jumps_per_beat": len(jumps) * self.beat / (len(positions) * frame_size),
               "longest_copy_s": float(runs.max() * frame_size / self.rate)}
        if len(jumps):
            z = lambda s: (beat_features(self.song, self.rate, s, self.beat) - self.mu) / self.sd  # noqa: E731
            d = np.linalg.norm(z(positions[jumps]) - z(positions[jumps - 1] + frame_size), axis=1)
            out["jump_score"] = float(1.0 - np.median(d / self.d_random))
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("pairs", nargs="+", help="TRAINED_RUN:ONE_STEP_RUN")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--mechanisms", default=",".join(MECHANISMS))
    ap.add_argument("--tag", default="")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE generate option, e.g. max_run_s=4")
    a = ap.parse_args()

    from framegen import audio, clock, songpath
    from framegen.config import load_config
    from framegen.data import split_song
    from framegen.generate import generate

    extra = {k: float(v) for k, v in (kv.split("=") for kv in a.set)}
    out = Path(a.out)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    log = open(out / "select.jsonl", "a")
    for pair in a.pairs:
        trained, onestep = (Path(p) for p in pair.split(":"))
        cfg = load_config(trained)
        song = audio.load_song_for(cfg)
        raw = audio.denormalise(song, cfg.norm)
        grid = clock.load(trained) if cfg.model.clock == "beat" else None
        beat = int(round(grid.period)) if grid else cfg.data.sample_rate // 2
        scorer = JumpScorer(raw, cfg.data.sample_rate, beat, split_song(len(song), cfg.data).n_train)
        name = trained.name
        for mech in a.mechanisms.split(","):
            run = onestep if mech == "onestep" else trained
            select = {"model": "model", "onestep": "model", "uniform": "uniform", "off": "off"}[mech]
            for seed in a.seeds:
                wav = out / "wavs" / f"{name}{a.tag}-{mech}-s{seed}.wav"
                t0 = time.time()
                g = generate(run, seconds=a.seconds, sample_seed=seed, select=select, out=wav, overwrite=True,
                             **extra)[0]
                row = {"song": name, "output": cfg.model.output, "mechanism": mech, "seed": seed, "tag": a.tag,
                       "seconds": time.time() - t0, **extra, **g.evaluation.to_dict()}
                path = songpath.load(wav)
                if path is not None:
                    row.update(scorer.score(path.positions, path.frame_size))
                print(json.dumps({k: row[k] for k in row if k in (
                    "song", "mechanism", "seed", "jump_score", "jumps_per_beat", "longest_copy_s", "pulse_ratio",
                    "rhythm_similarity", "frechet_ratio", "novelty", "flags")}), flush=True)
                log.write(json.dumps(row) + "\n")
                log.flush()


if __name__ == "__main__":
    main()
