#!/usr/bin/env bash
# Train one model of the quality table: train_one.sh NAME SONG MINUTES EPOCHS [framegen train flags...]
# The run goes to runs/quality/NAME (not in git), its log to runs/quality/NAME.train.log. EPOCHS is chosen so the
# cosine learning-rate schedule ends about when MINUTES of training do (measured steps per minute x MINUTES).
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1 song=$2 minutes=$3 epochs=$4
shift 4
start=$(date +%s)
framegen train "$song" --run-dir "runs/quality/$name" --max-minutes "$minutes" --epochs "$epochs" \
  --sample-every 10 "$@" > "runs/quality/$name.train.log" 2>&1
echo "$name: trained in $(( $(date +%s) - start )) s wall (budget $minutes min of steps)" >> runs/quality/timings.log
