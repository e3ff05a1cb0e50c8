#!/usr/bin/env python3
"""Benchmark models side by side: params, GMACs, img/s, peak memory, and device-independent proxies.

Flags follow timm's benchmark.py. Several models are measured in ONE run, interleaved round by round, so a
noisy machine affects them alike; the reported img/s is the median over rounds, and *_cpu_s_per_img the median
CPU time of the process (all its threads) per image, which other load on a shared CPU disturbs less.

    python benchmark.py --model dynamixer_s "dynamixer_s@fused=False" convnext_tiny \
        --bench both -b 8 --device cpu --results-file results.csv

A model entry is a timm name, or `reference:<dynamixer_s|m|l>` (the authors' formulation, for side-by-side
runs), optionally followed by `@key=value,key=value` (constructor kwargs of that entry
only; `torchcompile=inductor` compiles just that entry, `compile_memory_budget=0.4` sets its activation memory
budget, `amp=bfloat16` / `amp=fp32` sets its precision whatever --amp says); `--model-kwargs key=value ...`
applies to every model.
--torchcompile compiles DynaMixer models per layer (dynamixer.ops.compile_layers: one compiled graph per layer
shape, reused by every layer of that shape), other models whole.

Device-independent proxies (taken on CPU by default at --proxy-batch, the same on any device):
  aten_ops: every aten op call (views included) seen by a TorchDispatchMode over one forward and one
      backward of `output.float().sum()`, gradients starting from None;
  copy_ops: the calls among them to copy_, clone, _to_copy, cat, stack and _unsafe_view (the ops that
      materialise a copy; _unsafe_view is what reshape emits after a copy);
  saved_mib_per_img: bytes of the tensors autograd saves for backward (torch.autograd.graph
      .saved_tensors_hooks), each storage counted once, parameters excluded, divided by the batch size;
  saved_mib_per_img_with_params: the same plus the parameter bytes, divided by the batch size (the
      convention of the figures quoted in issue 4, which it reproduces at batch 2 within 2 MiB).
  nongemm_mb_per_img / infer_nongemm_mb_per_img: MB (1e6 bytes) per image that the non-GEMM aten calls read and
      write over the same forward + backward / over one inference forward (eval, no_grad): views, allocations,
      matrix products, convolutions and fused attention excluded (OpCounter). On a GPU these calls are
      bandwidth-bound, so this is the proxy for their time (the GEMMs' is their FLOPs);
  gemm_gflop_per_img / infer_gemm_gflop_per_img: GFLOP (2 x multiply-adds) per image of the GEMM-class calls,
      recomputation included;
  profiled_aten_ops / profiled_copy_ops: the top-level aten calls torch.profiler records over the same
      forward + backward (an aten op called by another, linear -> addmm, counts once);
  compiled_profiled_aten_ops / compiled_profiled_copy_ops / compiled_saved_mib_per_img (compiled entries,
      --bench train or both): the profiler counts and the saved bytes of one forward + backward of the
      compiled model after its warm-up, at -b on --device (a TorchDispatchMode cannot count inside compiled
      graphs): what is left for the dispatcher once inductor runs the fused elementwise work itself.
Measured with the timings: infer_page_faults_per_img / train_page_faults_per_img, the minor page faults of the
timed steps per image (median over rounds), and `malloc`, the allocator the process runs on: on a CPU, glibc's
malloc hands large freed buffers back to the OS, and the first write to each page of the next one faults.
GMACs: fvcore FlopCountAnalysis at batch 1 with LayerNorm not counted (as the DynaMixer paper / reference
do); fvcore jit-traces the model, and traced DynaMixer models take their plain path (fvcore cannot see inside
an autograd Function; the fused path computes the same function).
"""
import argparse
import ast
import csv
import json
import logging
import os
import statistics
import sys
import time
from collections import Counter
from contextlib import contextmanager, nullcontext
from typing import Dict, List, Tuple

try:
    import resource  # minor page faults (getrusage); not on Windows
except ImportError:
    resource = None

import torch
import torch.nn as nn
import timm
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

