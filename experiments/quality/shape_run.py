"""The shaping options of `framegen generate` measured against the issue's targets: for each run and sampling seed,
generate plain, --ending, --loop, --toward and --intro --ending clips; check the exact length, the ending against
the song's last samples, the loop's wrap clip, the arrival at the passage to reach and the similarity to it over the
approach, each jump's exact score, and the time against plain generation. One JSON line per clip in OUT/shape.jsonl.

    python experiments/quality/shape_run.py OUT RUN [RUN ...] [--seeds 0 1 2] [--seconds 60]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from framegen import audio, shape, songpath, transitions
from framegen.config import load_config
from framegen.evaluate import evaluate
from framegen.generate import generate

# generation settings of the select.md models, trained before these became the run's defaults
EXTRA = dict(hold=1.0, max_run_s=8.0, crossfade_ms=25.0)


def _scores(index, path, rate):
    each = transitions.jump_scores(index, path.positions, frame_size=path.frame_size, sample_rate=rate)
    return each[np.isfinite(each)]


def _similarity_curve(index, clip, rate, target_s):
    """Per output beat: 1 - the distance of the clip's beat window to the nearest window of the passage to reach
    (TARGET_BEATS beats from target_s), in units of random pairs: (times s, similarity)."""
    w = transitions.clip_windows(index, clip, rate)
    hop = transitions.feature_hop(rate)
    first = int(round(target_s * rate / hop))
    passage = index.windows[first : first + shape.TARGET_BEATS * index.length : index.length]
    step = index.length
    rows = np.arange(0, len(w), step)
    d = np.min(np.linalg.norm(w[rows][:, None, :] - passage[None, :, :], axis=-1), axis=1)
    return rows * hop / rate, 1.0 - d / index.unit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seconds", type=float, default=60.0)
    a = ap.parse_args()
    (a.out / "wavs").mkdir(parents=True, exist_ok=True)
    log = open(a.out / "shape.jsonl", "a")
    for run in a.runs:
        cfg = load_config(run)
        rate = cfg.data.sample_rate
        song = audio.denormalise(audio.load_song_for(cfg), cfg.norm)
        name = run.name
        n_song = len(song) / rate
        target = round(0.4 * n_song)  # a passage in the training part, reached half way
        asks = {"plain": {}, "ending": dict(ending=True), "loop": dict(loop=True),
                "toward": dict(toward=(target,), by=(a.seconds / 2,)), "intro-ending": dict(intro=True, ending=True)}
        index = None
        for seed in a.seeds:
            plain_s = None
            for what, kw in asks.items():
                wav = a.out / "wavs" / f"{name}-{what}-s{seed}.wav"
                t0 = time.time()
                generate(run, seconds=a.seconds, sample_seed=seed, out=wav, overwrite=True, score=False,
                         **EXTRA, **kw)
                took = time.time() - t0
                plain_s = took if what == "plain" else plain_s
                y, _ = sf.read(wav, dtype="float32")
                path = songpath.load(wav)
                whole = evaluate(y, rate, song, rate, path)
                if index is None:
                    index = transitions.index_song(song, rate, whole.tempo_song)
                each = _scores(index, path, rate)
                row = {"run": name, "ask": what, "seed": seed, "seconds": took, "time_vs_plain": took / plain_s,
                       "samples": len(y), "exact_length": len(y) == int(round(a.seconds * rate)),
                       "jump_score_exact": whole.jump_score_exact, "jump_score_min": float(each.min()) if len(each)
                       else None, "jumps": int(len(path.jumps)), "pulse_ratio": whole.pulse_ratio,
                       "rhythm_similarity": whole.rhythm_similarity, "frechet_ratio": whole.frechet_ratio,
                       "novelty": whole.novelty, "flags": whole.flags, "marks": path.marks}
                if what in ("ending", "intro-ending"):
                    d = np.abs(y - song[-len(y):])
                    off = np.flatnonzero(d > 2.0 / 32768)
                    row["ending_equal_s"] = (len(y) - (off[-1] + 1 if len(off) else 0)) / rate
                    last = path.jumps[-1] if len(path.jumps) else 0  # the jump into the ending
                    entry = transitions.jump_scores(index, path.positions[last - 1 : last + 1],
                                                    frame_size=path.frame_size, sample_rate=rate)
                    row["ending_entry_score"] = float(entry[0]) if len(entry) else None
                    tail = evaluate(y[-30 * rate :], rate, song, rate)
                    row["last30_pulse_ratio"], row["last30_flags"] = tail.pulse_ratio, tail.flags
                if what == "intro-ending":
                    row["intro_equal_s"] = float(np.argmax(np.abs(y - song[: len(y)]) > 2.0 / 32768)) / rate
                if what == "loop":
                    half = 15 * rate
                    wrap = np.concatenate([y[-half:], y[:half]])
                    w = evaluate(wrap, rate, song, rate)
                    p0 = path.positions[0]
                    row.update(wrap_pulse_ratio=w.pulse_ratio, wrap_transition=w.transition,
                               wrap_transition_jumps=w.transition_jumps, wrap_flags=w.flags,
                               wrap_is_song=bool(path.positions[-1] + path.frame_size == p0))
                if what == "toward":
                    t_song = path.marks["toward"]
                    hit = np.flatnonzero(np.abs(path.positions - t_song * rate) < path.frame_size / 2)
                    # the arrival: the visit of the passage nearest --by (the pull may have played it before)
                    hit = hit[np.argsort(np.abs(hit * path.frame_size / rate - a.seconds / 2))]
                    arrive = hit[0] * path.frame_size / rate if len(hit) else None
                    beat_s = 60.0 / whole.tempo_song
                    row["arrival_s"], row["arrival_off_beats"] = arrive, (
                        abs(arrive - a.seconds / 2) / beat_s if arrive is not None else None)
                    times, sim = _similarity_curve(index, y, rate, t_song)
                    approach = (times < (arrive or a.seconds / 2))
                    thirds = np.array_split(sim[approach], 3)
                    row["similarity_thirds"] = [float(np.mean(t)) for t in thirds]
                    before = path.jumps[path.jumps * path.frame_size / rate < (arrive or 0)]
                    js = transitions.jump_scores(index, path.positions, frame_size=path.frame_size, sample_rate=rate)
                    approach_jumps = js[np.isin(path.jumps, before)]
                    row["approach_jump_min"] = float(np.nanmin(approach_jumps)) if len(approach_jumps) else None
                    row["approach_jump_median"] = float(np.nanmedian(approach_jumps)) if len(approach_jumps) else None
                print(json.dumps({k: row[k] for k in row if k not in ("marks",)}), flush=True)
                log.write(json.dumps(row) + "\n")
                log.flush()


if __name__ == "__main__":
    main()
