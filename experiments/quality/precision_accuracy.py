"""fp32 vs bf16 on a real song, same seed: validation loss of a short training run, then clips to evaluate.

Two steps, so the training can run on a machine without librosa/soundfile (the GPU):
    python experiments/quality/precision_accuracy.py prepare SONG song.npz            # decode + normalise (here)
    python experiments/quality/precision_accuracy.py train song.npz OUT --steps 600   # train + generate (anywhere)
    python experiments/quality/precision_accuracy.py evaluate song.npz OUT            # framegen evaluate metrics
``train`` runs fp32 seed 0, bf16 seed 0 and fp32 seed 1 (the seed-to-seed spread to judge the difference by) and
writes OUT/runs.jsonl (config, wall time, every validation row) and OUT/clips.npz (per run: ``streams`` clips of
``seconds`` continuing the song from its held-out tail, from the last checkpoint). ``evaluate`` scores every clip
against the song with ``framegen.evaluate`` and prints the tables of experiments/quality/precision-*.md.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

RUNS = (("fp32", 0), ("bf16", 0), ("fp32", 1))
METRICS = ("audible_ratio", "loudness_ratio", "noise_likeness", "frechet_ratio", "novelty", "loop_score")


def prepare(song: str, out: str, rate: int) -> None:
    from framegen import audio

    y, _ = audio.load_song(song, rate)
    norm = audio.norm_of(y)
    np.savez(out, song=audio.normalise(y, norm), mean=norm.mean, std=norm.std, rate=rate, path=os.path.abspath(song))


def _config(z, precision: str, seed: int, args):
    from framegen.config import DataConfig, ModelConfig, Norm, RunConfig, TrainConfig

    return RunConfig(data=DataConfig(frame_size=args.frame_size, seq_len=args.seq_len, sample_rate=int(z["rate"])),
                     model=ModelConfig(precision=precision),
                     train=TrainConfig(epochs=10_000, batch_size=args.batch_size, seed=seed, max_steps=args.steps,
                                       sample_every=0, log_every=50),
                     song=str(z["path"]), song_samples=len(z["song"]), norm=Norm(float(z["mean"]), float(z["std"])))


def train(song_npz: str, out: str, args) -> None:
    import jax

    from framegen import data
    from framegen.checkpoint import load_params
    from framegen.data import stream_prompts
    from framegen.generate import prompt_start
    from framegen.model import build
    from framegen.stream import Inputs, continue_audio
    from framegen.train import train as train_run

    z = np.load(song_npz)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    song = z["song"]
    clips, rows = {}, []
    for precision, seed in RUNS:
        cfg = _config(z, precision, seed, args)
        run_dir = out / f"run-{precision}-seed{seed}"
        t0 = time.perf_counter()
        res = train_run(cfg, run_dir, song)
        wall = time.perf_counter() - t0
        params = load_params(run_dir, cfg, "last")
        start = prompt_start(len(song), cfg, None, cfg.data.seq_len)
        prompts, _ = stream_prompts(song, start, cfg.data.seq_len, cfg.data.frame_size, args.streams)
        y = continue_audio(Inputs(model=build(cfg.model, cfg.data.frame_size), params=params, cfg=cfg,
                                  prompts=prompts), int(args.seconds * cfg.data.sample_rate))
        clips[f"{precision}-seed{seed}"] = y
        row = {"precision": precision, "seed": seed, "steps": res.step, "wall_s": round(wall, 1),
               "compile_s": round(res.compile_seconds, 1), "backend": jax.default_backend(),
               "device": jax.devices()[0].device_kind, "frame_size": cfg.data.frame_size,
               "seq_len": cfg.data.seq_len, "batch_size": cfg.train.batch_size,
               "steps_per_epoch": data.steps_per_epoch(data.check_fits(len(song), cfg.data), cfg.data,
                                                       cfg.train.batch_size),
               "final_val_mse": res.metrics[-1]["val_mse"], "metrics": res.metrics}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "metrics"}), flush=True)
        with open(out / "runs.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        np.savez_compressed(out / "clips.npz", rate=int(z["rate"]), **clips)


def evaluate(song_npz: str, out: str) -> None:
    from framegen.audio import denormalise
    from framegen.config import Norm
    from framegen.evaluate import evaluate as score

    z = np.load(song_npz)
    out = Path(out)
    song = denormalise(z["song"], Norm(float(z["mean"]), float(z["std"])))
    rate = int(z["rate"])
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    clips = np.load(out / "clips.npz")
    print("| run | steps | B | wall s | val MSE (epoch ends) | final val MSE | vs fp32 seed 0 |")
    print("|---|---|---|---|---|---|---|")
    base = runs[0]["final_val_mse"]
    for r in runs:
        curve = ", ".join(f"{m['val_mse']:.4f}" for m in r["metrics"])
        print(f"| {r['precision']} seed {r['seed']} | {r['steps']} | {r['batch_size']} | {r['wall_s']} | {curve} | "
              f"{r['final_val_mse']:.5f} | {100 * (r['final_val_mse'] / base - 1):+.2f}% |")
    print()
    print("| run | stream | " + " | ".join(METRICS) + " | flags |")
    print("|---|---|" + "---|" * len(METRICS) + "---|")
    per_run = {}
    for name in [k for k in clips.files if k != "rate"]:
        for i, y in enumerate(clips[name]):
            ev = score(np.asarray(y, np.float32), rate, song, rate).to_dict()
            per_run.setdefault(name, []).append(ev)
            print(f"| {name} | {i} | " + " | ".join(f"{ev[m]:.3f}" if ev[m] is not None else "-" for m in METRICS)
                  + f" | {', '.join(ev['flags']) or 'none'} |")
    print()
    print("| run | " + " | ".join(f"{m} mean (min-max over streams)" for m in METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for name, evs in per_run.items():
        cells = []
        for m in METRICS:
            v = np.array([e[m] for e in evs if e[m] is not None], float)
            cells.append(f"{v.mean():.3f} ({v.min():.3f}-{v.max():.3f})" if len(v) else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["prepare", "train", "evaluate"])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--rate", type=int, default=16000)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--frame-size", type=int, default=800)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args(argv)
    if args.what == "prepare":
        prepare(args.src, args.dst, args.rate)
    elif args.what == "train":
        train(args.src, args.dst, args)
    else:
        evaluate(args.src, args.dst)


if __name__ == "__main__":
    sys.exit(main())
