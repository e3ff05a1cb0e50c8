#!/usr/bin/env bash
# Issue 4's GPU measurements in one prepared command, for a session that is lent a GPU machine (the device tool).
# Device time is scarce (15 minutes a task, a machine start included), so everything runs in one call of at most
# BUDGET=560 seconds, each part under its own timeout (what is left of BUDGET at most) so that one hang does not lose
# the rest, each part's results written when it ends:
#
#   run(command="bash scripts/device_check.sh", timeout_s=600)
#
# Writes to $OUT (default: runs/device_check), at most 8 files as the device tool returns them:
#   infer.csv      inference, batch 256, bf16 autocast, in interleaved rounds: the authors' formulation, ours (fused,
#                  plain, and fused with the opt-in Triton kernel for generate -> softmax -> mix, dynamixer/kernels/
#                  mix.py, never measured before), convnext_tiny, then M (M and L should gain in proportion)
#   train.csv      the same entries, a training step at batch 128 with fused AdamW
#   compiled_infer.csv, compiled_train.csv   dynamixer_s compiled per layer (compile_layers, the fused path): img/s
#                  and warm-up seconds (infer_warmup_s / train_warmup_s hold the compile)
#   memory.csv     dynamixer_s training step alone in the process, so peak memory is its own (the <= 8 GiB goal)
#   profile.txt    the CUDA kernels of one eager bf16 training step of dynamixer_s, by total time: where a fused
#                  Triton kernel (generate -> softmax -> mix) would or would not pay
#   env.txt        GPU, driver and versions
#   log.txt        GPU, driver and versions, then everything the steps printed, first the CUDA tests:
#                  tests/test_cuda.py (`pytest -m gpu`, its compile test left to the compiled rows: the fused path
#                  against the plain one on CUDA in fp32 with TF32 off, bf16 autocast, a training step) and
#                  tests/test_kernels.py (the Triton kernel compiled, against the PyTorch path)
# SMOKE=1 bash scripts/device_check.sh checks the wiring on a CPU in a few minutes (batch 2, one iteration, the CUDA
# tests skip); its numbers mean nothing.
# The machine's python3 has torch, timm, triton and pytest but no fvcore: GMACs and the CPU-side proxies (ops,
# copies, saved bytes; device-independent, in docs/benchmarks.md) are skipped here.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/device_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LOG="$OUT/log.txt"
START=$(date +%s) BUDGET=${BUDGET:-560}  # seconds for all steps: inside the device tool's 600 s per command
step() {  # step <seconds> <name> <command...>: one part under a timeout (cut to what is left of BUDGET), logged
  local limit=$1 name=$2; shift 2
  local left=$((BUDGET - ($(date +%s) - START)))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 15 ]; then echo "== $name: skipped, ${left}s left of ${BUDGET}s" | tee -a "$LOG"; return; fi
  echo "== $name ($(date -u +%T), limit ${limit}s): $*" | tee -a "$LOG"
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG" | tail -n 3
  echo "== $name: exit ${PIPESTATUS[0]} at $(date -u +%T)" | tee -a "$LOG"
}

{ echo "== env"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  $PY -c "import sys, torch, timm; print(sys.version.split()[0], 'torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"
  $PY -c "import triton; print('triton', triton.__version__)" 2>&1; } | tee "$OUT/env.txt" | tee -a "$LOG"

DEVICE=cuda B_INFER=256 B_TRAIN=128 ITERS=(--num-warm-iter 5 --num-bench-iter 20) ROUNDS=3
if [ "${SMOKE:-0}" = 1 ]; then DEVICE=cpu B_INFER=2 B_TRAIN=2 ITERS=(--num-warm-iter 1 --num-bench-iter 1) ROUNDS=1; fi
export DEVICE_CHECK_DEVICE=$DEVICE DEVICE_CHECK_BATCH=$B_TRAIN
BENCH=($PY benchmark.py --device $DEVICE --amp --amp-dtype bfloat16 --no-gmacs --no-proxies --rounds $ROUNDS "${ITERS[@]}")
EAGER=(reference:dynamixer_s dynamixer_s "dynamixer_s@fused=False" "dynamixer_s@triton_mix=1" convnext_tiny
       reference:dynamixer_m dynamixer_m)

step 100 pytest $PY -m pytest -q -m "gpu or not slow" tests/test_cuda.py tests/test_kernels.py -p no:cacheprovider \
    -k "not compile"  # the compiled model: below
step 100 infer "${BENCH[@]}" --bench inference -b $B_INFER --model "${EAGER[@]}" --results-file "$OUT/infer.csv"
step 110 train "${BENCH[@]}" --bench train -b $B_TRAIN --model "${EAGER[@]}" --results-file "$OUT/train.csv"
step 40 memory "${BENCH[@]}" --bench train -b $B_TRAIN --model dynamixer_s --results-file "$OUT/memory.csv"
step 40 profile $PY - "$OUT/profile.txt" <<'EOF'
import os, sys, torch, timm, dynamixer  # noqa: F401
from torch.profiler import profile, ProfilerActivity
dev, bs = os.environ['DEVICE_CHECK_DEVICE'], int(os.environ['DEVICE_CHECK_BATCH'])
model = timm.create_model('dynamixer_s').to(dev)
opt = torch.optim.AdamW(model.parameters(), fused=dev == 'cuda')
x, y = torch.randn(bs, 3, 224, 224, device=dev), torch.randint(0, 1000, (bs,), device=dev)
sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None)
def step():
    with torch.autocast(dev, dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
for _ in range(5 if dev == 'cuda' else 1):
    step()
sync()
acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == 'cuda' else [])
with profile(activities=acts) as prof:
    for _ in range(3 if dev == 'cuda' else 1):
        step()
    sync()
key = 'cuda_time_total' if dev == 'cuda' else 'self_cpu_time_total'
with open(sys.argv[1], 'w') as f:
    f.write(f'dynamixer_s eager training step, batch {bs}, bf16 autocast, fused AdamW, {dev}, 3 steps\n')
    f.write(prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=60))
print('profile written')
EOF
# compiled per layer, inference and training in separate processes (a slow warm-up cannot cost the other's row;
# the second reuses the first's inductor cache where the graphs agree)
step 90 compiled_infer "${BENCH[@]}" --bench inference -b $B_INFER --model "dynamixer_s@torchcompile=inductor" \
    --results-file "$OUT/compiled_infer.csv"
step 120 compiled_train "${BENCH[@]}" --bench train -b $B_TRAIN --model "dynamixer_s@torchcompile=inductor" \
    --results-file "$OUT/compiled_train.csv"
echo "done at $(date -u +%T)" | tee -a "$LOG"
