"""Seconds of audio per wall second of framegen's library ``generate`` (no scoring, no report) for SECONDS of audio,
compile excluded: the median of REPS calls after a warm-up call of the same length, in one process.

usage: PYTHONPATH=CODE_DIR python experiments/generate/throughput.py RUN_DIR SECONDS REPS
(CODE_DIR: the framegen checkout to import, so the streamed and the old in-memory path run the same script)
"""

import json
import statistics
import sys
import time
from pathlib import Path

from framegen.generate import generate

run, seconds, reps = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
out = run / "generated" / "throughput.wav"
times = []
for i in range(reps + 1):
    t = time.perf_counter()
    generate(run, seconds=seconds, out=out, overwrite=True, score=False)
    if i:
        times.append(time.perf_counter() - t)
out.unlink()
print(json.dumps({"run": run.name, "seconds": seconds, "wall_s": [round(x, 2) for x in times],
                  "median_s": round(statistics.median(times), 2),
                  "realtime_factor": round(seconds / statistics.median(times), 1)}))
