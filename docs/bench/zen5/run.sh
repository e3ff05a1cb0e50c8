#!/usr/bin/env bash
# The Zen 5 measurements of docs/benchmarks.md ("A fourth CPU"), session 29: bash docs/bench/zen5/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."; . .venv/bin/activate
O=docs/bench/zen5
{ echo "# $(date -u '+%F %T UTC'), session 29: $(lscpu | grep 'Model name' | sed 's/  */ /g'), CPU family 26 (Zen 5), torch $(python -c 'import torch;print(torch.__version__, torch.backends.cpu.get_cpu_capability())'), 2 threads, the VM idle apart from this script"; python docs/bench/gemm_peak.py; } > $O/gemm_peak_fp32.txt
{ echo "# $(date -u '+%F %T UTC'), session 29, Zen 5, bfloat16"; python docs/bench/gemm_peak.py bfloat16; } > $O/gemm_peak_bf16.txt
python benchmark.py --model "reference:dynamixer_s@amp=fp32" "dynamixer_s@amp=fp32" "dynamixer_s@fused=False,amp=fp32" \
    "reference:dynamixer_s@amp=bfloat16" "dynamixer_s@amp=bfloat16" "convnext_tiny@amp=fp32" --bench train -b 8 \
    --device cpu --threads 2 --num-warm-iter 1 --num-bench-iter 2 --rounds 5 --no-proxies --no-gmacs \
    --results-file $O/cpu_s_train_rerun.csv > $O/cpu_s_train_rerun.log 2>&1
python benchmark.py --model "reference:dynamixer_s@amp=fp32" "reference:dynamixer_s@amp=bfloat16" "dynamixer_s@amp=fp32" \
    "dynamixer_s@amp=bfloat16" "dynamixer_s@fused=False,amp=bfloat16" "convnext_tiny@amp=fp32" "convnext_tiny@amp=bfloat16" \
    --bench inference -b 8 --device cpu --threads 2 --num-warm-iter 1 --num-bench-iter 2 --rounds 3 --no-proxies --no-gmacs \
    --results-file $O/cpu_s_infer.csv > $O/cpu_s_infer.log 2>&1
echo bench done
