"""GEMM throughput of this CPU (2 threads): a large square matmul and the shapes of dynamixer_s's layers.

python docs/bench/gemm_peak.py > docs/bench/gemm_peak.txt                   # fp32
python docs/bench/gemm_peak.py bfloat16 > docs/bench/gemm_peak_bf16.txt     # what autocast's matmuls run
"""
import sys
import time

import torch

dtype = getattr(torch, sys.argv[1] if len(sys.argv) > 1 else 'float32')
torch.set_num_threads(2)
torch.manual_seed(0)
shapes = {  # (M, K, N): tokens x in x out
    'square 2048': (2048, 2048, 2048),
    'S stage 1 fc1 (b8, 32x32 tokens, 192 -> 576)': (8 * 1024, 192, 576),
    'S stage 1 fc2 (576 -> 192)': (8 * 1024, 576, 192),
    'S stage 1 branch (192 -> 192)': (8 * 1024, 192, 192),
    'S stage 2 fc1 (b8, 16x16 tokens, 384 -> 1152)': (8 * 256, 384, 1152),
    'S stage 2 branch (384 -> 384)': (8 * 256, 384, 384),
}
print(f'{dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads')
for name, (m, k, n) in shapes.items():
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    for _ in range(3):
        a @ b
    reps = max(3, int(2e10 / (m * k * n)))
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    dt = (time.perf_counter() - t0) / reps
    print(f'{name:48s} {2 * m * k * n / dt / 1e9:7.1f} GFLOP/s')
