"""Does torch.compile speed up the Fashion-MNIST hour recipe's training step on a 2-core CPU? No (session 14).

The recipe model (dynamixer_xs_convstem_sum, plain path, 28 px, 1 channel, batch 128, bf16 autocast, AdamW),
one process per mode: 'eager'; 'whole' (torch.compile of the whole model); 'regional' (dynamixer.ops.compile_layers:
each DynaMixerLayer compiled, stem and head eager). Prints the first step's seconds (the compile) and 4 rounds
of 30 steps after 5 warm-up steps.

for m in eager whole regional; do python docs/bench/xs_compile_ab.py $m; done > docs/bench/xs_compile_ab.txt
"""
import sys, time, torch, timm, dynamixer  # noqa: E401,F401
from dynamixer.ops import compile_layers
mode = sys.argv[1]; bs = int(sys.argv[2]) if len(sys.argv) > 2 else 128
torch.manual_seed(0); torch.set_num_threads(2)
m = timm.create_model('dynamixer_xs_convstem_sum', img_size=28, in_chans=1, num_classes=10, fused=False)
if mode == 'regional': compile_layers(m, fused=False)
elif mode == 'whole': m = torch.compile(m)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
x = torch.randn(bs, 1, 28, 28); y = torch.randint(0, 10, (bs,))
def step():
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(m(x), y)
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
t0 = time.time(); step(); print(mode, 'first step', round(time.time()-t0, 1), 's', flush=True)
for _ in range(5): step()
for r in range(4):
    t0 = time.time(); n = 30
    for _ in range(n): step()
    print(mode, f'{n*bs/(time.time()-t0):.0f} img/s', flush=True)
