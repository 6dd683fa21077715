"""Tuning the look-ahead terms of unit selection's score (select.md, "What follows a jump"): generate 30 s from the
held-out tail with the near/far weights given, score each clip with evaluate (exact jump scores from its path).

    python experiments/quality/ahead_tune.py NEAR_WEIGHT FAR_WEIGHT RUN [RUN ...] [--far 4 8] [--near 0.2 0.4 0.6 0.8]

One JSON line per clip appended to results/ahead_tuning.jsonl. The rows there were made on the development branch
with the offsets in frames (near 2,4,6,8 and far 40,80 frames of 800 samples at 16 kHz: the same beats at
track1's 120 bpm; "ahead" "-" is the score without look-ahead, "w" the near weight, "wf" the far weight).
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import soundfile as sf

from framegen import audio, songpath, units
from framegen.config import load_config
from framegen.evaluate import evaluate
from framegen.generate import generate

OUT = Path(__file__).parent / "results" / "ahead_tuning.jsonl"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("near_weight", type=float)
    ap.add_argument("far_weight", type=float)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--near", type=float, nargs="*", default=[0.2, 0.4, 0.6, 0.8])
    ap.add_argument("--far", type=float, nargs="*", default=[4.0, 8.0])
    ap.add_argument("--wavs", default="/tmp/ahead")
    a = ap.parse_args()
    original = units.units_for

    def units_for(*args):
        u = original(*args)
        return None if u is None else dataclasses.replace(u, near=tuple(a.near), far=tuple(a.far),
                                                          near_weight=a.near_weight, far_weight=a.far_weight)

    units.units_for = units_for
    Path(a.wavs).mkdir(parents=True, exist_ok=True)
    for run in a.runs:
        cfg = load_config(run)
        rate = cfg.data.sample_rate
        song = audio.denormalise(audio.load_song_for(cfg), cfg.norm)
        for seed in (0, 1, 2):
            wav = Path(a.wavs) / f"{Path(run).name}-{a.near_weight:g}-{a.far_weight:g}-s{seed}.wav"
            t = time.time()
            generate(run, seconds=30, sample_seed=seed, out=wav, overwrite=True, score=False, hold=1.0,
                     max_run_s=8.0, crossfade_ms=25.0)
            y, _ = sf.read(wav, dtype="float32")
            ev = evaluate(y, rate, song, rate, songpath.load(wav))
            row = dict(run=Path(run).name, near=a.near, far=a.far, w=a.near_weight, wf=a.far_weight, seed=seed,
                       exact=ev.jump_score_exact, jumps=ev.jumps_exact, at_jumps=ev.transition_jumps,
                       longest=ev.longest_copy_s, novelty=ev.novelty, pulse=ev.pulse_ratio, frechet=ev.frechet_ratio,
                       flags=ev.flags, s=time.time() - t)
            print(json.dumps(row), flush=True)
            with open(OUT, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
