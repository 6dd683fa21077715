"""Generation speed of unit selection (look-ahead, recency, own-past pass and loading included): 600 s from a run,
twice in one process (the first call compiles).

    python experiments/quality/select_speed.py RUN [--seconds 600]
"""

import argparse
import tempfile
import time
from pathlib import Path

from framegen.generate import generate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--seconds", type=float, default=600.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            t = time.time()
            generate(a.run, seconds=a.seconds, out=Path(tmp) / "speed.wav", overwrite=True, score=False,
                     select="model", hold=1.0, max_run_s=8.0, crossfade_ms=25.0)
            dt = time.time() - t
            print(f"call {i}: {a.seconds:g} s in {dt:.1f} s = {a.seconds / dt:.0f}x real time", flush=True)


if __name__ == "__main__":
    main()
