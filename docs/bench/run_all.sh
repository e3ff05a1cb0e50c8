#!/bin/bash
# The CPU runs behind docs/benchmarks.md (2 cores, nothing else running; from the repository root).
# About 20 minutes in all.
set -ex
# S side by side: the authors' formulation, our plain and fused paths, both compiled per layer, baselines
TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmark.py --model reference:dynamixer_s dynamixer_s "dynamixer_s@fused=False" "dynamixer_s@torchcompile=inductor" \
    "dynamixer_s@fused=False,torchcompile=inductor" convnext_tiny resmlp_24_224 swin_tiny_patch4_window7_224 deit_small_patch16_224 --bench both -b 8 --device cpu \
    --threads 2 --num-warm-iter 1 --num-bench-iter 2 --rounds 3 --results-file docs/bench/cpu_s_and_baselines.csv
# M and L, same batch
python benchmark.py --model reference:dynamixer_m dynamixer_m "dynamixer_m@fused=False" reference:dynamixer_l dynamixer_l \
    "dynamixer_l@fused=False" --bench both -b 8 --device cpu --threads 2 --num-warm-iter 1 --num-bench-iter 1 --rounds 2 \
    --results-file docs/bench/cpu_m_l.csv
# training alone again (the training rounds of the first command were noisy)
python benchmark.py --model reference:dynamixer_s dynamixer_s "dynamixer_s@fused=False" "dynamixer_s@torchcompile=inductor" \
    "dynamixer_s@fused=False,torchcompile=inductor" convnext_tiny --bench train -b 8 --device cpu --threads 2 --num-warm-iter 1 \
    --num-bench-iter 2 --rounds 3 --no-proxies --no-gmacs --results-file docs/bench/cpu_s_train_rerun.csv
# compile warm-up from a cold inductor cache, one process per line (docs/bench/cpu_s_compile_cold_separate.txt):
# --bench both (its inference warm-up is a cold inference compile), then --bench train (a cold training-step compile)
for e in "dynamixer_s@torchcompile=inductor" "dynamixer_s@fused=False,torchcompile=inductor"; do
    for kind in both train; do
        TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmark.py --model "$e" --bench $kind -b 8 --device cpu --threads 2 \
            --num-warm-iter 1 --num-bench-iter 1 --rounds 1 --no-proxies --no-gmacs
    done
done
# this CPU's fp32 GEMM throughput (the bound on the speed goals)
python docs/bench/gemm_peak.py > docs/bench/gemm_peak.txt
# where the time goes
python docs/bench/profile_s.py > docs/bench/profile_s.txt
# compiled per layer with an activation memory budget (compile_layers(memory_budget=...)), side by side with the
# default partition and eager (session 3; docs/bench/cpu_s_memory_budget.csv)
TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmark.py --model reference:dynamixer_s dynamixer_s \
    "dynamixer_s@fused=False,torchcompile=inductor" "dynamixer_s@fused=False,torchcompile=inductor,compile_memory_budget=0.25" \
    "dynamixer_s@torchcompile=inductor" "dynamixer_s@torchcompile=inductor,compile_memory_budget=0.4" \
    --bench both -b 8 --device cpu --threads 2 --num-warm-iter 1 --num-bench-iter 2 --rounds 3 --no-gmacs \
    --results-file docs/bench/cpu_s_memory_budget.csv
# their cold training-step compile, one process each (appended to docs/bench/cpu_s_compile_cold_separate.txt)
for e in "dynamixer_s@fused=False,torchcompile=inductor,compile_memory_budget=0.25" "dynamixer_s@torchcompile=inductor,compile_memory_budget=0.4"; do
    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmark.py --model "$e" --bench train -b 8 --device cpu --threads 2 \
        --num-warm-iter 1 --num-bench-iter 1 --rounds 1 --no-proxies --no-gmacs
done
# training-only rerun of the compiled entries with and without a budget (docs/bench/cpu_s_memory_budget_train.csv)
python benchmark.py --model "dynamixer_s@fused=False,torchcompile=inductor" "dynamixer_s@fused=False,torchcompile=inductor,compile_memory_budget=0.25" \
    "dynamixer_s@torchcompile=inductor" "dynamixer_s@torchcompile=inductor,compile_memory_budget=0.4" --bench train -b 8 --device cpu \
    --threads 2 --num-warm-iter 1 --num-bench-iter 2 --rounds 5 --no-proxies --no-gmacs --results-file docs/bench/cpu_s_memory_budget_train.csv
