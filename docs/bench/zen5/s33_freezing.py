"""Inductor's freezing (weights as constants: oneDNN prepacked weights, linear + pointwise fusion) for CPU inference,
against eager and the documented regional compile: dynamixer_s, bf16 autocast, batch 8, 2 threads, fresh inductor
cache per process. Session 33:
for mode in eager layers freeze; do TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python docs/bench/zen5/s33_freezing.py $mode; done
"""
import sys, time, torch, timm, dynamixer
from dynamixer.ops import compile_layers
torch.set_num_threads(2); torch.manual_seed(0)
mode = sys.argv[1]
x = torch.randn(8, 3, 224, 224)
m = timm.create_model('dynamixer_s').eval()
amp = torch.autocast('cpu', dtype=torch.bfloat16)
if mode == 'freeze':
    import torch._inductor.config as ic
    ic.freezing = True
    m = torch.compile(m)
elif mode == 'freeze_layers':
    import torch._inductor.config as ic
    ic.freezing = True
    compile_layers(m, fused=False)
elif mode == 'layers':
    compile_layers(m, fused=False)
with torch.no_grad(), amp:
    t = time.perf_counter(); m(x); warm = time.perf_counter() - t
    m(x)
    ts = []
    for _ in range(5):
        t = time.perf_counter(); m(x); m(x); ts.append((time.perf_counter() - t) / 2)
ts.sort()
print(f'{mode}: warm-up {warm:.1f} s, median {8/ts[2]:.2f} img/s, all {[round(8/t,2) for t in ts]}')
