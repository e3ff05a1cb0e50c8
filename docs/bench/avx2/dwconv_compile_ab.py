"""The depthwise-conv variant compiled per layer, with and without the dwconv op (session 24, AVX2 CPU, fp32).

Before the fix DwConvMlp ran its nn.Conv2d under torch.compile too, and inductor's lowering of it trained the model
3x slower than eager. Modes, all dynamixer_xs_convstem_sum_dw at 28 px, 1 channel, batch 128, AdamW, fp32:
  eager            DwConvMlp as shipped, not compiled (nn.Conv2d)
  compiled-conv    compiled per layer with the pre-fix forward (nn.Conv2d traced by inductor)
  compiled-op      compiled per layer as shipped (dynamixer::dwconv3x3_nhwc)
With `profile`, also a torch.profiler table of DwConvMlp alone (batch 128, 7x7, 96 -> 384 channels, 5 forward +
backward steps) eager and compiled with the pre-fix forward: where the compiled time goes.

OMP_NUM_THREADS=2 python docs/bench/avx2/dwconv_compile_ab.py profile > docs/bench/avx2/dwconv_compile_ab.txt
"""
import statistics
import sys
import time

import timm
import torch

import dynamixer  # noqa: F401  (registers the models)
from dynamixer.model import DwConvMlp
from dynamixer.ops import compile_layers

torch.set_num_threads(2)


class ConvTracedMlp(DwConvMlp):
    """DwConvMlp's forward before the fix: the nn.Conv2d also under torch.compile."""

    def forward(self, x):
        x = self.dwconv(self.fc1(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.drop2(self.fc2(self.drop1(self.act(x))))


def build(compiled: bool, pre_fix: bool):
    torch.manual_seed(0)
    model = timm.create_model('dynamixer_xs_convstem_sum_dw', img_size=28, in_chans=1, num_classes=10, fused=False)
    if pre_fix:
        for m in model.modules():
            if isinstance(m, DwConvMlp):
                m.__class__ = ConvTracedMlp
    if compiled:
        compile_layers(model, fused=False)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


modes = {'eager': build(False, False), 'compiled-conv': build(True, True), 'compiled-op': build(True, False)}
x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))


def step(model, opt):
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


print(f'torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, 2 threads, fp32',
      flush=True)
for name, (model, opt) in modes.items():
    t0 = time.perf_counter()
    step(model, opt)
    print(f'{name}: first step {time.perf_counter() - t0:.1f} s', flush=True)
    for _ in range(2):
        step(model, opt)
speeds = {name: [] for name in modes}
for r in range(3):
    for name, (model, opt) in modes.items():
        n = 10 if name == 'compiled-conv' else 20
        t0 = time.perf_counter()
        for _ in range(n):
            step(model, opt)
        speeds[name].append(n * 128 / (time.perf_counter() - t0))
    print(f'round {r + 1}: ' + ', '.join(f'{n} {s[-1]:.0f}' for n, s in speeds.items()) + ' img/s', flush=True)
for name, s in speeds.items():
    print(f'{name:13s} median {statistics.median(s):.0f} img/s')

if 'profile' in sys.argv[1:]:
    from torch.profiler import profile
    torch.manual_seed(0)
    mlp = ConvTracedMlp(96, 384)
    h = torch.randn(128, 7, 7, 96, requires_grad=True)
    for name, f in (('eager', mlp), ('compiled, pre-fix forward', torch.compile(mlp, dynamic=False))):
        for _ in range(3):
            f(h).sum().backward()
        with profile() as p:
            for _ in range(5):
                f(h).sum().backward()
        print(f'DwConvMlp alone, {name}:')
        print(p.key_averages().table(sort_by='self_cpu_time_total', row_limit=8))
