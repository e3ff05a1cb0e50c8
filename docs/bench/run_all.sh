#!/bin/bash
# The CPU runs behind docs/benchmarks.md (2 shared cores; run from the repository root).
set -x
python benchmark.py --model dynamixer_s "dynamixer_s@fused=False" "dynamixer_s@torchcompile=inductor" convnext_tiny \
    resmlp_24_224 swin_tiny_patch4_window7_224 deit_small_patch16_224 --bench both -b 8 --device cpu --threads 2 \
    --num-warm-iter 1 --num-bench-iter 1 --rounds 3 --results-file docs/bench/cpu_s_and_baselines.csv
# M and L at batch 2 (batch 8 did not fit before the deadline on the loaded machine)
python benchmark.py --model dynamixer_m "dynamixer_m@fused=False" dynamixer_l "dynamixer_l@fused=False" --bench both -b 2 \
    --device cpu --threads 2 --num-warm-iter 1 --num-bench-iter 1 --rounds 2 --results-file docs/bench/cpu_m_l.csv
# run beside the M/L run above: CPU time per image of S, fused vs plain
python benchmark.py --model dynamixer_s "dynamixer_s@fused=False" --bench both -b 8 --device cpu --threads 2 \
    --num-warm-iter 1 --num-bench-iter 1 --rounds 4 --no-proxies --no-gmacs --results-file docs/bench/cpu_s_cputime.csv
