#!/usr/bin/env bash
# Session 33 on the Zen 5 (docs/benchmarks.md, "Session 33"): page faults per image of the timed steps (benchmark.py's
# *_page_faults_per_img) side by side, under glibc's malloc and under tcmalloc, bf16 autocast and fp32.
# apt-get install -y libtcmalloc-minimal4 && bash docs/bench/zen5/run_s33_faults.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."; . .venv/bin/activate
O=docs/bench/zen5
export OMP_NUM_THREADS=2
echo "# $(date -u '+%F %T UTC'), session 33, commit $(git rev-parse --short HEAD)" > $O/s33_faults_machine.txt
for amp in bfloat16 fp32; do
    for pre in "" /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4; do
        v=glibc; [ -n "$pre" ] && v=tcmalloc
        LD_PRELOAD=$pre python benchmark.py --model reference:dynamixer_s dynamixer_s "dynamixer_s@fused=False" convnext_tiny \
            $([ $amp = fp32 ] || echo --amp --amp-dtype $amp) --bench both -b 8 --device cpu --threads 2 --num-warm-iter 1 \
            --num-bench-iter 2 --rounds 3 --no-proxies --no-gmacs --results-file $O/s33_faults_${amp}_$v.csv \
            > $O/s33_faults_${amp}_$v.log 2>&1
    done
done
echo "# done $(date -u '+%F %T UTC')" >> $O/s33_faults_machine.txt
