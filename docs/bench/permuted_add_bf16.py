"""Why `dynamixer.ops._add_permuted_` copies half-precision sources first: dst += a permuted (head-major) view,
against a copy into dst's layout followed by a contiguous add, on a CPU with 2 threads.

python docs/bench/permuted_add_bf16.py > docs/bench/permuted_add_bf16.txt
"""
import platform

import torch
from torch.utils.benchmark import Timer

torch.set_num_threads(2)
print(f'# torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {platform.processor() or platform.machine()}, '
      '2 threads; median ms')
print('dtype     (B, H, W, G, c)      add_(permuted)  copy_ into layout  contiguous add_  copy + add')
for dt in (torch.bfloat16, torch.float16, torch.float32):
    for B, H, W, G, c in ((8, 16, 16, 16, 24), (8, 32, 32, 8, 24)):
        dst = torch.randn(B, H, W, G, c).to(dt)
        rows = torch.randn(B * H * G, W, c).to(dt)  # head-major rows, as the w-axis mixing backward gives them
        src = rows.view(B, H, G, W, c).permute(0, 1, 3, 2, 4)
        buf = torch.empty_like(dst)
        t = {}
        for name, fn in (('add', lambda: dst.add_(src)), ('copy', lambda: buf.copy_(src)),
                         ('cadd', lambda: dst.add_(buf))):
            t[name] = Timer('f()', globals={'f': fn}, num_threads=2).blocked_autorange(min_run_time=0.5).median * 1e3
        print(f'{str(dt).split(".")[1]:9s} {str((B, H, W, G, c)):20s} {t["add"]:14.3f}  {t["copy"]:17.3f}  '
              f'{t["cadd"]:15.3f}  {t["copy"] + t["cadd"]:10.3f}')
