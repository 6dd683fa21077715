"""The similarity jukebox (jukebox.py) as rows of select_run.py's table: for each run's song, a 30 s jukebox clip
from the song's training part (the run's split: the held-out tail is never played), scored by framegen.evaluate
against the song like the generated clips, and its jumps scored exactly (select_run.JumpScorer's measure: the beat
window where it lands against the one the song plays after the beat it left).

    python experiments/quality/jukebox_run.py OUT RUN [RUN ...] [--seeds 0 1 2] [--seconds 30]

One JSON line per clip in OUT/select.jsonl, mechanism "jukebox", song the run's name.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seconds", type=float, default=30.0)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import jukebox as jb
    from select_run import JumpScorer

    from framegen import audio, clock
    from framegen.config import load_config
    from framegen.data import split_song
    from framegen.evaluate import score_clip

    out = Path(a.out)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    log = open(out / "select.jsonl", "a")
    for run in a.runs:
        run = Path(run)
        cfg = load_config(run)
        rate = cfg.data.sample_rate
        raw = audio.denormalise(audio.load_song_for(cfg), cfg.norm)
        n_train = split_song(len(raw), cfg.data).n_train
        y = raw[:n_train]
        grid = clock.track(y, rate)
        beats = grid.beats
        feats = jb.beat_features(y, rate, beats)
        run_grid = clock.load(run) if cfg.model.clock == "beat" else None
        beat = int(round(run_grid.period)) if run_grid else rate // 2
        scorer = JumpScorer(raw, rate, beat, n_train)
        for seed in a.seeds:
            allowed, nearest = jb.matches(feats, 0.5, seed)
            order = jb.play(len(feats), a.seconds + 1.0, np.diff(beats) / rate, allowed, nearest, 0.5, seed)
            clip = jb.render(y, beats, order, rate, int(a.seconds * rate))
            audio.write_wav(out / "wavs" / f"{run.name}-jukebox-s{seed}.wav", clip, rate)
            ev = score_clip(clip, raw, rate)
            row = {"song": run.name, "output": cfg.model.output, "mechanism": "jukebox", "seed": seed, "tag": "",
                   **ev.to_dict()}
            edges = np.round(beats).astype(int)
            jumps = [(prev, k) for prev, k in zip(order, order[1:]) if k != prev + 1]
            runs_s, cur = [], 0.0
            for prev, k in zip(order, order[1:]):
                cur += (edges[prev + 1] - edges[prev]) / rate
                if k != prev + 1:
                    runs_s.append(cur)
                    cur = 0.0
            runs_s.append(cur)
            row.update(jumps=len(jumps), jumps_per_beat=len(jumps) / max(len(order), 1),
                       longest_copy_s=float(max(runs_s)))
            if jumps:
                z = lambda s, sc=scorer: (jb_feats(sc, s) - sc.mu) / sc.sd  # noqa: E731
                land = np.array([edges[k] for _, k in jumps])
                cont = np.array([edges[min(p + 1, len(edges) - 1)] for p, _ in jumps])
                d = np.linalg.norm(z(land) - z(cont), axis=1)
                row["jump_score"] = float(1.0 - np.median(d / scorer.d_random))
            print(json.dumps({k: row.get(k) for k in ("song", "mechanism", "seed", "transition_jumps", "jump_score",
                                                      "jumps_per_beat", "longest_copy_s", "novelty", "flags")}),
                  flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()


def jb_feats(scorer, starts):
    from select_run import beat_features

    return beat_features(scorer.song, scorer.rate, starts, scorer.beat)


if __name__ == "__main__":
    main()
