"""Training-step speed of the one-resolution DynaMixer (stem='conv_s2', every layer on the 7x7 grid) with 6, 7
and 8 layers, beside the shipped dynamixer_xs_convstem_sum (14x14 then 7x7): bf16 autocast, batch 128, AdamW, 3
interleaved rounds of 5 steps after 2 warm-up steps, median img/s. Params and fvcore MACs (LayerNorm counted) first.

python docs/bench/xs_s2stem_ab.py 2 > docs/bench/xs_s2stem_ab.txt   # the argument: compute threads
"""
import time, timm, torch, dynamixer, sys
from fvcore.nn import FlopCountAnalysis
torch.set_num_threads(int(sys.argv[1])); torch.manual_seed(0)
B=128
x, y = torch.randn(B,1,28,28), torch.randint(0,10,(B,))
S2=dict(stem='conv_s2', patch_sizes=(4,), embed_dims=(96,), num_heads=(4,))
cf={'base': dict(),
    's2 d6 @96': dict(S2, depths=(6,)),
    's2 d8 @96': dict(S2, depths=(8,)),
    's2 d7 @96': dict(S2, depths=(7,)),
    }
runs=[]
for k,kw in cf.items():
    m = timm.create_model('dynamixer_xs_convstem_sum', img_size=28, in_chans=1, num_classes=10, fused=False, **kw)
    m.eval(); fl=FlopCountAnalysis(m, x[:1]); fl.unsupported_ops_warnings(False); fl.uncalled_modules_warnings(False); m.train()
    print(k, sum(p.numel() for p in m.parameters()), f'{fl.total()/1e6:.1f} MMACs', flush=True)
    runs.append((k,m,torch.optim.AdamW(m.parameters(),lr=1e-3),[]))
def step(m,opt):
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
for r in range(3):
  for k,m,opt,sp in runs:
    for _ in range(2): step(m,opt)
    t0=time.perf_counter()
    for _ in range(5): step(m,opt)
    sp.append(5*B/(time.perf_counter()-t0))
for k,m,opt,sp in runs: print(f'{k:20s} {sorted(sp)[1]:6.0f} img/s   rounds:', ' '.join(f'{s:.0f}' for s in sp))
