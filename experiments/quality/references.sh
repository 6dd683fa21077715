#!/usr/bin/env bash
# The trivial references of the quality table, 30 s at 16 kHz each, scored by the same command as the models:
# digital silence, white noise at the song's RMS, and a real 30 s excerpt of the song (from 25% of its length).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p runs/quality/out experiments/quality/results
for song in runs/quality/songs/*; do
  stem=$(basename "${song%.*}")
  python - "$song" "$stem" <<'PY'
import sys
import numpy as np
from framegen import audio
song, stem = sys.argv[1], sys.argv[2]
rate, n = 16000, 30 * 16000
y, _ = audio.load_song(song, rate)
rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
start = len(y) // 4
clips = {"silence": np.zeros(n, np.float32),
         "white-noise": (rms * np.random.default_rng(0).standard_normal(n)).astype(np.float32),
         "real-excerpt": y[start : start + n]}
for name, clip in clips.items():
    audio.write_wav(f"runs/quality/out/{stem}-ref-{name}.wav", clip, rate)
PY
  for name in silence white-noise real-excerpt; do
    framegen evaluate "runs/quality/out/$stem-ref-$name.wav" --reference "$song" --json \
      > "experiments/quality/results/$stem-ref-$name.json"
  done
done
