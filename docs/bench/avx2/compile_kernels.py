"""Which C++ kernels inductor writes for the regionally compiled dynamixer_s, and how many are only layout copies.

    OMP_NUM_THREADS=2 python docs/bench/avx2/compile_kernels.py > docs/bench/avx2/compile_kernels.txt

compile_breakdown.txt found about half of the cold warm-up waiting for g++, once per kernel, whatever the
optimisation level (compile_cxx_opt.txt). So the warm-up could only shrink with fewer kernels. This lists them:
the same `compile_layers(model, fused=False)` of dynamixer_s (batch 8, 224 px) as the breakdown, one fresh process
and inductor cache per bench, then every graph module inductor wrote, with its kernels (inductor names a kernel
after the aten ops fused into it) and its GEMMs (extern calls, no C++ of their own). A kernel whose ops are all
views and copies (clone, permute, transpose, view, ...) is marked `copy`: that is what a copy-free layout of the
plain modules could remove. Every other kernel does arithmetic (LayerNorm, softmax, GELU, means, adds) and stays.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

COPY_ONLY = re.compile(r'^(?:(?:_unsafe_view|clone|permute|transpose|view|unsqueeze|squeeze|expand|select|slice|'
                       r'reshape|t)(?:_|$))+$')


def kernel_ops(name: str) -> str:
    """'cpp_fused_clone_permute_view_3' -> 'clone_permute_view'."""
    return re.sub(r'_\d+$', '', name[len('cpp_fused_'):])


def graph_modules(cache_dir: str):
    """The output-code modules inductor wrote, each as (grid, kernels in call order with repeats, GEMM calls)."""
    for path in sorted(glob.glob(os.path.join(cache_dir, '**', '*.py'), recursive=True)):
        src = open(path).read()
        if 'def call(' not in src or 'cpp_fused_' not in src:
            continue
        body = src[src.index('def call('):]
        calls = re.findall(r'^\s+(cpp_fused_\w+)\(', body, flags=re.M)
        gemms = re.findall(r'extern_kernels\.(\w+)\(', body)
        shapes = re.findall(r'rand_strided\(\((\d+), (\d+), (\d+), (\d+)\)', src)
        grid = max(shapes, key=lambda s: int(s[1])) if shapes else ('?',) * 4
        yield 'x'.join(grid[1:3]) + f' C={grid[3]}', calls, gemms


def child(bench: str) -> None:
    from compile_breakdown import compiled_step  # the same model, compile and step as the breakdown
    step = compiled_step(bench)
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    cache = os.environ['TORCHINDUCTOR_CACHE_DIR']
    sources = len(glob.glob(os.path.join(cache, '**', '*.cpp'), recursive=True))
    total = copies = 0
    for grid, calls, gemms in graph_modules(cache):
        kernels = list(dict.fromkeys(calls))  # distinct kernels, call order
        kind = 'backward' if any('backward' in k for k in kernels) else 'forward'
        n_copy = sum(bool(COPY_ONLY.match(kernel_ops(k))) for k in kernels)
        total, copies = total + len(kernels), copies + n_copy
        print(f'## {bench} graph, {kind}, grid {grid}: {len(kernels)} kernels ({n_copy} copy only), '
              f'{len(calls)} kernel calls, {len(gemms)} GEMM calls ({", ".join(sorted(set(gemms)))})')
        for k in kernels:
            tag = 'copy' if COPY_ONLY.match(kernel_ops(k)) else '    '
            print(f'   {tag} x{calls.count(k)} {kernel_ops(k)}')
    print(f'# {bench}: first call {first:.1f} s, {sources} C++ sources, {total} distinct kernels in the graphs, '
          f'{copies} of them copy only ({100 * copies / max(total, 1):.0f}%)', flush=True)


def main() -> None:
    if len(sys.argv) == 2:
        return child(sys.argv[1])
    import torch
    print(f'# torch {torch.__version__}, {os.cpu_count()} CPUs, {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}')
    for bench in ['inference', 'train']:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=tempfile.mkdtemp())
        subprocess.run([sys.executable, __file__, bench], env=env, check=True, stderr=subprocess.DEVNULL)


if __name__ == '__main__':
    main()
