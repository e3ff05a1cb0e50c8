"""Where the time goes: torch.profiler over one step of dynamixer_s (batch 8, CPU, 2 threads) for the
authors' formulation (reference:dynamixer_s), the plain path and the fused path.

python docs/bench/profile_s.py > docs/bench/profile_s.txt
python docs/bench/profile_s.py bfloat16 > docs/bench/profile_s_bf16.txt     # under torch.autocast(cpu, bfloat16)
"""
import os
import sys
from contextlib import nullcontext

import torch
import timm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import dynamixer  # noqa: F401,E402
from benchmark import reference_model  # noqa: E402

GEMMS = ('aten::addmm', 'aten::addmm_', 'aten::mm', 'aten::bmm', 'aten::baddbmm', 'aten::baddbmm_')
COPIES = ('aten::copy_', 'aten::clone', 'aten::cat', 'aten::stack')

amp = sys.argv[1] if len(sys.argv) > 1 else None
autocast = (lambda: torch.autocast('cpu', dtype=getattr(torch, amp))) if amp else nullcontext
COPIES += ('aten::_to_copy',) if amp else ()  # autocast's casts
torch.set_num_threads(2)
torch.manual_seed(0)
x = torch.randn(8, 3, 224, 224)
models = {
    'reference:dynamixer_s': lambda: reference_model('dynamixer_s'),
    'dynamixer_s@fused=False': lambda: timm.create_model('dynamixer_s', fused=False),
    'dynamixer_s': lambda: timm.create_model('dynamixer_s'),
}
for name, build in models.items():
    model = build()
    for train in (False, True):
        model.train(train)

        def step():
            if train:
                with autocast():
                    loss = model(x).float().sum()
                loss.backward()
            else:
                with torch.no_grad(), autocast():
                    model(x)
        step()
        with torch.profiler.profile() as prof:
            step()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        share = lambda keys: 100 * sum(e.self_cpu_time_total for e in events if e.key in keys) / total  # noqa: E731
        print(f'== {name} {"train" if train else "inference"} step{" (" + amp + " autocast)" if amp else ""}: {total / 1e6:.2f} s self CPU; '
              f'GEMMs {share(GEMMS):.1f}%, copies {share(COPIES):.1f}%')
        for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]:
            print(f'  {e.key:34s} {100 * e.self_cpu_time_total / total:5.1f}%  {e.count:5d} calls')
