"""Issue 11, design measurement: what a tier should read, and how big it should be. For one song, train at equal
steps and the same seed (VQ output, F=400, T=96, B=32, fp32, 400 steps) the flat model and a one-tier tower (ratio
8) whose tier reads

  logmel   each frame's log-mel spectrum (framegen.tower.log_mel: 32 bands, 0 for silence), the span's frames
           concatenated, through a learned projection: framegen's tier input;
  frames   the span's raw frames concatenated through the same learned projection (patched in here: the library
           keeps only the choice this measured),

with tier GRUs of 256 or 128 units (e.g. logmel-128), and record each run's best validation cross-entropy. One JSON
line per run in OUT/tier_input.jsonl.

    python experiments/quality/tier_input.py OUT SONG [--steps N] [--variants flat,frames-256,logmel-256,...]
"""

import argparse
import json
import time
from pathlib import Path


def patch_frames() -> None:
    """Make tier 1 read the raw frames instead of their log-mel bands (for the rest of this process)."""
    import framegen.model as m
    import framegen.tower as tower

    m.FrameGRU.bands = property(lambda self: self.frame_size)
    tower.log_mel = lambda frames, mel: frames


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("song")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--variants", default="flat,logmel-256,logmel-128,frames-256")
    ap.add_argument("--work", default="/tmp/tier_input")
    a = ap.parse_args()

    from framegen.config import RunConfig
    from framegen.train import train_song

    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    base = dict(frame_size=400, seq_len=96, sample_rate=16000, batch_size=32, lr=2e-3, seed=0, epochs=10_000,
                max_steps=a.steps, sample_every=0, output="vq", precision="fp32")
    name = Path(a.song).stem
    for variant in a.variants.split(","):
        kind, _, size = variant.partition("-")
        tiers = {} if kind == "flat" else {"tiers": (8,), "tier_hidden": int(size)}
        if kind == "frames":
            patch_frames()  # last: it stays patched for the rest of this process
        t0 = time.time()
        result = train_song(a.song, RunConfig.from_options(**base, **tiers), run_dir=work / f"{name}-{variant}")
        best = min(result.metrics, key=lambda r: r["val_ce"])
        row = {"song": name, "variant": variant, "steps": result.step, "best_val_ce": round(best["val_ce"], 4),
               "val_acc": round(best["val_acc"], 4), "best_val_mse": round(best["val_mse"], 4),
               "seconds": round(time.time() - t0, 1)}
        print(json.dumps(row), flush=True)
        with open(out / "tier_input.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
