"""Self CPU time of one dynamixer_s training step (fused path, bf16 autocast, batch 8, 2 threads), torch.profiler,
after two warm-up steps; the 8 slowest (op, input shapes). Session 32 ran it on the code before and after its changes:

git worktree add /tmp/before 4eaee3a
PYTHONPATH=/tmp/before python docs/bench/zen5/s32_bf16_profile.py   > docs/bench/zen5/s32_bf16_profile.txt  # before
python docs/bench/zen5/s32_bf16_profile.py                         >> docs/bench/zen5/s32_bf16_profile.txt  # after
"""
import torch
import timm

import dynamixer

torch.set_num_threads(2)
torch.manual_seed(0)
x = torch.randn(8, 3, 224, 224)
model = timm.create_model('dynamixer_s').train()


def step():
    model.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(x).float().sum()
    loss.backward()


step()
step()
with torch.profiler.profile(record_shapes=True) as prof:
    step()
events = prof.key_averages(group_by_input_shape=True)
total = sum(e.self_cpu_time_total for e in events)
GEMMS = ('aten::addmm', 'aten::addmm_', 'aten::mm', 'aten::bmm', 'aten::baddbmm', 'aten::baddbmm_')
gemm = sum(e.self_cpu_time_total for e in events if e.key in GEMMS)
# the mixing backward's adds into dx: (B, H, W, G, c) tensors
permuted_adds = sum(e.self_cpu_time_total for e in events
                    if e.key == 'aten::add_' and e.input_shapes and len(e.input_shapes[0]) == 5 and e.input_shapes[0][-1] > 2)
print(f'== dynamixer from {dynamixer.__file__}: {total / 1e3:.0f} ms self CPU in one bf16 training step; GEMMs '
      f'{gemm / 1e3:.0f} ms, other {(total - gemm) / 1e3:.0f} ms, of which adds into dx {permuted_adds / 1e3:.1f} ms')
for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]:
    print(f'  {e.key:26s} {e.self_cpu_time_total / 1e3:6.1f} ms {e.count:4d} calls  {str(e.input_shapes)[:90]}')
