"""Model-scored unit selection, measured: for each song, generate 30 s from the held-out tail with each mechanism and
sampling seed, score every clip with framegen.evaluate, and score each jump exactly from the clip's path sidecar.
One JSON line per clip in OUT/select.jsonl.

    python experiments/quality/select_run.py OUT TRAINED_RUN:ONE_STEP_RUN [...] [--seeds 0 1 2] [--seconds 30]

Mechanisms (the same generation code, only the scores differ):
  model     the trained model's lookahead scores (the default path, --select model)
  onestep   the same recipe after one optimizer step (--select model on the one-step run)
  uniform   the trained run with every candidate scored alike (--select uniform)
  off       the trained run without unit selection (MSE: free-running feedback; VQ: sampled codes' exemplars)

Exact jump score (needs the sidecar): framegen.transitions.path_metrics, what `framegen evaluate` reports as
jump_score_exact (at each jump, the song's beat window where the output lands against the one the song itself plays
there, in the transition measure's z-scored chroma + MFCC and units: 1 - median(d / d_random); 1: what the song
plays, 0: unrelated), jumps_exact (jumps per beat) and longest_copy_s; jump_score_min is the worst single jump.

The rows of results/select.jsonl with jump_score / jumps_per_beat instead come from this script's earlier scorer
(its own librosa chroma + MFCC 1-12 over the clock's beat, z-scored over the training part's beats): the same kind of
number, not the same one; select_table.py shows both.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

MECHANISMS = ("model", "onestep", "uniform", "off")


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

    from framegen import audio, songpath, transitions
    from framegen.config import load_config
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
        rate = cfg.data.sample_rate
        index = None  # the song's beat windows, built at its first clip with a sidecar (needs the song's tempo)
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
                    if index is None:  # at the tempo evaluate found, as evaluate's own transition measure
                        index = transitions.index_song(raw, rate, g.evaluation.tempo_song)
                    row.update(transitions.path_metrics(index, path.positions, frame_size=path.frame_size,
                                                        sample_rate=rate))
                    each = transitions.jump_scores(index, path.positions, frame_size=path.frame_size,
                                                   sample_rate=rate)
                    row["jump_score_min"] = float(np.nanmin(each)) if np.isfinite(each).any() else None
                print(json.dumps({k: row[k] for k in row if k in (
                    "song", "mechanism", "seed", "jump_score_exact", "jump_score_min", "jumps_exact", "longest_copy_s",
                    "pulse_ratio", "rhythm_similarity", "frechet_ratio", "novelty", "flags")}), flush=True)
                log.write(json.dumps(row) + "\n")
                log.flush()


if __name__ == "__main__":
    main()