import dynamixer  # noqa: F401  registers dynamixer_* with timm
from dynamixer.engine import cpu_has_native_bf16, memory_allocator
from dynamixer.ops import compile_layers

_logger = logging.getLogger('benchmark')

COPY_OPS = ('copy_', 'clone', '_to_copy', 'cat', 'stack', '_unsafe_view')
# matrix products and convolutions: their FLOPs are counted, their bytes are not non-GEMM traffic
GEMM_OPS = ('mm', 'addmm', 'addmm_', 'bmm', 'baddbmm', 'baddbmm_', 'convolution', 'convolution_backward')
# fused attention (deit_small, swin_tiny): GEMM-class, FLOPs of the two products (backward: four)
ATTENTION_OPS = ('_scaled_dot_product_flash_attention_for_cpu', '_scaled_dot_product_flash_attention_for_cpu_backward',
                 '_scaled_dot_product_efficient_attention', '_scaled_dot_product_efficient_attention_backward',
                 '_scaled_dot_product_flash_attention', '_scaled_dot_product_flash_attention_backward',
                 '_scaled_dot_product_cudnn_attention', '_scaled_dot_product_cudnn_attention_backward')
ALLOC_OPS = ('empty', 'empty_like', 'empty_strided', 'new_empty', 'new_empty_strided')  # no bytes moved


class ParseKwargs(argparse.Action):
    """key=value pairs -> dict, values parsed as Python literals when possible (timm's --model-kwargs)."""

    def __call__(self, parser, namespace, values, option_string=None):
        kw = {}
        for value in values:
            key, val = value.split('=', 1)
            kw[key] = _literal(val)
        setattr(namespace, self.dest, kw)


def _literal(val: str):
    try:
        return ast.literal_eval(val)
    except (ValueError, SyntaxError):
        return val


parser = argparse.ArgumentParser(description='Benchmark models side by side (timm flag names)')
parser.add_argument('--model', '-m', nargs='+', default=None,
                    help='model names, each optionally with @key=value,... kwargs of its own')
parser.add_argument('--model-list', default='', help='file with one model entry per line')
parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs,
                    help='kwargs for every model, e.g. fused=False')
parser.add_argument('--bench', default='both', choices=('inference', 'train', 'both'))
parser.add_argument('-b', '--batch-size', type=int, default=8)
parser.add_argument('--img-size', type=int, default=None, help='input size (default: the model\'s)')
parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
parser.add_argument('--amp', action='store_true', help='autocast (mixed precision)')
parser.add_argument('--amp-dtype', default='bfloat16', choices=('float16', 'bfloat16'))
parser.add_argument('--model-dtype', default=None, choices=('float32', 'float16', 'bfloat16'),
                    help='run models and inputs in this dtype, without autocast (as in timm); an entry may set its own '
                         '(@model_dtype=bfloat16). Proxies and GMACs stay in float32')
parser.add_argument('--torchcompile', nargs='?', const='inductor', default=None,
                    help='torch.compile backend; DynaMixer models are compiled per layer (regional)')
parser.add_argument('--compile-memory-budget', type=float, default=None,
                    help='activation memory budget in (0, 1] of compiled DynaMixer layers (compile_layers)')
parser.add_argument('--num-warm-iter', type=int, default=2)
parser.add_argument('--num-bench-iter', type=int, default=5)
parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds over all models (median taken)')
parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads on CPU')
parser.add_argument('--no-proxies', action='store_true', help='skip aten op / copy / saved-bytes counts')
parser.add_argument('--proxy-batch', type=int, default=2, help='batch for the proxies (taken on CPU)')
parser.add_argument('--no-gmacs', action='store_true', help='skip the fvcore GMAC count')
parser.add_argument('--results-file', default='', help='write results (.csv or .json)')


def parse_entry(entry: str, common: Dict) -> Tuple[str, Dict]:
    """'name@k=v,k2=v2' -> (name, kwargs), the common kwargs first."""
    name, _, spec = entry.partition('@')
    kw = dict(common)
    for item in filter(None, spec.split(',')):
        key, val = item.split('=', 1)
        kw[key] = _literal(val)
    return name, kw


