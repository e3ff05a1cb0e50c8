"""The copies autocast adds: every copy_ / _to_copy / clone of one bf16-autocast forward of dynamixer_s (batch 2,
inference), grouped by (op, source dtype, destination dtype, source rank), with calls and elements copied.
Rank-2 fp32 -> bf16 casts are the weights; rank 3-5 are activations.

python docs/bench/bf16_casts.py > docs/bench/bf16_casts.txt
"""
from collections import Counter

import timm
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import dynamixer  # noqa: F401  registers dynamixer_*


class CopyCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls, self.elements = Counter(), Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._overloadpacket.__name__
        if name in ('copy_', '_to_copy', 'clone'):
            src = args[1] if name == 'copy_' else args[0]
            dst = str(args[0].dtype) if name == 'copy_' else str((kwargs or {}).get('dtype') or src.dtype)
            key = (name, str(src.dtype), dst, src.dim())
            self.calls[key] += 1
            self.elements[key] += src.numel()
        return func(*args, **(kwargs or {}))


torch.set_num_threads(1)
for fused in (True, False):
    model = timm.create_model('dynamixer_s', fused=fused).eval()
    counter = CopyCounter()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16), counter:
        model(torch.randn(2, 3, 224, 224))
    print(f'dynamixer_s fused={fused}, bf16 autocast, inference, batch 2 '
          f'({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)')
    for key in sorted(counter.calls, key=lambda k: -counter.elements[k]):
        op, src, dst, rank = key
        print(f'  {op:9s} {src:15s} -> {dst:15s} rank {rank}: {counter.calls[key]:4d} calls, '
              f'{counter.elements[key] / 1e6:6.1f}M elements')
