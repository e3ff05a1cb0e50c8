"""Where the time goes: torch.profiler over one step of dynamixer_s (batch 8, CPU, 2 threads).

python docs/bench/profile_s.py > docs/bench/profile_s.txt
"""
import torch
import timm

import dynamixer  # noqa: F401

torch.set_num_threads(2)
x = torch.randn(8, 3, 224, 224)
for fused in (False, True):
    model = timm.create_model('dynamixer_s', fused=fused)
    for train in (False, True):
        model.train(train)

        def step():
            if train:
                model(x).sum().backward()
            else:
                with torch.no_grad():
                    model(x)
        step()
        with torch.profiler.profile() as prof:
            step()
        total = sum(e.self_cpu_time_total for e in prof.key_averages())
        print(f'== dynamixer_s fused={fused} {"train" if train else "inference"} step: {total / 1e6:.2f} s self CPU')
        for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:10]:
            print(f'  {e.key:34s} {100 * e.self_cpu_time_total / total:5.1f}%  {e.count:5d} calls')
