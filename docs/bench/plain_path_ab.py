"""The plain (fused=False) path before and after session 6's change to DynaMixerBlock.combine, on the recipe model.

combine now scales the branches by contiguous (B, C) slices of the reweighting softmax and takes mean(h + w + c)
as the sum of the branch means; before, the scales were channel-strided slices of the (B, C, n) softmax (a slow
broadcast multiply) and the branches were summed at full size first. 'before' is the previous code, re-created
here by subclassing; both models hold the same weights. Printed: the largest output difference (fp32), then the
bf16 training step of dynamixer_xs_convstem (batch 128) in interleaved rounds, median img/s, and the profiler's
self time per step of the ops the change touches; with reweight=False combine is a plain sum, unchanged (a control).

Also measured, and why the mixing weights stay source-major: a softmax along the last, contiguous dim of the
target-major logits (what a transposed generator would give) is not faster in bf16 on this CPU than along dim 2
of the (N, G, L_i, L_j) logits, and its backward took twice as long in a training-step A/B (session 6, reverted).

python docs/bench/plain_path_ab.py > docs/bench/plain_path_ab.txt
"""
import time

import timm
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import dynamixer  # noqa: F401
from dynamixer.model import DynaMixerBlock

torch.set_num_threads(2)
B, ROUNDS, STEPS = 128, 7, 6


class BeforeBlock(DynaMixerBlock):
    def combine(self, branches):
        total = branches[0]
        for b in branches[1:]:
            total = total + b
        if self.reweight is None:
            return total
        C = total.shape[-1]
        a = self.reweight(total.mean(dim=(1, 2))).reshape(-1, C, self.num_branches).softmax(dim=2)
        out = branches[0] * a[:, None, None, :, 0]
        for k in range(1, self.num_branches):
            out = out + branches[k] * a[:, None, None, :, k]
        return out


def build(before: bool, **kwargs):
    torch.manual_seed(0)
    m = timm.create_model('dynamixer_xs_convstem', img_size=28, in_chans=1, num_classes=10, fused=False, **kwargs)
    if before:
        for mod in m.modules():
            if type(mod) is DynaMixerBlock:
                mod.__class__ = BeforeBlock
    return m


def step(m, opt, x, y):
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = F.cross_entropy(m(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main():
    print(f'torch {torch.__version__}, 2 threads, bf16 autocast')
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(B, 1, 28, 28, generator=g), torch.randint(0, 10, (B,), generator=g)

    # the softmax alone, on the (N, G, L, L) logits of the recipe's two token grids
    for shape in ((B * 14, 2, 14, 14), (B * 7, 4, 7, 7)):
        t = torch.randn(shape).bfloat16()
        tt = t.transpose(2, 3).contiguous()
        ts = {'dim 2 (as computed)': [], 'last dim (target-major)': []}
        for _ in range(20):
            for k, fn in (('dim 2 (as computed)', lambda: t.softmax(2)), ('last dim (target-major)', lambda: tt.softmax(3))):
                t0 = time.perf_counter()
                fn()
                ts[k].append(time.perf_counter() - t0)
        print(f'softmax bf16 {tuple(shape)}: ' + ', '.join(f'{k} {1e6 * min(v):.0f} us' for k, v in ts.items()))

    for kwargs in ({}, {'reweight': False}):
        models = {'before': build(True, **kwargs), 'after': build(False, **kwargs)}
        with torch.no_grad():
            diff = (models['before'](x) - models['after'](x)).abs().max().item()
        print(f'\nmodel kwargs {kwargs or "{} (the shipped recipe)"}: largest fp32 output difference {diff:.1e}')
        runs = {k: (m, torch.optim.AdamW(m.parameters(), lr=1e-3), []) for k, m in models.items()}
        for _ in range(ROUNDS):
            for k, (m, opt, speeds) in runs.items():
                for _ in range(2):
                    step(m, opt, x, y)
                t0 = time.perf_counter()
                for _ in range(STEPS):
                    step(m, opt, x, y)
                speeds.append(STEPS * B / (time.perf_counter() - t0))
        for k, (m, opt, speeds) in runs.items():
            print(f'  {k:7s} train step {sorted(speeds)[ROUNDS // 2]:5.0f} img/s (median of {ROUNDS} interleaved rounds: '
                  + ' '.join(f'{s:.0f}' for s in speeds) + ')')
        for k, (m, opt, _) in runs.items():
            with profile(activities=[ProfilerActivity.CPU]) as p:
                for _ in range(STEPS):
                    step(m, opt, x, y)
            ev = {e.key: e.self_cpu_time_total / STEPS / 1e3 for e in p.key_averages()}
            total = sum(ev.values())
            parts = ', '.join(f'{op.split("::")[1]} {ev.get(op, 0):.1f}' for op in (
                'aten::_softmax', 'aten::_softmax_backward_data', 'aten::mul', 'aten::add', 'aten::copy_', 'aten::bmm'))
            print(f'  {k:7s} profiler self time per step: {total:.0f} ms in all; {parts} (ms)')


if __name__ == '__main__':
    main()