# cold inference + training compile with and without a budget, one process each (--bench both; cpu_s_compile_cold_separate.txt)
for e in "dynamixer_s@fused=False,torchcompile=inductor" "dynamixer_s@fused=False,torchcompile=inductor,compile_memory_budget=0.25"; do
    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmark.py --model "$e" --bench both -b 8 --device cpu --threads 2 \
        --num-warm-iter 1 --num-bench-iter 1 --rounds 1 --no-proxies --no-gmacs
done
# saved bytes and profiled ops per activation memory budget, batch 2, one process per setting
for f in 0 1; do for b in 1.0 0.5 0.4 0.25; do OMP_NUM_THREADS=1 python docs/bench/memory_budget_sweep.py $f $b; done; done \
    > docs/bench/memory_budget_sweep.txt
# session 4: bfloat16 autocast on this CPU (avx512_bf16). GEMM throughput per dtype in the same session
python docs/bench/gemm_peak.py float32 > docs/bench/gemm_peak_fp32_session4.txt
python docs/bench/gemm_peak.py bfloat16 > docs/bench/gemm_peak_bf16.txt
# S side by side with every entry under bf16 autocast (docs/bench/cpu_s_bf16.csv)
TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmark.py --model reference:dynamixer_s dynamixer_s "dynamixer_s@fused=False" \
    "dynamixer_s@fused=False,torchcompile=inductor" convnext_tiny resmlp_24_224 --bench both -b 8 --device cpu --threads 2 \
    --amp --amp-dtype bfloat16 --num-warm-iter 1 --num-bench-iter 2 --rounds 3 --no-proxies --no-gmacs \
    --results-file docs/bench/cpu_s_bf16.csv
# fp32 and bf16 entries side by side (per-entry @amp=), then training alone with 5 rounds
python benchmark.py --model "reference:dynamixer_s@amp=fp32" "reference:dynamixer_s@amp=bfloat16" "dynamixer_s@amp=fp32" \
    "dynamixer_s@amp=bfloat16" "dynamixer_s@fused=False,amp=bfloat16" "convnext_tiny@amp=fp32" "convnext_tiny@amp=bfloat16" \
    --bench both -b 8 --device cpu --threads 2 --num-warm-iter 1 --num-bench-iter 2 --rounds 3 --no-proxies --no-gmacs \
    --results-file docs/bench/cpu_s_fp32_vs_bf16.csv
python benchmark.py --model "reference:dynamixer_s@amp=fp32" "reference:dynamixer_s@amp=bfloat16" "dynamixer_s@amp=fp32" \
    "dynamixer_s@amp=bfloat16" "convnext_tiny@amp=fp32" "convnext_tiny@amp=bfloat16" --bench train -b 8 --device cpu \
    --threads 2 --num-warm-iter 1 --num-bench-iter 2 --rounds 5 --no-proxies --no-gmacs \
    --results-file docs/bench/cpu_s_fp32_vs_bf16_train.csv
# where the time goes in bf16, and the casts autocast adds
python docs/bench/profile_s.py bfloat16 > docs/bench/profile_s_bf16.txt
python docs/bench/bf16_casts.py > docs/bench/bf16_casts.txt
# the Fashion-MNIST variants' training step (docs/results.md section 1)
python docs/bench/xs_train_step.py > docs/bench/xs_train_step.txt
# session 5: DataLoader worker vs --in-memory on the Fashion-MNIST recipe, 150 steps each (docs/bench/loader_ab.txt;
# the table there is copied from these runs' log lines)
for mode in "" "--in-memory"; do for kw in "" "--model-kwargs fused=False embed_dims=[32,128,128,128]"; do
    python train.py -c configs/dynamixer_xs_convstem_fashion_mnist.yaml $mode $kw --train-num-samples 19200 \
        --val-num-samples 500 --epochs 1 --output /tmp/runs --experiment ab --log-interval 50 2>&1 | grep "Train: 0 \[150\|Epoch 0"
    rm -rf /tmp/runs/ab*
done; done
# session 5: where the Fashion-MNIST model's training step spends its time (parts switched off, CNN peer beside)
python docs/bench/xs_cost_breakdown.py > docs/bench/xs_cost_breakdown.txt
# session 6: the reweighted plain path before / after the contiguous branch scales in DynaMixerBlock.combine
python docs/bench/plain_path_ab.py > docs/bench/plain_path_ab.txt
