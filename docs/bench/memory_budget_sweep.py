"""Saved bytes, profiled aten ops and copies of dynamixer_s compiled per layer, per activation memory budget.

One process per (path, budget), batch 2, 1 thread (the numbers are counts and bytes, not times):
    for f in 0 1; do for b in 1.0 0.5 0.4 0.25; do OMP_NUM_THREADS=1 python docs/bench/memory_budget_sweep.py $f $b; done; done \
        > docs/bench/memory_budget_sweep.txt
"""
import os
import sys

import timm
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import dynamixer  # noqa: F401,E402
from benchmark import profiled_aten_ops, saved_bytes  # noqa: E402
from dynamixer.ops import compile_layers  # noqa: E402

fused, budget, B = sys.argv[1] == '1', float(sys.argv[2]), 2
torch.manual_seed(0)
model = timm.create_model('dynamixer_s').train()
compile_layers(model, fused=fused, memory_budget=budget)
x = torch.randn(B, 3, 224, 224)
model(x).sum().backward()  # compile
model.zero_grad()
ops, copies = profiled_aten_ops(lambda: model(x).sum().backward())
saved = saved_bytes(model, x)
param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
print(f'fused={fused} memory_budget={budget}: profiled aten ops {ops}, copies {copies}, saved MiB/img '
      f'{saved / B / 2 ** 20:.1f} ({(saved + param_bytes) / B / 2 ** 20:.1f} incl. params)', flush=True)
