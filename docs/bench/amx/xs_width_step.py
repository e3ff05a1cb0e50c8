"""Training-step speed of wider and deeper Fashion-MNIST DynaMixers on this session's CPU (28 px, 1 channel,
batch 128, 2 threads, bf16 autocast, the plain path as in the recipe): how much an epoch costs per unit of width
when bf16 GEMMs are cheap (Intel AMX). Interleaved rounds (2 warm-up and 8 timed steps each: forward,
cross-entropy, backward, AdamW step); the median img/s over the rounds.

python docs/bench/amx/xs_width_step.py > docs/bench/amx/xs_width_step.txt
"""
import statistics
import time

import timm
import torch

import dynamixer  # noqa: F401  registers dynamixer_*

torch.set_num_threads(2)
torch.manual_seed(0)
B, ROUNDS = 128, 4
BASE = 'dynamixer_xs_convstem_sum'
CONFIGS = [  # (label, model, kwargs)
    ('recipe: dims 32/96/96/96, depths 2-2-2-2', BASE, {}),
    ('dims 32/128/128/128', BASE, dict(embed_dims=(32, 128, 128, 128))),
    ('dims 48/160/160/160, heads 2/5/5/5', BASE, dict(embed_dims=(48, 160, 160, 160), num_heads=(2, 5, 5, 5))),
    ('dims 64/192/192/192, heads 2/6/6/6', BASE, dict(embed_dims=(64, 192, 192, 192), num_heads=(2, 6, 6, 6))),
    ('depths 2-2-4-4, dims 32/96/96/96', BASE, dict(depths=(2, 2, 4, 4))),
    ('small CNN (resnet10t, 32-64-96-176)', 'resnet10t', dict(channels=(32, 64, 96, 176))),
]
x, y = torch.randn(B, 1, 28, 28), torch.randint(0, 10, (B,))
runs = []
for label, name, kw in CONFIGS:
    if name.startswith('dynamixer'):
        kw = dict(kw, fused=False)
    model = timm.create_model(name, img_size=28, in_chans=1, num_classes=10, **kw) if name.startswith('dynamixer') \
        else timm.create_model(name, in_chans=1, num_classes=10, **kw)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    runs.append((label, model, torch.optim.AdamW(model.parameters(), lr=1e-3), params, []))


def step(model, opt):
    with torch.autocast('cpu', torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


print(f'torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, '
      f'{torch.get_num_threads()} threads, batch {B}, bf16 autocast, {ROUNDS} rounds')
for r in range(ROUNDS):
    for label, model, opt, params, speeds in runs:
        for _ in range(2):
            step(model, opt)
        t0 = time.perf_counter()
        for _ in range(8):
            step(model, opt)
        speeds.append(8 * B / (time.perf_counter() - t0))
base = statistics.median(runs[0][4])
for label, model, opt, params, speeds in runs:
    med = statistics.median(speeds)
    print(f'{label:45s} {params:5.2f}M params  {med:7.1f} img/s (rounds {" ".join(f"{s:.0f}" for s in speeds)})'
          f'  {base / med:4.2f}x the recipe\'s time per image')
