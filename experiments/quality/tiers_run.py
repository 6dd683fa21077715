"""Issue 11 measurements: for each song, train a VQ model flat and with slower tiers (equal optimizer steps, same seed,
same data order, the default rhythm settings: --clock auto, unit selection --hold 100 --max-run 1), record the best
validation loss, generate 120 s from the held-out tail with each, and score every 30 s window of it with
framegen.evaluate against the song. One JSON line per model and per window in OUT/tiers.jsonl, and OUT/tiers.md:
the table of both, flat and tiered side by side, with the issue's targets checked.

    python experiments/quality/tiers_run.py OUT [SONG ...] [--steps N] [--tiers 8] [--seconds 120] [--window 30]

SONG defaults to the demo song (framegen.synth.demo_song, written to WORK/demo-song.wav) and drascula's track1,
track5, track8. Training and generation run in this process (one compile per shape); scoring runs in a process pool.
"""

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

DRASCULA = Path("/usr/share/scummvm/drascula/audio")
SONGS = ("demo", str(DRASCULA / "track1.ogg"), str(DRASCULA / "track5.ogg"), str(DRASCULA / "track8.ogg"))
BAD_FLAGS = ("silent", "noise_like", "stuck", "copying")  # the "no ... flags"
TARGETS = {"frechet_ratio": 2.0, "rhythm_similarity": 0.6}


def score(job):
    """framegen evaluate of one window against the song (a worker process)."""
    from framegen import evaluate

    wav, song, row = job
    return {**row, **evaluate.evaluate_files(wav, song).to_dict()}


def finished(run_dir: Path, steps: int) -> list[dict] | None:
    """The metrics rows of a run in ``run_dir`` that already trained ``steps`` steps (its scoring is redone, its
    training kept: a killed session, or runs trained apart with the same flags), else None."""
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return rows if rows and rows[-1]["step"] >= steps else None


def windows(wav: Path, seconds: float, out_dir: Path) -> list[Path]:
    """The WAV cut into consecutive windows of ``seconds`` (16-bit, its own rate), written beside it."""
    import soundfile as sf

    y, rate = sf.read(str(wav), dtype="float32")
    n = int(round(seconds * rate))
    paths = []
    for i in range(len(y) // n):
        p = out_dir / f"{wav.stem}-w{i}.wav"
        sf.write(str(p), y[i * n : (i + 1) * n], rate, subtype="PCM_16")
        paths.append(p)
    return paths


def table(rows: list[dict]) -> str:
    """Markdown: best validation loss per song and model, then every window's scores with the targets."""
    train = [r["train"] for r in rows if "train" in r]
    clips = [r for r in rows if "window" in r]
    out = ["| song | model | steps | best val_ce | best val_mse | val_acc | train s |", "|---|---|---|---|---|---|---|"]
    for t in train:
        out.append(f"| {t['song']} | {t['model']} | {t['steps']} | {t['best_val_ce']:.4f} | {t['best_val_mse']:.4f} "
                   f"| {t['val_acc']:.3f} | {t['seconds']:.0f} |")
    out += ["", "| song | model | window | Frechet ratio | rhythm similarity | pulse ratio | continuity ratio | "
            "novelty | flags | targets |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in sorted(clips, key=lambda c: (c["song"], c["model"], c["window"])):
        bad = [f for f in c["flags"] if f in BAD_FLAGS]
        met = (c["frechet_ratio"] <= TARGETS["frechet_ratio"] and c["rhythm_similarity"] >= TARGETS[
            "rhythm_similarity"] and not bad)
        out.append(f"| {c['song']} | {c['model']} | {c['window']} | {c['frechet_ratio']:.2f} | "
                   f"{c['rhythm_similarity']:.2f} | {c['pulse_ratio']:.2f} | {c['continuity_ratio']:.2f} | "
                   f"{c['novelty']:.2f} | {', '.join(c['flags']) or '-'} | {'met' if met else 'missed'} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("songs", nargs="*", default=list(SONGS))
    ap.add_argument("--steps", type=int, default=1616, help="optimizer steps of each model (rhythm.md's 8 epochs)")
    ap.add_argument("--tiers", default="8", help="the tiered model's ratios (T must be a multiple of their product)")
    ap.add_argument("--tier-hidden", type=int, default=None, help="units per tier layer (default: framegen's)")
    ap.add_argument("--frame-size", type=int, default=400)
    ap.add_argument("--seq-len", type=int, default=96)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--codebook", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--work", default="/tmp/tiers")
    a = ap.parse_args()

    from framegen import audio, synth
    from framegen.config import RunConfig
    from framegen.generate import generate
    from framegen.train import train_song

    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    (work / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    log = open(out / "tiers.jsonl", "a")

    def emit(row):
        rows.append(row)
        print(json.dumps(row), flush=True)
        log.write(json.dumps(row) + "\n")
        log.flush()

    pool = ProcessPoolExecutor(max(1, min(12, (os.cpu_count() or 2) - 2)))
    futures = []
    base = dict(frame_size=a.frame_size, seq_len=a.seq_len, sample_rate=16000, val_fraction=0.1, hidden=256, layers=2,
                epochs=10_000, batch_size=a.batch, lr=2e-3, seed=a.seed, max_steps=a.steps, sample_every=0,
                output="vq", codebook=a.codebook, precision=a.precision, clock="auto")  # `train`'s default clock
    models = {"flat": {}, f"tiers {a.tiers}": {"tiers": a.tiers, "tier_hidden": a.tier_hidden}}
    for song in a.songs:
        if song == "demo":
            song = str(audio.write_wav(work / "demo-song.wav", synth.demo_song(), synth.DEMO_RATE))
        name = Path(song).stem
        for model, extra in models.items():
            run_dir = work / f"{name}-{model.replace(' ', '').replace(',', 'x')}"
            metrics = finished(run_dir, a.steps)
            if metrics is None:
                metrics = train_song(song, RunConfig.from_options(**base, **extra), run_dir=run_dir).metrics
            best = min(metrics, key=lambda r: r["val_ce"])
            emit({"train": {"song": name, "model": model, "steps": metrics[-1]["step"], "best_val_ce": best["val_ce"],
                            "best_val_mse": min(r["val_mse"] for r in metrics), "val_acc": best["val_acc"],
                            "seconds": round(metrics[-1]["seconds"], 1), "run_dir": str(run_dir)}})
            wav = work / "wav" / f"{run_dir.name}-{a.seconds:g}s.wav"
            (g,) = generate(run_dir, seconds=a.seconds, out=wav, overwrite=True, score=False)
            for i, w in enumerate(windows(g.path, a.window, work / "wav")):
                futures.append(pool.submit(score, (str(w), song, {"song": name, "model": model, "window": i})))
            for fut in [f for f in futures if f.done()]:  # write what is scored as it comes (a timeout keeps it)
                futures.remove(fut)
                emit(fut.result())
    for fut in futures:
        emit(fut.result())
    (out / "tiers.md").write_text(table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
