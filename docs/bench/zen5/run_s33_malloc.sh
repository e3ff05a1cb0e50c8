#!/usr/bin/env bash
# Session 33 on the Zen 5 (docs/benchmarks.md, "Session 33"): the same side-by-side run under four mallocs, bf16 autocast
# and fp32: glibc as it comes; glibc with large mmap / trim thresholds (freed memory stays in the process, so
# fresh buffers cost no page faults); tcmalloc (Debian's libtcmalloc-minimal4); jemalloc (Debian's libjemalloc2)
# with the retention settings PyTorch's CPU tuning guide gives.
# apt-get install -y libtcmalloc-minimal4 libjemalloc2 && bash docs/bench/zen5/run_s33_malloc.sh
# (the first run, glibc and tcmalloc only, is kept as s33_malloc_run1_*)
set -euo pipefail
cd "$(dirname "$0")/../../.."; . .venv/bin/activate
O=docs/bench/zen5
LIB=/usr/lib/x86_64-linux-gnu
export OMP_NUM_THREADS=2
echo "# $(date -u '+%F %T UTC'), session 33, commit $(git rev-parse --short HEAD)" > $O/s33_malloc_machine.txt
run() {  # run AMP VARIANT [env assignments...]
    local amp=$1 variant=$2; shift 2
    env "$@" python benchmark.py --model reference:dynamixer_s dynamixer_s "dynamixer_s@fused=False" convnext_tiny \
        $([ $amp = fp32 ] || echo --amp --amp-dtype $amp) --bench both -b 8 --device cpu --threads 2 --num-warm-iter 1 \
        --num-bench-iter 2 --rounds 5 --no-proxies --no-gmacs --results-file $O/s33_malloc_${amp}_$variant.csv \
        > $O/s33_malloc_${amp}_$variant.log 2>&1
}
for amp in bfloat16 fp32; do
    run $amp glibc
    run $amp glibc_tuned GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184
    run $amp tcmalloc LD_PRELOAD=$LIB/libtcmalloc_minimal.so.4
    run $amp jemalloc LD_PRELOAD=$LIB/libjemalloc.so.2 \
        MALLOC_CONF=oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1
done
echo "# done $(date -u '+%F %T UTC')" >> $O/s33_malloc_machine.txt
