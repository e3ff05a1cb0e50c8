"""Token mixer alone, fused vs plain, inference, batch 8, min of 10 interleaved runs (CPU, 2 threads).

python docs/bench/block_ab.py
"""
import time

import torch

from dynamixer.model import DynaMixerBlock
from dynamixer.ops import fused_token_mix, plain_token_mix

torch.set_num_threads(2)
for C, H, G in [(384, 16, 16), (192, 32, 8)]:
    blk = DynaMixerBlock(C, (H, H), G)
    x = torch.randn(8, H, H, C)
    times = {'fused': [], 'plain': []}
    with torch.no_grad():
        for _ in range(10):
            for name, fn in (('fused', fused_token_mix), ('plain', plain_token_mix)):
                t0 = time.perf_counter()
                fn(blk, x)
                times[name].append(time.perf_counter() - t0)
    print(f'C={C} {H}x{H}: fused {1e3 * min(times["fused"]):.1f} ms, plain {1e3 * min(times["plain"]):.1f} ms')
