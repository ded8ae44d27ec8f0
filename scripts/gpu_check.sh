#!/usr/bin/env bash
# Everything a GPU machine should show, in one command and one folder (`make gpu-check`):
#   1. the tests marked gpu (precisions, compile, CUDA against the CPU, no host sync in a step, DDP on 2 GPUs);
#   2. scripts/benchmark.py for fp32/bf16, eager/compiled, batch 128 and 512;
#   3. seconds per MNIST training epoch (experiment=paper, bf16, compiled): a 2-epoch run minus a 1-epoch run,
#      after an untimed short run that prepares MNIST and fills the compiler's caches.
# Works without network on a Python that has torch, Lightning and torchmetrics: scripts/gpu_env.sh adds
# what it lacks from .gpu/wheels (`make gpu-bundle`, where the package index is).
#   bash scripts/gpu_check.sh [out dir]      (REHEARSAL=1: tiny sizes, on whatever device there is)
set -uo pipefail
out=$(mkdir -p "${1:-gpu-check}" && cd "${1:-gpu-check}" && pwd)
python=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

source scripts/gpu_env.sh || exit 2

device=cuda batches="128 512" steps=20 epoch_limit=()
if [ "${REHEARSAL:-0}" = 1 ]; then
  "$python" -c "import torch; raise SystemExit(0 if torch.cuda.is_available() else 1)" || device=cpu
  batches="8" steps=2 epoch_limit=(+trainer.limit_train_batches=3 +trainer.limit_val_batches=2 data.val_size=100)
fi
"$python" - > "$out/device.txt" <<'EOF'
import platform, torch, lightning
name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"{name}; CUDA devices: {torch.cuda.device_count()}; torch {torch.__version__}; "
      f"lightning {lightning.__version__}; python {platform.python_version()}")
EOF
cat "$out/device.txt"

echo "== 1. tests marked gpu"
"$python" -m pytest -m gpu -v -p no:cacheprovider \
  --junitxml "$out/gpu_tests.xml" tests/integration/gpu 2>&1 | tee "$out/gpu_tests.txt"
tests_status=${PIPESTATUS[0]}

echo "== 2. benchmark"
: > "$out/benchmark.jsonl"
for precision in 32 bf16-mixed; do
  for compile in "" --compile; do
    for batch in $batches; do
      echo "-- precision $precision, batch $batch ${compile:-eager}"
      "$python" scripts/benchmark.py --device "$device" --precision "$precision" $compile \
        --batch-size "$batch" --steps "$steps" --json 2>&1 | tee "$out/benchmark_last.txt" | grep -v '^{'
      grep '^{' "$out/benchmark_last.txt" >> "$out/benchmark.jsonl"
    done
  done
done
rm -f "$out/benchmark_last.txt"

echo "== 3. seconds per MNIST training epoch"
accelerator=gpu; [ "$device" = cpu ] && accelerator=cpu
paper_run() {  # paper_run <epochs> <name> [overrides]: experiment=paper, bf16, compiled, no test
  "$python" src/train.py experiment=paper trainer=gpu trainer.accelerator=$accelerator model.compile=true \
    trainer.max_epochs="$1" test=false logger=csv ~callbacks.progress_bar "${@:3}" \
    "hydra.run.dir=$out/$2" > "$out/$2.log" 2>&1 || echo "the run $2 failed: $out/$2.log"
}
paper_run 1 warm_up +trainer.limit_train_batches=20 +trainer.limit_val_batches=2
: > "$out/epoch_times.txt"
for epochs in 1 2; do
  start=$(date +%s.%N)
  paper_run "$epochs" "epochs_$epochs" "${epoch_limit[@]}"
  echo "$epochs $start $(date +%s.%N)" >> "$out/epoch_times.txt"
done
"$python" - "$out/epoch_times.txt" <<'EOF' | tee "$out/epoch_seconds.txt"
import sys
times = {epochs: float(end) - float(start) for epochs, start, end in (line.split() for line in open(sys.argv[1]))}
print(f"one epoch: {times['2'] - times['1']:.1f} s (2-epoch run {times['2']:.1f} s, "
      f"1-epoch run {times['1']:.1f} s, start-up and compilation included in both)")
EOF
echo "results in $out"
exit "$tests_status"
