"""The Fashion-MNIST recipe's training step in fp32 on a CPU without AVX-512: which path is fastest? (session 24)

On an AVX2 CPU train.py turns bf16 autocast off (13x slower there, docs/bench/cpu_bf16_avx2.txt), so the recipe
trains in fp32, and the choices made for bf16 on AVX-512 (the plain path, no compile: docs/bench/xs_compile_ab.txt)
are worth checking again. One process, every mode built first, then interleaved rounds so that the VM's drift
falls on all modes alike. Modes, all dynamixer_xs_convstem_sum at 28 px, 1 channel, batch 128, AdamW, fp32:
  plain     fused=False (the recipe's setting)
  fused     fused=True (the package default: hand-written autograd Functions)
  regional  fused=False, dynamixer.ops.compile_layers (each DynaMixerLayer compiled, stem and head eager)
  whole     fused=False, torch.compile of the whole model
  dw        plain with mlp_dwconv=True (dynamixer_xs_convstem_sum_dw), for its cost per step
  dw-regional  dw compiled per layer (its conv as the dynamixer::dwconv3x3_nhwc op since session 24)
Prints each mode's first step (compile included), then per round the img/s of 20 steps per mode.

OMP_NUM_THREADS=2 python docs/bench/avx2/xs_fp32_ab.py > docs/bench/avx2/xs_fp32_ab.txt
"""
import statistics
import sys
import time

import timm
import torch

import dynamixer  # noqa: F401  (registers the models)
from dynamixer.ops import compile_layers

BATCH, ROUNDS, STEPS = 128, int(sys.argv[1]) if len(sys.argv) > 1 else 5, 20
torch.set_num_threads(2)
print(f'torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, '
      f'{torch.get_num_threads()} threads, batch {BATCH}, fp32', flush=True)


def build(name, fused, compile_mode=None, **kwargs):
    torch.manual_seed(0)
    model = timm.create_model(name, img_size=28, in_chans=1, num_classes=10, fused=fused, **kwargs)
    if compile_mode == 'regional':
        compile_layers(model, fused=False)
    elif compile_mode == 'whole':
        model = torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, opt


modes = {
    'plain': build('dynamixer_xs_convstem_sum', False),
    'fused': build('dynamixer_xs_convstem_sum', True),
    'regional': build('dynamixer_xs_convstem_sum', False, 'regional'),
    'whole': build('dynamixer_xs_convstem_sum', False, 'whole'),
    'dw': build('dynamixer_xs_convstem_sum_dw', False),
    'dw-regional': build('dynamixer_xs_convstem_sum_dw', False, 'regional'),
}
x = torch.randn(BATCH, 1, 28, 28)
y = torch.randint(0, 10, (BATCH,))


def step(model, opt):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


for name, (model, opt) in modes.items():
    t0 = time.perf_counter()
    step(model, opt)
    first = time.perf_counter() - t0
    for _ in range(3):
        step(model, opt)
    print(f'{name}: first step {first:.1f} s', flush=True)

speeds = {name: [] for name in modes}
for r in range(ROUNDS):
    for name, (model, opt) in modes.items():
        t0 = time.perf_counter()
        for _ in range(STEPS):
            step(model, opt)
        speeds[name].append(STEPS * BATCH / (time.perf_counter() - t0))
    print(f'round {r + 1}: ' + ', '.join(f'{n} {s[-1]:.0f}' for n, s in speeds.items()) + ' img/s', flush=True)

base = statistics.median(speeds['plain'])
for name, s in speeds.items():
    med = statistics.median(s)
    print(f'{name:11s} median {med:6.0f} img/s  (min {min(s):.0f}, max {max(s):.0f})  {med / base:.2f}x plain')
