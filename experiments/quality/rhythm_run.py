"""Issue 10 measurements: for each song, train a VQ model without and with the beat clock (same steps, same seed),
generate 30 s from the held-out tail with each generation mechanism and sampling seeds 0-2, and score every clip
with framegen.evaluate. One JSON line per model and per clip in OUT/rhythm.jsonl.

    python experiments/quality/rhythm_run.py OUT SONG [SONG ...] [--steps N] [--batch B] [--seconds S]

Mechanisms (generation options; models: `none` = --clock none, `beat` = --clock beat):
  plain        none model, exemplars drawn uniformly (the recipe before this issue)
  units        none model, unit selection: continuation preferred (--hold 1 --max-run 0.5)
  clock        beat model, exemplars drawn uniformly (clock input only)
  clock+units  beat model, unit selection on the bar-phase candidates (--hold 1 --max-run 0.5)
  clock+hold   the same, continuation strongly preferred (--hold 100 --max-run 1): the new default
Training and generation run in this process (one compile per shape); scoring runs in a process pool.
"""

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

MECHANISMS = {
    "plain": ("none", 0.0, 0.0),
    "units": ("none", 1.0, 0.5),
    "clock": ("beat", 0.0, 0.0),
    "clock+units": ("beat", 1.0, 0.5),
    "clock+hold": ("beat", 100.0, 1.0),
}
SEEDS = (0, 1, 2)


def score(job):
    from framegen import evaluate

    wav, song, row = job
    return {**row, **evaluate.evaluate_files(wav, song).to_dict()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("songs", nargs="+")
    ap.add_argument("--steps", type=int, default=1616)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--codebook", type=int, default=1024)
    ap.add_argument("--work", default="/tmp/rhythm")
    a = ap.parse_args()

    from framegen.config import RunConfig
    from framegen.generate import generate
    from framegen.train import train_song

    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "rhythm.jsonl", "a")

    def emit(row):
        print(json.dumps(row), flush=True)
        log.write(json.dumps(row) + "\n")
        log.flush()

    pool = ProcessPoolExecutor(max(1, min(12, (os.cpu_count() or 2) - 2)))
    futures = []
    base = dict(frame_size=400, seq_len=100, sample_rate=16000, val_fraction=0.1, hidden=256, layers=2,
                epochs=10_000, batch_size=a.batch, lr=2e-3, seed=0, max_minutes=None, max_steps=a.steps,
                sample_every=0, feedback_prob=0.0, input_noise=0.0, output="vq", codebook=a.codebook)
    for song in a.songs:
        name = Path(song).stem
        for clock in ("none", "beat"):
            t0 = time.time()
            result = train_song(song, RunConfig.from_options(**base, clock=clock), run_dir=work / f"{name}-{clock}")
            best = min(result.metrics, key=lambda r: r["val_ce"])
            emit({"train": {"song": name, "model": clock, "steps": result.step, "best_val_ce": best["val_ce"],
                            "val_acc": best["val_acc"], "seconds": round(time.time() - t0, 1)}})
            for mech, (model, hold, max_run) in MECHANISMS.items():
                if model != clock:
                    continue
                for seed in SEEDS:
                    wav = work / "wav" / f"{name}-{mech}-s{seed}.wav"
                    (g,) = generate(result.run_dir, seconds=a.seconds, out=wav, overwrite=True, score=False,
                                    sample_seed=seed, hold=hold, max_run_s=max_run)
                    futures.append(pool.submit(score, (str(g.path), song, {"song": name, "mechanism": mech,
                                                                           "seed": seed})))
            for fut in [f for f in futures if f.done()]:  # write what is scored as it comes (a timeout keeps it)
                futures.remove(fut)
                emit(fut.result())
    for fut in futures:
        emit(fut.result())


if __name__ == "__main__":
    main()