class OpCounter(TorchDispatchMode):
    """Counts aten op calls by name (overload packet), e.g. counter.counts['mm'], and what they move.

    `nongemm_bytes`: the bytes of the tensor arguments and results of every call that is not a view (an op whose
    result aliases an input without writing it: view, t, permute, detach, ...), an allocation (empty*) or a
    GEMM-class op (GEMM_OPS, ATTENTION_OPS); a tensor counts numel x element size as shaped (an expanded view
    counts its full size), and an in-place op counts its mutated tensor twice (read and written). On a GPU these
    are the bandwidth-bound kernels, so this estimates their memory traffic. `gemm_flops`: 2 x the multiply-adds
    of the GEMM-class calls (a convolution's backward counts its input and weight gradients).
    """

    def __init__(self):
        super().__init__()
        self.counts = Counter()
        self.nongemm_bytes = 0
        self.gemm_flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._overloadpacket.__name__
        self.counts[name] += 1
        out = func(*args, **kwargs)
        if name in GEMM_OPS or name in ATTENTION_OPS:
            self.gemm_flops += _gemm_flops(name, args, out)
        elif name not in ALLOC_OPS and not _is_view(func):
            tensors = [t for t in pytree.tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
            self.nongemm_bytes += sum(t.numel() * t.element_size() for t in tensors)
        return out

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def copies(self) -> int:
        return sum(self.counts[k] for k in COPY_OPS)


def _is_view(func) -> bool:
    return any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns)


def _gemm_flops(name: str, args, out) -> int:
    if name in ('mm', 'bmm'):
        a, b = args[0], args[1]
    elif name in ('addmm', 'addmm_', 'baddbmm', 'baddbmm_'):
        a, b = args[1], args[2]
    elif name == 'convolution':  # (input, weight, bias, stride, padding, dilation, transposed, ...)
        # each output element takes C_in / groups x kernel MACs; transposed: each input element C_out / groups x kernel
        return 2 * (args[0] if args[6] else out).numel() * args[1][0].numel()
    elif name == 'convolution_backward':  # (grad_out, input, weight, ..., output_mask)
        return 2 * args[0].numel() * args[2][0].numel() * sum(bool(m) for m in args[-1][:2])
    else:  # fused attention: q (B, heads, Lq, D), k (B, heads, Lk, D); forward QK^T and PV, backward 4 products
        q, k = (args[1], args[2]) if name.endswith('_backward') else (args[0], args[1])
        return 2 * (4 if name.endswith('_backward') else 2) * q.numel() * k.shape[-2]
    return 2 * a.numel() * b.shape[-1]


def saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd saves for backward in model(x) (storages counted once, parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t: torch.Tensor):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    return sum(storages.values())


def proxies(model: nn.Module, x: torch.Tensor) -> Dict:
    """aten ops, copy ops, traffic and GEMM FLOPs over one forward + backward, and saved MiB per image."""
    model.eval()
    infer = OpCounter()
    with torch.no_grad(), infer:
        model(x)
    model.train()
    model.zero_grad(set_to_none=True)
    counter = OpCounter()
    with counter:
        model(x).float().sum().backward()
    model.zero_grad(set_to_none=True)
    prof_ops, prof_copies = profiled_aten_ops(lambda: model(x).float().sum().backward())
    model.zero_grad(set_to_none=True)
    saved = saved_bytes(model, x)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    B = x.shape[0]
    return dict(aten_ops=counter.total, copy_ops=counter.copies, profiled_aten_ops=prof_ops, profiled_copy_ops=prof_copies,
                nongemm_mb_per_img=round(counter.nongemm_bytes / B / 1e6, 1),
                infer_nongemm_mb_per_img=round(infer.nongemm_bytes / B / 1e6, 1),
                gemm_gflop_per_img=round(counter.gemm_flops / B / 1e9, 2),
                infer_gemm_gflop_per_img=round(infer.gemm_flops / B / 1e9, 2),
                saved_mib_per_img=round(saved / x.shape[0] / 2 ** 20, 1),
                saved_mib_per_img_with_params=round((saved + param_bytes) / x.shape[0] / 2 ** 20, 1))


