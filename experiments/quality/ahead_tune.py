import json, sys, time
import numpy as np, soundfile as sf
from framegen import units, audio, songpath
from framegen.config import load_config
from framegen.evaluate import evaluate
from framegen.generate import generate
ahead = tuple(int(x) for x in sys.argv[1].split(",")) if sys.argv[1] != "-" else ()
units.AHEAD, units.AHEAD_WEIGHT = ahead, float(sys.argv[2])
runs = sys.argv[3].split(",")
for run in runs:
    d = f"/work/runs/sel/{run}"
    cfg = load_config(d); rate = cfg.data.sample_rate
    song = audio.denormalise(audio.load_song_for(cfg), cfg.norm)
    for seed in (0, 1, 2):
        wav = f"/work/runs/future/{run}-{sys.argv[1]}-{sys.argv[2]}-s{seed}.wav"
        t = time.time()
        generate(d, seconds=30, sample_seed=seed, out=wav, overwrite=True, score=False, hold=1.0, max_run_s=8.0, crossfade_ms=25.0, select=sys.argv[4] if len(sys.argv) > 4 else None)
        y, _ = sf.read(wav, dtype="float32")
        ev = evaluate(y, rate, song, rate, songpath.load(wav))
        row = dict(run=run, ahead=sys.argv[1], w=sys.argv[2], sel=sys.argv[4] if len(sys.argv) > 4 else "model", seed=seed, exact=ev.jump_score_exact, jumps=ev.jumps_exact, at_jumps=ev.transition_jumps, longest=ev.longest_copy_s, novelty=ev.novelty, pulse=ev.pulse_ratio, frechet=ev.frechet_ratio, flags=ev.flags, s=time.time()-t)
        print(json.dumps(row), flush=True)
        open("/work/runs/future/rows.jsonl", "a").write(json.dumps(row) + "\n")
