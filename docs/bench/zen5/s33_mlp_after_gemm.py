"""Why the malloc matters on a CPU: an MLP's addmm -> gelu -> addmm in bf16 (the 8192 tokens x 192 -> 576 -> 192 of a
dynamixer_s stage-1 layer, 2 threads), 10 steps under torch.profiler; then gelu alone on a tensor it keeps reusing.
Each step allocates three fresh 3-9 MB buffers; glibc hands large ones back to the OS and takes them again, so
the first write to each page faults. Session 33 ran it under each malloc:

for v in "" "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184" \
         "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"; do
    env $v python docs/bench/zen5/s33_mlp_after_gemm.py; done > docs/bench/zen5/s33_mlp_after_gemm.txt
"""
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..'))
import benchmark  # noqa: E402  (the repository's benchmark.py, for memory_allocator)

torch.set_num_threads(2)
torch.manual_seed(0)
x = torch.randn(8192, 192).bfloat16()
w1, b1 = torch.randn(576, 192).bfloat16(), torch.randn(576).bfloat16()
w2, b2 = torch.randn(192, 576).bfloat16(), torch.randn(192).bfloat16()


def mlp():
    return torch.addmm(b2, torch.nn.functional.gelu(torch.addmm(b1, x, w1.t())), w2.t())


for _ in range(5):
    mlp()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with torch.profiler.profile() as prof:
    for _ in range(10):
        mlp()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
ev = {e.key: e for e in prof.key_averages()}
h = torch.addmm(b1, x, w1.t())
for _ in range(5):
    torch.nn.functional.gelu(h)
t0 = time.perf_counter()
for _ in range(20):
    torch.nn.functional.gelu(h)
alone = (time.perf_counter() - t0) / 20
total = sum(e.self_cpu_time_total for e in ev.values())
print(f'{benchmark.memory_allocator():24s} per step: {total / 10e3:5.2f} ms self CPU; addmm (GEMM) '
      f'{ev["aten::addmm"].self_cpu_time_total / 10e3:5.2f} ms, its bias copies {ev["aten::copy_"].self_cpu_time_total / 10e3:5.2f} ms, '
      f'gelu {ev["aten::gelu"].self_cpu_time_total / 10e3:5.2f} ms; gelu alone {alone * 1e3:5.2f} ms; '
      f'{faults / 10:.0f} page faults per step')
