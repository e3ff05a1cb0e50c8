"""Can the FLOP and traffic proxies explain the H100 figures of issue 4? (A check of a model, not a measurement.)

If an eager GPU step took t = GEMM FLOPs / P + non-GEMM bytes / BW (GEMMs at a rate P, the other kernels
bandwidth-bound at an effective BW), the H100 figures that issue 4 quotes for the reference code and convnext_tiny
(bf16; inference batch 256, training batch 128) would fix P and BW for each mode, and the model would then give a
figure for this package's paths. FLOPs, bytes and aten ops come from `benchmark.OpCounter` under CPU bf16 autocast
at batch 2 (CUDA autocast casts the same GEMM-class ops). Two figures fix the two unknowns exactly; the check is
whether they come out physical (P > 0, BW > 0).

python docs/bench/traffic_gpu_estimate.py > docs/bench/traffic_gpu_estimate.txt
"""
import os
import sys

import torch
import timm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import dynamixer  # noqa: F401,E402
from benchmark import OpCounter, reference_model  # noqa: E402

torch.manual_seed(0)
B = 2
MODELS = {
    'reference:dynamixer_s': lambda: reference_model('dynamixer_s'),
    'dynamixer_s (fused)': lambda: timm.create_model('dynamixer_s'),
    'dynamixer_s@fused=False': lambda: timm.create_model('dynamixer_s', fused=False),
    'convnext_tiny': lambda: timm.create_model('convnext_tiny'),
}
H100 = {  # issue 4, measured elsewhere: img/s
    'infer': {'reference:dynamixer_s': 2297, 'convnext_tiny': 7528},
    'train': {'reference:dynamixer_s': 828, 'convnext_tiny': 2507},
}


def measure(model, train: bool):
    x = torch.randn(B, 3, 224, 224)
    counter = OpCounter()
    model.train(train)
    with counter, torch.autocast('cpu', dtype=torch.bfloat16):
        if train:
            out = model(x)
        else:
            with torch.no_grad():
                out = model(x)
    if train:
        with counter:
            out.float().sum().backward()
    return counter.gemm_flops / B, counter.nongemm_bytes / B, counter.total


stats = {k: {} for k in H100}
print(f'# torch {torch.__version__}; OpCounter under CPU bf16 autocast, batch {B}, per image')
print(f'{"model":26s} {"mode":5s} {"GFLOP":>7s} {"non-GEMM MB":>11s} {"aten ops":>8s}')
for name, build in MODELS.items():
    model = build()
    for mode in ('infer', 'train'):
        f, b, n = measure(model, mode == 'train')
        stats[mode][name] = (f, b, n)
        print(f'{name:26s} {mode:5s} {f / 1e9:7.2f} {b / 1e6:11.1f} {n:8d}')

print('\n# fitted: t/img = FLOP / P + bytes / BW, through the two H100 figures of each mode')
for mode in ('infer', 'train'):
    (f1, b1, _), (f2, b2, _) = stats[mode]['reference:dynamixer_s'], stats[mode]['convnext_tiny']
    t1, t2 = 1 / H100[mode]['reference:dynamixer_s'], 1 / H100[mode]['convnext_tiny']
    det = f1 * b2 - f2 * b1
    u = (t1 * b2 - t2 * b1) / det  # s per FLOP
    v = (f1 * t2 - f2 * t1) / det  # s per byte
    verdict = 'physical' if u > 0 and v > 0 else 'NOT physical: FLOPs and bytes alone do not explain the two figures'
    print(f'{mode}: P = {1 / u / 1e12:.0f} TFLOP/s, BW = {1 / v / 1e12:.2f} TB/s -> {verdict}')
    ratio = lambda k: stats[mode]['reference:dynamixer_s'][k] / stats[mode]['convnext_tiny'][k]  # noqa: E731
    print(f'  reference / convnext_tiny: H100 time {H100[mode]["convnext_tiny"] / H100[mode]["reference:dynamixer_s"]:.2f}x, '
          f'GEMM FLOPs {ratio(0):.2f}x, non-GEMM bytes {ratio(1):.2f}x, aten ops {ratio(2):.2f}x')
