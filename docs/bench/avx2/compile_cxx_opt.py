"""How much of the cold regional-compile warm-up is g++ optimising, and what the kernels lose without it.

    OMP_NUM_THREADS=2 python docs/bench/avx2/compile_cxx_opt.py > docs/bench/avx2/compile_cxx_opt.txt

compile_breakdown.txt found half of the AVX2 warm-up waiting for g++ on inductor's C++ kernels, which inductor
always builds with -O3. Here the same `compile_layers(model, fused=False)` of dynamixer_s (batch 8, 224 px) compiles
from an empty TORCHINDUCTOR_CACHE_DIR, one fresh process per line, with `CXX` (inductor's `cpp.cxx`) pointing at a
wrapper that runs g++ with -O3 replaced by the level of the line. `first_s` is the first call (the compile), then
`steady` the median of 5 further calls: an inference forward (no_grad) or a training step (forward, backward,
AdamW). A measurement, not a shipped setting: the wrapper is a bench device. The last line keeps -O3 and passes
inductor's own `cpp_wrapper` option through `compile_layers(..., options={'cpp_wrapper': True})`, which emits each
graph's wrapper as C++ too.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

LINES = [('O3', False), ('O2', False), ('O1', False), ('O3', True)]  # (g++ level, cpp_wrapper)


def child(bench: str) -> None:
    from torch._dynamo.utils import compilation_time_metrics as times
    from compile_breakdown import compiled_step  # the same model, compile and step as the breakdown
    cpp_wrapper = os.environ['CXX_CPP_WRAPPER'] == '1'
    step = compiled_step(bench, **({'options': {'cpp_wrapper': True}} if cpp_wrapper else {}))
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    steps = []
    for _ in range(5):
        t0 = time.perf_counter()
        step()
        steps.append(time.perf_counter() - t0)
    wait = sum(times.get('async_compile.wait', [0.0]))
    mode = os.environ['CXX_OPT_LEVEL'] + (' cpp_wrapper' if cpp_wrapper else '')
    print(f'{mode:15s} {bench:9s} {first:7.1f} {wait:6.1f} {statistics.median(steps):7.3f} '
          f'{" ".join(f"{s:.3f}" for s in steps)}', flush=True)


def main() -> None:
    if len(sys.argv) == 2:
        return child(sys.argv[1])
    import torch
    gxx = subprocess.run(['g++', '--version'], capture_output=True, text=True).stdout.splitlines()[0]
    print(f'# torch {torch.__version__}, {gxx}, {os.cpu_count()} CPUs, '
          f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}')
    print('# level           bench   first_s g++_wait steady_s (median of the 5 calls after the first) calls')
    for level, cpp_wrapper in LINES:
        tmp = tempfile.mkdtemp()
        wrapper = os.path.join(tmp, 'gxx')
        with open(wrapper, 'w') as f:  # every -O3 on the command line becomes -O<level>
            f.write('#!/bin/sh\nfor a in "$@"; do shift; [ "$a" = -O3 ] && a=-' + level
                    + '; set -- "$@" "$a"; done\nexec g++ "$@"\n')
        os.chmod(wrapper, 0o755)
        for bench in ['inference', 'train']:
            env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=tempfile.mkdtemp(), CXX=wrapper, CXX_OPT_LEVEL=level,
                       CXX_CPP_WRAPPER=str(int(cpp_wrapper)))
            subprocess.run([sys.executable, __file__, bench], env=env, check=True, stderr=subprocess.DEVNULL)


if __name__ == '__main__':
    main()
