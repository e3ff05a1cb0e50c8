"""Training-step speed of the shipped Fashion-MNIST model, dynamixer_xs_convstem_sum (28 px, 1 channel, batch 128,
2 threads, bf16 autocast, plain path as in the recipe): reduced dim d = 2 vs 4, and AdamW's per-tensor loop vs its
fused step (`--opt-kwargs fused=True`). Interleaved rounds (2 warm-up and 8 timed steps each per round: forward,
cross-entropy, backward, AdamW step); the median img/s over the rounds.

python docs/bench/xscs_d4_fused_ab.py > docs/bench/xscs_d4_fused_ab.txt
"""
import time

import timm
import torch

import dynamixer  # noqa: F401  registers dynamixer_*

torch.set_num_threads(2)
torch.manual_seed(0)
B, ROUNDS = 128, 7
CONFIGS = [  # (label, reduced_dim, fused AdamW)
    ('d = 2, AdamW loop (section 1e recipe)', 2, False),
    ('d = 2, AdamW fused', 2, True),
    ('d = 4, AdamW loop', 4, False),
    ('d = 4, AdamW fused', 4, True),
]
x, y = torch.randn(B, 1, 28, 28), torch.randint(0, 10, (B,))
runs = []
for label, d, fused in CONFIGS:
    model = timm.create_model('dynamixer_xs_convstem_sum', img_size=28, in_chans=1, num_classes=10, fused=False,
                              reduced_dim=d)
    runs.append((label, model, torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused), []))


def step(model, opt):
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


for _ in range(ROUNDS):
    for label, model, opt, speeds in runs:
        for _ in range(2):
            step(model, opt)
        t0 = time.perf_counter()
        for _ in range(8):
            step(model, opt)
        speeds.append(8 * B / (time.perf_counter() - t0))
print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, batch {B}, {ROUNDS} rounds')
for label, _, _, speeds in runs:
    print(f'{label:40s} {sorted(speeds)[len(speeds) // 2]:6.1f} img/s   rounds: {" ".join(f"{s:.0f}" for s in speeds)}')
