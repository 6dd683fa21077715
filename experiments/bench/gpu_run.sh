#!/bin/bash
# One device call (issue 12): framegen fp32 + bf16 against torch fp32 / autocast / bf16-cast (cuDNN) on the GPU,
# then the fp32-vs-bf16 accuracy run on a real song. Everything lands in $OUT; each part has its own timeout so
# the whole ends inside ~6 minutes. Needs only what the device image has (jax, torch, flax, optax, orbax,
# matplotlib): the song travels decoded (experiments/quality/precision_accuracy.py prepare), no librosa/soundfile.
#   bash experiments/bench/gpu_run.sh            # the real run
#   bash experiments/bench/gpu_run.sh --quick    # seconds: checks the script end to end (on a CPU too)
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT=${OUT:-/tmp/gpu_run_out}
mkdir -p "$OUT"
SONG=${SONG:-.song/track1.npz}
echo "commit $(cat COMMIT 2>/dev/null || git rev-parse HEAD)  $(date -u)"  # COMMIT: written when the tree is copied
nvidia-smi 2>&1 | head -20
python3 - <<'EOF'
import jax, torch
print("jax", jax.__version__, jax.devices(), "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      "cudnn", torch.backends.cudnn.version() if torch.cuda.is_available() else None,
      "cudnn.allow_tf32", torch.backends.cudnn.allow_tf32, "matmul.allow_tf32", torch.backends.cuda.matmul.allow_tf32)
EOF
if [ "${1:-}" = "--quick" ]; then
  timeout 300 python3 -m framegen.cli bench --quick --compare torch --only train,generate,memory --json \
    > "$OUT/bench.jsonl"; echo "bench rc=$?"
  timeout 300 python3 experiments/quality/precision_accuracy.py train "$SONG" "$OUT/acc" --steps 3 --batch-size 4 \
    --seconds 1 --streams 2; echo "accuracy rc=$?"
else
  timeout 180 python3 -m framegen.cli bench --compare torch --only train,generate,memory --steps 6 --json \
    > "$OUT/bench.jsonl"; echo "bench rc=$?"
  timeout 140 python3 experiments/quality/precision_accuracy.py train "$SONG" "$OUT/acc" --steps 600 \
    --batch-size 128 --seconds 10 --streams 4; echo "accuracy rc=$?"
fi
tail -c 3000 "$OUT/bench.jsonl"
cp "$OUT"/acc/runs.jsonl "$OUT"/acc/clips.npz "$OUT"/ 2>/dev/null
rm -rf "$OUT/acc"  # checkpoints: not needed back
ls -la "$OUT"
