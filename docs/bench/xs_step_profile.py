"""Where the Fashion-MNIST hour recipe's training step spends its time on a 2-core CPU (torch.profiler, self CPU time).

The recipe model (dynamixer_xs_convstem_sum, plain path, 28 px, 1 channel, batch 128, bf16 autocast, AdamW),
8 warm-up steps, then 10 profiled steps; the 25 aten ops with the most self time.

python docs/bench/xs_step_profile.py dynamixer_xs_convstem_sum "{'fused': False}" > docs/bench/xs_step_profile.txt
"""
import ast, sys, torch, timm, dynamixer  # noqa: E401,F401
torch.manual_seed(0); torch.set_num_threads(2)
name = sys.argv[1]; kw = ast.literal_eval(sys.argv[2]) if len(sys.argv) > 2 else {}
m = timm.create_model(name, img_size=28, in_chans=1, num_classes=10, **kw)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
bs=128; x = torch.randn(bs, 1, 28, 28); y = torch.randint(0, 10, (bs,))
def step():
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(m(x), y)
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
for _ in range(8): step()
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU]) as p:
    for _ in range(10): step()
print(p.key_averages().table(sort_by='self_cpu_time_total', row_limit=25))
