"""One compiled inference step of dynamixer_s, `compile_layers(model, fused=False)`, bf16 autocast, batch 8, 2 threads,
torch.profiler after two warm-up steps: self CPU time and the 6 slowest (op, input shapes). Session 32 ran it on the
code before and after the proj fix (commit 72bacb4):

git worktree add /tmp/before b88c787
TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) PYTHONPATH=/tmp/before python docs/bench/zen5/s32_compiled_bf16_profile.py > docs/bench/zen5/s32_compiled_bf16_profile.txt
TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python docs/bench/zen5/s32_compiled_bf16_profile.py >> docs/bench/zen5/s32_compiled_bf16_profile.txt
"""
import torch
import timm

import dynamixer
from dynamixer.ops import compile_layers

torch.set_num_threads(2)
torch.manual_seed(0)
x = torch.randn(8, 3, 224, 224)
model = timm.create_model('dynamixer_s').eval()
compile_layers(model, fused=False)


def step():
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        model(x)


step()
step()
with torch.profiler.profile(record_shapes=True) as prof:
    step()
events = prof.key_averages(group_by_input_shape=True)
total = sum(e.self_cpu_time_total for e in events)
print(f'== dynamixer from {dynamixer.__file__}: {total / 1e3:.0f} ms self CPU in one compiled bf16 inference step')
for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:6]:
    print(f'  {e.key[:34]:34s} {e.self_cpu_time_total / 1e3:6.1f} ms {e.count:4d} calls  {str(e.input_shapes)[:90]}')
