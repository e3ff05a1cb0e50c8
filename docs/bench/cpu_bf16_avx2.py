"""bf16 against fp32 on this CPU: one square matmul, then the Fashion-MNIST recipe model's training step.

Run on a CPU without AVX-512 (torch capability AVX2), where train.py / validate.py drop --amp (bf16 autocast) and
run fp32 instead, with a warning (dynamixer.engine.cpu_amp_dtype):
python docs/bench/cpu_bf16_avx2.py > docs/bench/cpu_bf16_avx2.txt
"""
import subprocess
import sys
import time

import torch

torch.set_num_threads(2)
caps = torch.cpu.get_capabilities()
print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {caps.get("cpu_name")}, capability '
      f'{torch.backends.cpu.get_cpu_capability()}, avx512_f {caps.get("avx512_f")}, avx512_bf16 {caps.get("avx512_bf16")}')
n = 1024
for dtype in (torch.float32, torch.bfloat16):
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    reps = 20 if dtype == torch.float32 else 3
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    dt = (time.perf_counter() - t0) / reps
    print(f'matmul {n}x{n}x{n} {str(dtype):15s} {2 * n ** 3 / dt / 1e9:8.1f} GFLOP/s')
sys.stdout.flush()
# the recipe's model and step (configs/dynamixer_xs_convstem_sum_fashion_mnist.yaml), fp32 and bf16 autocast side by side
subprocess.run([sys.executable, 'benchmark.py', '--model', 'dynamixer_xs_convstem_sum@amp=fp32',
                'dynamixer_xs_convstem_sum@amp=bfloat16', '--model-kwargs', 'in_chans=1', 'num_classes=10', 'fused=False',
                '--img-size', '28', '--bench', 'train', '-b', '128', '--threads', '2', '--num-warm-iter', '2',
                '--num-bench-iter', '3', '--rounds', '2', '--no-proxies', '--no-gmacs'], check=True,
               stderr=subprocess.STDOUT)
