#!/usr/bin/env bash
# Sampling-seed spread of the VQ runs: exemplar emission with and without a 25 ms overlap-add crossfade, seeds 0-2.
set -euo pipefail
cd "$(dirname "$0")/../.."
for run in "$@"; do
  for seed in 0 1 2; do
    for fade in 0 25; do
      variant="exemplar-xf$fade-s$seed"
      [ -f "experiments/quality/results/$run-$variant.json" ] && continue  # done before
      experiments/quality/gen_eval.sh "$run" "$variant" --sample-seed "$seed" --crossfade "$fade"
    done
  done
done
