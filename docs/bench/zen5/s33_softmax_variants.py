"""Softmax of bf16 / fp32 mixing logits over dim 1 (the dynamic generator), at the grids of dynamixer_s (16, 32) and of
the Fashion-MNIST dynamixer_xs (7, 14): the fused path's route (fp32 softmax, cast back), PyTorch's softmax in the input
dtype, a hand-written max/exp/sum, and a softmax over the last dim of a transposed copy; CPU, 2 threads, median
ms, and the largest error against a float64 softmax. Session 33: python docs/bench/zen5/s33_softmax_variants.py
"""
import torch
from torch.utils.benchmark import Timer
torch.set_num_threads(2); torch.manual_seed(0)
def cur(x, d): return torch.softmax(x, d, dtype=torch.float32).to(x.dtype)
def direct(x, d): return torch.softmax(x, d)
def manual(x, d):
    xf = x.float()
    e = (xf - xf.amax(d, keepdim=True)).exp_()
    return e.div_(e.sum(d, keepdim=True)).to(x.dtype)
def manual2(x, d):
    xf = x.float()
    e = torch.sub(xf, xf.amax(d, keepdim=True)).exp_()
    return torch.div(e, e.sum(d, keepdim=True)).to(x.dtype)
def trans(x, d):  # softmax over the last dim of a transposed contiguous copy
    return torch.softmax(x.transpose(d, -1), -1, dtype=torch.float32).to(x.dtype).transpose(d, -1)
for shape in ((3584, 14, 14), (3584, 7, 7), (2048, 32, 32), (2048, 16, 16)):
  for dt in (torch.bfloat16, torch.float32):
    x = (torch.randn(shape) * 3).to(dt)
    ref = torch.softmax(x.double(), 1).to(dt)
    row = []
    for f in (cur, direct, manual, trans):
        y = f(x, 1)
        err = (y.double() - torch.softmax(x.double(), 1)).abs().max().item()
        t = Timer('f(x, 1)', globals=dict(f=f, x=x), num_threads=2).blocked_autorange(min_run_time=0.3).median * 1e3
        row.append(f'{f.__name__} {t:.3f} ms (err {err:.1e})')
    print(shape, str(dt)[6:], ' | '.join(row))
