"""Self CPU time by aten op of one training step of the quickstart model (dynamixer_xs, Fashion-MNIST shapes: batch 128,
1 x 28 x 28, bf16 autocast, 2 threads), averaged over 3 profiled steps after 3 warm-up steps; then the softmax calls by
shape. Session 33: python docs/bench/zen5/s33_xs_profile.py bf16 > docs/bench/zen5/s33_xs_profile.txt
"""
import sys, torch, timm, dynamixer
torch.set_num_threads(2); torch.manual_seed(0)
x = torch.randn(128, 1, 28, 28)
model = timm.create_model('dynamixer_xs', num_classes=10, in_chans=1, img_size=28).train()
dt = torch.bfloat16 if sys.argv[1] == 'bf16' else None
def step():
    model.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dt is not None):
        loss = model(x).float().sum()
    loss.backward()
for _ in range(3): step()
with torch.profiler.profile(record_shapes=True) as prof:
    for _ in range(3): step()
evs = prof.key_averages()
total = sum(e.self_cpu_time_total for e in evs)
print(f'xs {sys.argv[1]}: {total/3e3:.1f} ms self CPU per training step (batch 128)')
for e in sorted(evs, key=lambda e: -e.self_cpu_time_total)[:14]:
    print(f'  {e.key[:40]:40s} {e.self_cpu_time_total/3e3:6.2f} ms {e.count//3:4d}')
evs = prof.key_averages(group_by_input_shape=True)
for e in sorted([e for e in evs if 'softmax' in e.key], key=lambda e: -e.self_cpu_time_total)[:6]:
    print(f'  {e.key[:30]:30s} {e.self_cpu_time_total/3e3:6.2f} ms {e.count//3:4d} {str(e.input_shapes)[:80]}')
