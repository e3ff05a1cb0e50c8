#!/usr/bin/env bash
# Session 32 on the Zen 5, after the proj fix (docs/benchmarks.md, "Session 32"): eager and compiled per layer, fp32 and
# bf16, side by side; then the cold compile warm-up of the documented setting again. bash docs/bench/zen5/run_s32_compiled.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."; . .venv/bin/activate
O=docs/bench/zen5
export OMP_NUM_THREADS=2
echo "# $(date -u '+%F %T UTC'), session 32, commit $(git rev-parse --short HEAD)" > $O/s32_compiled_machine.txt
for amp in fp32 bfloat16; do
    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmark.py --model "reference:dynamixer_s@amp=$amp" "dynamixer_s@amp=$amp" \
        "dynamixer_s@fused=False,amp=$amp" "dynamixer_s@torchcompile=inductor,amp=$amp" \
        "dynamixer_s@fused=False,torchcompile=inductor,amp=$amp" --bench both -b 8 --device cpu --threads 2 \
        --num-warm-iter 1 --num-bench-iter 2 --rounds 3 --no-proxies --no-gmacs \
        --results-file $O/s32_compiled_$amp.csv > $O/s32_compiled_$amp.log 2>&1
done
for kind in both train; do
    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmark.py --model "dynamixer_s@fused=False,torchcompile=inductor" --bench $kind \
        -b 8 --device cpu --threads 2 --num-warm-iter 1 --num-bench-iter 1 --rounds 1 --no-proxies --no-gmacs 2>&1 | grep '^{'
done > $O/s32_compile_cold_after_proj_fix.jsonl
echo "# done $(date -u '+%F %T UTC')" >> $O/s32_compiled_machine.txt
