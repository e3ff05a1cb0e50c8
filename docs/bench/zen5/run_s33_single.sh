#!/usr/bin/env bash
# Session 33 on the Zen 5 (docs/benchmarks.md, "Session 33"): inference in a process that runs one model and nothing
# else (as validate.py does), under glibc's malloc and under tcmalloc, bf16 autocast and fp32. In a side-by-side run
# glibc's adaptive mmap threshold has been raised by the models before, which hides the page faults.
# apt-get install -y libtcmalloc-minimal4 && bash docs/bench/zen5/run_s33_single.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."; . .venv/bin/activate
O=docs/bench/zen5
export OMP_NUM_THREADS=2
echo "# $(date -u '+%F %T UTC'), session 33, commit $(git rev-parse --short HEAD)" > $O/s33_single_machine.txt
for rep in 1 2; do
  for amp in bfloat16 fp32; do
    for model in reference:dynamixer_s dynamixer_s convnext_tiny; do
      for pre in "" /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4; do
        LD_PRELOAD=$pre python benchmark.py --model $model $([ $amp = fp32 ] || echo --amp --amp-dtype $amp) --bench inference \
            -b 8 --device cpu --threads 2 --num-warm-iter 1 --num-bench-iter 2 --rounds 3 --no-proxies --no-gmacs 2>&1 | grep '^{'
      done
    done
  done
done > $O/s33_single.jsonl
echo "# done $(date -u '+%F %T UTC')" >> $O/s33_single_machine.txt
