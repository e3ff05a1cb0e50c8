"""Where the per-image cost of dynamixer_xs_convstem's bf16 training step goes: the same step with parts of the
model switched off (the paper's ablation options), beside the same-size CNN peer. Interleaved rounds, median img/s.

python docs/bench/xs_cost_breakdown.py > docs/bench/xs_cost_breakdown.txt
"""
import time, timm, torch, dynamixer
torch.set_num_threads(2); torch.manual_seed(0)
B=128
x, y = torch.randn(B,1,28,28), torch.randint(0,10,(B,))
cf={'full (the recipe model)': dict(),
    'no reweighting': dict(reweight=False),
    'no row/column mixing (channel only)': dict(row_mixing=False, column_mixing=False),
    'static generator': dict(generator='static'),
    'resnet10t narrow (CNN peer)': None}
runs=[]
for k,kw in cf.items():
    if kw is None:
        m = timm.create_model('resnet10t', in_chans=1, num_classes=10, channels=(32,64,96,176))
    else:
        m = timm.create_model('dynamixer_xs_convstem', img_size=28, in_chans=1, num_classes=10, fused=False, **kw)
    runs.append((k,m,torch.optim.AdamW(m.parameters(),lr=1e-3),[]))
def step(m,opt):
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
for r in range(3):
  for k,m,opt,sp in runs:
    for _ in range(2): step(m,opt)
    t0=time.perf_counter()
    for _ in range(6): step(m,opt)
    sp.append(6*B/(time.perf_counter()-t0))
print(f'torch {torch.__version__}, 2 threads, batch {B}, bf16 autocast, 3 interleaved rounds of 6 steps (median)')
for k,m,opt,sp in runs: print(f'{k:38s} {sorted(sp)[1]:6.0f} img/s   rounds:', ' '.join(f'{s:.0f}' for s in sp))