def profiled_aten_ops(fn) -> Tuple[int, int]:
    """(aten ops, copy ops) that `fn` calls at the top level, as torch.profiler records them: aten ops
    called by other aten ops (linear -> addmm) are not counted again. Works for compiled code too."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    ops = copies = 0
    for e in prof.events():
        if e.name.startswith('aten::') and (e.cpu_parent is None or not e.cpu_parent.name.startswith('aten::')):
            ops += 1
            copies += e.name[len('aten::'):] in COPY_OPS
    return ops, copies


def count_gmacs(model: nn.Module, x: torch.Tensor) -> float:
    from fvcore.nn import FlopCountAnalysis
    fca = FlopCountAnalysis(model.eval(), x)  # jit-traces; DynaMixer models take their plain path when traced
    # the reference's GMACs do not count LayerNorm; a None handle would not override fvcore's default one
    fca.set_op_handle('aten::layer_norm', lambda inputs, outputs: Counter())
    fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return round(fca.total() / x.shape[0] / 1e9, 2)


def reference_model(variant: str, img_size: int = 224, num_classes: int = 1000) -> nn.Module:
    """The authors' formulation of `variant` (tests/reference_dynamixer.py, written from the reference's
    semantics: permute copies, matmul with the softmax over sources, a channel-strided token layout), the
    baseline issue 4 measures speed against."""
    tests_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tests')
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    from reference_dynamixer import RefDynaMixer
    model = RefDynaMixer(variant, img_size=img_size, num_classes=num_classes)
    model.pretrained_cfg = dict(input_size=(3, img_size, img_size))
    model.num_classes = num_classes
    return model


def _page_faults() -> int:
    """Minor page faults of this process so far (-1 where getrusage is missing): a timed step that faults
    thousands of times per image is paying for fresh pages from its malloc (docs/benchmarks.md, "Session 33")."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else -1


