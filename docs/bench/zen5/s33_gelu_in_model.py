"""Each F.gelu call of one bf16 inference step of dynamixer_s (batch 8, 2 threads), timed and its minor page faults counted,
in a process that runs inference only (as validate.py does); the four (8, 32, 32, 576) calls of the 32x32 layers
printed as (ms, page faults, contiguous input), then the same GELU alone. Session 33:
for pre in "" /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4; do LD_PRELOAD=$pre python docs/bench/zen5/s33_gelu_in_model.py; done
"""
import time, resource, torch, timm, dynamixer
import torch.nn.functional as F
torch.set_num_threads(2); torch.manual_seed(0)
x = torch.randn(8, 3, 224, 224)
model = timm.create_model('dynamixer_s').eval()
orig = F.gelu
rec = []
def timed_gelu(t, *a, **k):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter(); y = orig(t, *a, **k); dt = time.perf_counter() - t0
    rec.append((tuple(t.shape), t.is_contiguous(), dt * 1e3, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0))
    return y
F.gelu = timed_gelu
torch.nn.modules.activation.F.gelu = timed_gelu
with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
    for _ in range(3): model(x)
    rec.clear(); model(x)
big = [r for r in rec if r[0] == (8, 32, 32, 576)]
import sys; sys.path.insert(0, '.'); from dynamixer.engine import memory_allocator
print(memory_allocator(), len(rec), 'gelu calls; stage-1 ones:', [(round(r[2], 2), r[3], r[1]) for r in big])
h = torch.randn(8, 32, 32, 576).bfloat16()
for _ in range(3): orig(h)
t0 = time.perf_counter(); orig(h); print('alone', round((time.perf_counter() - t0) * 1e3, 2), 'ms')
