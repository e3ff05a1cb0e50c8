"""The fused backward's reductions of the per-sample D_k (B, C, C): elementwise passes as ops.py writes them (a
product summed over C_in, D scaled in place and summed over B) against batched GEMVs over the output channels (no
(B, C, C) temporaries), same results; CPU, 2 threads, median ms. Each call starts from a fresh copy of D, as each
backward gets a new D from its bmm (the copy is timed in both).

for i in 1 2 3; do python docs/bench/zen5/s32_dk_gemv_ab.py; done > docs/bench/zen5/s32_dk_gemv_ab.txt
"""
import torch
from torch.utils.benchmark import Timer

torch.set_num_threads(2)
torch.manual_seed(0)
print(f'# torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, 2 threads, fp32; median ms')
for B, C in ((8, 384), (8, 192), (2, 384)):
    D, w, a = torch.randn(B, C, C), torch.randn(C, C), torch.rand(B, C)

    def elementwise():  # da[b, o] = sum_c D[b, o, c] w[o, c]; dW[o, c] = sum_b a[b, o] D[b, o, c]
        Dk = D.clone()
        return (Dk * w).sum(2), Dk.mul_(a.unsqueeze(2)).sum(0)

    def gemv():
        Dt = D.clone().transpose(0, 1)  # (C_out, B, C_in)
        return torch.bmm(Dt, w.unsqueeze(2)).squeeze(2).t(), torch.bmm(a.t().unsqueeze(1), Dt).squeeze(1)

    for x, y in zip(elementwise(), gemv()):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-3)
    t = {f.__name__: Timer('f()', globals={'f': f}, num_threads=2).blocked_autorange(min_run_time=1).median * 1e3
         for f in (elementwise, gemv)}
    print(f'B={B} C={C}: elementwise {t["elementwise"]:.3f}  batched GEMV {t["gemv"]:.3f}  ({t["gemv"] / t["elementwise"]:.1f}x)')