@contextmanager
def _env(**values: str):
    """Environment variables set for the duration of the block, restored after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Bench:
    """One model entry: builds the model, times inference / train steps on demand."""

    def __init__(self, entry: str, args):
        self.name, self.kwargs = parse_entry(entry, args.model_kwargs)
        self.entry = entry
        self.args = args
        self.device = torch.device(args.device)
        kw = dict(self.kwargs)
        # per-entry compile, so compiled and eager runs of one model can be measured side by side
        self.torchcompile = kw.pop('torchcompile', args.torchcompile)
        self.memory_budget = kw.pop('compile_memory_budget', args.compile_memory_budget)
        # per-entry precision: amp=bfloat16 / float16 autocasts this entry only, amp=fp32 keeps it in fp32
        amp_dtype = kw.pop('amp', args.amp_dtype if args.amp else 'fp32')
        # per-entry model dtype (timm's --model-dtype): the model and its inputs in that dtype, without autocast
        model_dtype = kw.pop('model_dtype', args.model_dtype)
        if model_dtype not in (None, 'float32', 'float16', 'bfloat16'):
            raise SystemExit(f'{entry}: model_dtype must be float32, float16 or bfloat16, got {model_dtype!r}')
        if model_dtype not in (None, 'float32') and amp_dtype != 'fp32':
            raise SystemExit(f'{entry}: a model dtype and autocast (amp) together: give one of them')
        self.model_dtype = getattr(torch, model_dtype) if model_dtype else None
        # per-entry opt-in Triton kernel for generate -> softmax -> mix (dynamixer/kernels/mix.py, unmeasured so far):
        # triton_mix=1 sets DYNAMIXER_TRITON_MIX=1 around this entry's steps, so it runs beside the default path
        self.triton_mix = bool(kw.pop('triton_mix', False))
        if amp_dtype not in ('fp32', 'float16', 'bfloat16'):
            raise SystemExit(f'{entry}: amp must be fp32, float16 or bfloat16, got {amp_dtype!r}')
        if self.memory_budget is not None and not self.torchcompile:
            raise SystemExit(f'{entry}: a compile memory budget needs torchcompile (add --torchcompile or '
                             '@torchcompile=inductor)')
        if self.memory_budget is not None and not 0 < self.memory_budget <= 1:
            raise SystemExit(f'{entry}: the compile memory budget must be in (0, 1], got {self.memory_budget}')
        if args.img_size is not None:
            kw.setdefault('img_size', args.img_size)
        if self.name.startswith('reference:'):  # the authors' formulation, for side-by-side runs
            self.model = reference_model(self.name.split(':', 1)[1], **kw)
        else:
            self.model = timm.create_model(self.name, **kw)
        cfg = self.model.pretrained_cfg
        size = args.img_size or cfg['input_size'][-1]
        self.input_size = (kw.get('in_chans', cfg['input_size'][0]), size, size)  # in_chans=1: grey inputs
        self.num_classes = self.model.num_classes
        self.param_count = sum(p.numel() for p in self.model.parameters())
        self.amp = torch.autocast(self.device.type, dtype=getattr(torch, amp_dtype)) if amp_dtype != 'fp32' else nullcontext()
        self.result = dict(model=entry, param_count=round(self.param_count / 1e6, 2), batch_size=args.batch_size,
                           img_size=size, device=args.device, amp=amp_dtype, model_dtype=model_dtype or 'float32',
                           torchcompile=self.torchcompile or '', triton_mix=int(self.triton_mix),
                           compile_memory_budget='' if self.memory_budget is None else self.memory_budget,
                           malloc=memory_allocator())
        self.infer_times: List[float] = []
        self.train_times: List[float] = []
        self.infer_cpu_times: List[float] = []
        self.train_cpu_times: List[float] = []
        self.page_faults: Dict[str, List[int]] = {'infer': [], 'train': []}

    def measure_static(self):
        args = self.args
        if not args.no_gmacs:
            self.result['gmacs'] = count_gmacs(self.model, torch.randn(1, *self.input_size))
        if not args.no_proxies:
            model = self.model
            self.result.update(proxies(model, torch.randn(args.proxy_batch, *self.input_size)))

    def prepare(self):
        self.model.to(self.device, dtype=self.model_dtype)
        self.infer_model = self.train_model = self.model
        self.example = torch.randn(self.args.batch_size, *self.input_size, device=self.device, dtype=self.model_dtype)
        self.target = torch.randint(0, max(self.num_classes, 1), (self.args.batch_size,), device=self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=1e-4, **({'fused': True} if self.device.type == 'cuda' else {}))
        if self.torchcompile:
            t0 = time.perf_counter()
            compile_layers(self.model, memory_budget=self.memory_budget, backend=self.torchcompile)
            self.result['compile_setup_s'] = round(time.perf_counter() - t0, 2)

    def _sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def _kernels(self):
        return _env(DYNAMIXER_TRITON_MIX='1' if self.triton_mix else '0')

    def infer_step(self):
        with torch.no_grad(), self.amp, self._kernels():
            self.infer_model(self.example)

    def train_step(self):
        with self.amp, self._kernels():
            out = self.train_model(self.example)
            loss = nn.functional.cross_entropy(out.float(), self.target) if self.num_classes else out.float().mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def warmup(self, kind: str):
        step = self.infer_step if kind == 'inference' else self.train_step
        (self.model.eval() if kind == 'inference' else self.model.train())
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
        t0 = time.perf_counter()
        for _ in range(self.args.num_warm_iter):
            step()
        self._sync()
        self.result[f'{kind[:5]}_warmup_s'] = round(time.perf_counter() - t0, 2)

    def timed(self, kind: str) -> float:
        step = self.infer_step if kind == 'inference' else self.train_step
        (self.model.eval() if kind == 'inference' else self.model.train())
        self._sync()
        t0, c0, f0 = time.perf_counter(), time.process_time(), _page_faults()
        for _ in range(self.args.num_bench_iter):
            step()
        self._sync()
        self.page_faults[kind[:5]].append(_page_faults() - f0)
        dt = (time.perf_counter() - t0) / self.args.num_bench_iter
        (self.infer_times if kind == 'inference' else self.train_times).append(dt)
        # CPU time of this process (all its threads): less sensitive than wall time to other load on a
        # shared CPU; on CUDA it is host time only
        dc = (time.process_time() - c0) / self.args.num_bench_iter
        (self.infer_cpu_times if kind == 'inference' else self.train_cpu_times).append(dc)
        if self.device.type == 'cuda':
            key = f'{kind[:5]}_peak_mem_gib'
            self.result[key] = round(max(self.result.get(key, 0), torch.cuda.max_memory_allocated(self.device) / 2 ** 30), 2)
        return dt

    def measure_compiled_ops(self):
        """Top-level aten ops / copy ops of one forward + backward of the compiled model after its warm-up,
        counted by the profiler (`profiled_aten_ops`), at -b on --device: what is left for the dispatcher
        once inductor runs the fused elementwise work in its own kernels. (A TorchDispatchMode cannot count
        these: dynamo does not run compiled graphs under an active dispatch mode.)"""
        self.model.train()
        self.model.zero_grad(set_to_none=True)
        ops, copies = profiled_aten_ops(lambda: self.train_model(self.example).float().sum().backward())
        self.model.zero_grad(set_to_none=True)
        saved = saved_bytes(self.train_model, self.example)  # what the compiled graphs keep for backward
        self.result.update(compiled_profiled_aten_ops=ops, compiled_profiled_copy_ops=copies,
                           compiled_saved_mib_per_img=round(saved / self.example.shape[0] / 2 ** 20, 1))

    def summarize(self):
        B = self.args.batch_size
        for kind, times in (('infer', self.infer_times), ('train', self.train_times)):
            if times:
                med = statistics.median(times)
                self.result[f'{kind}_samples_per_sec'] = round(B / med, 2)
                self.result[f'{kind}_step_time_ms'] = round(1e3 * med, 1)
                self.result[f'{kind}_rounds_samples_per_sec'] = ' '.join(f'{B / t:.2f}' for t in times)
        for kind, times in (('infer', self.infer_cpu_times), ('train', self.train_cpu_times)):
            if times:
                self.result[f'{kind}_cpu_s_per_img'] = round(statistics.median(times) / B, 3)
        for kind, faults in self.page_faults.items():
            if faults and faults[0] >= 0:
                self.result[f'{kind}_page_faults_per_img'] = round(statistics.median(faults) / self.args.num_bench_iter / B)
        return self.result


def write_results(results: List[Dict], path: str):
    if path.endswith('.json'):
        with open(path, 'w') as f:
            json.dump(results, f, indent=2)
        return
    keys = []
    for r in results:
        keys += [k for k in r if k not in keys]
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(results)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    args = parser.parse_args(argv)
    entries = list(args.model or [])
    if args.model_list:
        with open(args.model_list) as f:
            entries += [line.strip() for line in f if line.strip() and not line.startswith('#')]
    if not entries:
        parser.error('give --model or --model-list')
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = f', CPU {torch.backends.cpu.get_cpu_capability()}' if args.device == 'cpu' else ''
    _logger.info(f'torch {torch.__version__}, timm {timm.__version__}, device {args.device}{cpu}, '
                 f'threads {torch.get_num_threads()}, batch {args.batch_size}, malloc {memory_allocator()}')
    if args.device == 'cpu' and args.amp and not cpu_has_native_bf16():
        # measured as asked (the benchmark is where the slowdown shows); train.py / validate.py drop --amp here
        _logger.warning('--amp on a CPU without AVX-512: bfloat16 runs far slower than fp32 here')

    benches = [Bench(e, args) for e in entries]
    for b in benches:
        b.measure_static()
        b.prepare()
    kinds = ['inference', 'train'] if args.bench == 'both' else [args.bench]
    for kind in kinds:
        for b in benches:
            b.warmup(kind)
        for r in range(args.rounds):
            for b in benches:  # interleaved: every round visits every model
                dt = b.timed(kind)
                _logger.info(f'{kind} round {r} {b.entry}: {args.batch_size / dt:.2f} img/s')
    for b in benches:
        if b.torchcompile and not args.no_proxies and 'train' in kinds:
            b.measure_compiled_ops()
    results = [b.summarize() for b in benches]
    for r in results:
        _logger.info(json.dumps(r))
    if args.results_file:
        write_results(results, args.results_file)
    return results


if __name__ == '__main__':
    main()
