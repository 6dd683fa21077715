#!/usr/bin/env bash
# Generate 30 s from the held-out tail's start and score it: gen_eval.sh NAME VARIANT [framegen generate flags...]
# WAV: runs/quality/out/NAME-VARIANT.wav (not in git); scores: experiments/quality/results/NAME-VARIANT.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1 variant=$2
shift 2
mkdir -p runs/quality/out experiments/quality/results
out="runs/quality/out/$name-$variant.wav"
song=$(python -c "import json; print(json.load(open('runs/quality/$name/config.json'))['song'])")
framegen generate --run "runs/quality/$name" --seconds 30 --out "$out" --overwrite --no-score "$@"
framegen evaluate "$out" --reference "$song" --json > "experiments/quality/results/.$name-$variant.json.tmp"
mv "experiments/quality/results/.$name-$variant.json.tmp" "experiments/quality/results/$name-$variant.json"
python -c "import json, sys; d = json.load(open(sys.argv[1])); print(sys.argv[1], 'flags:', d['flags'])" \
  "experiments/quality/results/$name-$variant.json"
