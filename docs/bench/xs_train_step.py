"""Training-step speed of the Fashion-MNIST variants (28 px, 1 channel, batch 128, 2 threads): patch vs conv
stem, fused vs plain path, fp32 vs bf16 autocast. The configurations run in interleaved rounds (2 warm-up and
8 timed steps each per round: forward, cross-entropy, backward, AdamW step); the median img/s over the rounds.

python docs/bench/xs_train_step.py > docs/bench/xs_train_step.txt
"""
import time

import timm
import torch

import dynamixer  # noqa: F401  registers dynamixer_*

torch.set_num_threads(2)
torch.manual_seed(0)
B, ROUNDS = 128, 5
CONFIGS = [  # (label, model, kwargs, bf16 autocast)
    ('dynamixer_xs fp32 fused', 'dynamixer_xs', {}, False),
    ('dynamixer_xs fp32 plain', 'dynamixer_xs', {'fused': False}, False),
    ('dynamixer_xs bf16 plain', 'dynamixer_xs', {'fused': False}, True),
    ('dynamixer_xs_convstem fp32 fused', 'dynamixer_xs_convstem', {}, False),
    ('dynamixer_xs_convstem fp32 plain', 'dynamixer_xs_convstem', {'fused': False}, False),
    ('dynamixer_xs_convstem bf16 fused', 'dynamixer_xs_convstem', {}, True),
    ('dynamixer_xs_convstem bf16 plain (the recipe)', 'dynamixer_xs_convstem', {'fused': False}, True),
]
x, y = torch.randn(B, 1, 28, 28), torch.randint(0, 10, (B,))
runs = []
for label, name, kw, bf16 in CONFIGS:
    model = timm.create_model(name, img_size=28, in_chans=1, num_classes=10, **kw)
    runs.append((label, model, torch.optim.AdamW(model.parameters(), lr=1e-3), bf16, []))


def step(model, opt, bf16):
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


for _ in range(ROUNDS):
    for label, model, opt, bf16, speeds in runs:
        for _ in range(2):
            step(model, opt, bf16)
        t0 = time.perf_counter()
        for _ in range(8):
            step(model, opt, bf16)
        speeds.append(8 * B / (time.perf_counter() - t0))
print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, batch {B}, {ROUNDS} rounds')
for label, _, _, _, speeds in runs:
    print(f'{label:48s} {sorted(speeds)[len(speeds) // 2]:6.1f} img/s   rounds: {" ".join(f"{s:.0f}" for s in speeds)}')
