#!/usr/bin/env bash
# Issue 10 measurements on a lent GPU machine (device tool): carries librosa/soundfile/soxr as wheels in .whl/ and
# the songs in .songs/ (both git-ignored), trains and generates on the GPU, scores on its CPU cores.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import jax, flax, optax, orbax.checkpoint as o, librosa; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'librosa', librosa.__version__)" || exit 1
git log -1 --format='commit %H' 2>/dev/null
timeout ${RHYTHM_TIMEOUT:-480} python3 experiments/quality/rhythm_run.py "$OUT" .songs/track1.ogg .songs/track5.ogg \
  .songs/track8.ogg .songs/demo-song.wav --steps 1616 2>&1 | tee "$OUT/log.txt" | cut -c1-200
