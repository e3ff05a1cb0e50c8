#!/usr/bin/env bash
# Session 32 on the Zen 5 (docs/benchmarks.md, "Session 32: traffic, bf16 and a refresh on the Zen 5"), after
# 2b8c7cd: bash docs/bench/zen5/run_s32.sh   (about 25 minutes; the VM idle apart from this script)
set -euo pipefail
cd "$(dirname "$0")/../../.."; . .venv/bin/activate
O=docs/bench/zen5
export OMP_NUM_THREADS=2
echo "# $(date -u '+%F %T UTC'), session 32: $(lscpu | grep 'Model name' | sed 's/  */ /g'), CPU family $(lscpu | awk '/CPU family/{print $3}'), torch $(python -c 'import torch;print(torch.__version__, torch.backends.cpu.get_cpu_capability())'), 2 threads" > $O/s32_machine.txt
# 1. proxies of every model (batch 2, fp32; the speed columns of this run are one batch-1 step and mean nothing)
python benchmark.py --model reference:dynamixer_s dynamixer_s "dynamixer_s@fused=False" reference:dynamixer_m dynamixer_m \
    reference:dynamixer_l dynamixer_l convnext_tiny resmlp_24_224 swin_tiny_patch4_window7_224 deit_small_patch16_224 \
    --bench inference -b 1 --device cpu --threads 2 --num-warm-iter 0 --num-bench-iter 1 --rounds 1 \
    --results-file $O/s32_proxies.csv > $O/s32_proxies.log 2>&1
# 2. S and the baselines side by side, fp32, batch 8
python benchmark.py --model reference:dynamixer_s dynamixer_s "dynamixer_s@fused=False" convnext_tiny resmlp_24_224 \
    swin_tiny_patch4_window7_224 deit_small_patch16_224 --bench both -b 8 --device cpu --threads 2 --num-warm-iter 1 \
    --num-bench-iter 2 --rounds 3 --no-proxies --no-gmacs --results-file $O/s32_cpu_s_and_baselines.csv > $O/s32_cpu_s_and_baselines.log 2>&1
# 3. bf16 autocast, S side by side with convnext_tiny
python benchmark.py --model reference:dynamixer_s dynamixer_s "dynamixer_s@fused=False" convnext_tiny --bench both -b 8 \
    --device cpu --threads 2 --amp --amp-dtype bfloat16 --num-warm-iter 1 --num-bench-iter 2 --rounds 5 --no-proxies \
    --no-gmacs --results-file $O/s32_cpu_s_bf16.csv > $O/s32_cpu_s_bf16.log 2>&1
# 4. regional compile warm-up from a cold inductor cache, one process per line
for e in "dynamixer_s@fused=False,torchcompile=inductor" "dynamixer_s@torchcompile=inductor"; do
    for kind in both train; do
        TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmark.py --model "$e" --bench $kind -b 8 --device cpu --threads 2 \
            --num-warm-iter 1 --num-bench-iter 1 --rounds 1 --no-proxies --no-gmacs 2>&1 | grep '^{'
    done
done > $O/s32_compile_cold.jsonl
# 5. M and L side by side, fp32
python benchmark.py --model reference:dynamixer_m dynamixer_m reference:dynamixer_l dynamixer_l --bench both -b 8 \
    --device cpu --threads 2 --num-warm-iter 1 --num-bench-iter 1 --rounds 2 --no-proxies --no-gmacs \
    --results-file $O/s32_cpu_m_l.csv > $O/s32_cpu_m_l.log 2>&1
echo "# done $(date -u '+%F %T UTC')" >> $O/s32_machine.txt
