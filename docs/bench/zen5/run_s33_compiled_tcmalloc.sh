#!/usr/bin/env bash
# Session 33 on the Zen 5 (docs/benchmarks.md, "Session 33"): session 32's best configuration (compiled per layer,
# fused=False) against the authors' formulation and the eager fused path, side by side, under tcmalloc.
# apt-get install -y libtcmalloc-minimal4 && bash docs/bench/zen5/run_s33_compiled_tcmalloc.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."; . .venv/bin/activate
O=docs/bench/zen5
export OMP_NUM_THREADS=2 LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
for amp in bfloat16 fp32; do
    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmark.py --model "reference:dynamixer_s@amp=$amp" "dynamixer_s@amp=$amp" \
        "dynamixer_s@fused=False,torchcompile=inductor,amp=$amp" --bench both -b 8 --device cpu --threads 2 \
        --num-warm-iter 1 --num-bench-iter 2 --rounds 3 --no-proxies --no-gmacs \
        --results-file $O/s33_compiled_tcmalloc_$amp.csv > $O/s33_compiled_tcmalloc_$amp.log 2>&1
done
