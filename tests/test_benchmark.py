"""benchmark.py: runs on CPU for a tiny model and writes the expected columns; the op counter counts right."""
import csv
import os
import subprocess
import sys

import pytest
import torch

import benchmark
from benchmark import OpCounter, saved_bytes


def test_op_counter_counts_a_known_sequence():
    a = torch.randn(4, 3)
    b = torch.randn(3, 5)
    with OpCounter() as counter:
        c = a @ b  # mm
        d = c.t().contiguous()  # t, clone
        e = torch.cat([d, d])  # cat
        e.add_(1)  # add_
    assert counter.counts['mm'] == 1
    assert counter.counts['t'] == 1
    assert counter.counts['clone'] == 1
    assert counter.counts['cat'] == 1
    assert counter.counts['add_'] == 1
    assert counter.total == 5
    assert counter.copies == 2  # clone and cat


def test_op_counter_measures_non_gemm_traffic_and_gemm_flops_of_a_known_sequence():
    a = torch.randn(4, 3)
    b = torch.randn(3, 5)
    w = torch.randn(2, 3, 1, 1)
    with OpCounter() as counter:
        c = a @ b  # GEMM: 2 x 4 x 3 x 5 FLOPs, its bytes are not traffic
        d = c.t()  # a view: nothing moved
        e = d.contiguous()  # clone: reads 20 floats, writes 20
        e.add_(1)  # in place: reads and writes e (20 + 20)
        f = torch.empty_like(e)  # allocation: nothing moved
        g = torch.nn.functional.gelu(e)  # reads 20, writes 20
        h = torch.nn.functional.conv2d(torch.randn(1, 3, 4, 4), w)  # randn writes 48; conv: 2 x 32 x 3 FLOPs
    assert counter.gemm_flops == 2 * 4 * 3 * 5 + 2 * (2 * 4 * 4) * 3
    assert counter.nongemm_bytes == 4 * (40 + 40 + 40 + 48)
    assert f.shape == g.shape and h.shape == (1, 2, 4, 4)


def test_op_counter_counts_a_transposed_conv_per_input_element():
    x = torch.randn(1, 4, 5, 5)
    w = torch.randn(4, 3, 3, 3)  # (C_in, C_out, k, k): each input element feeds 3 x 3 x 3 outputs
    with OpCounter() as counter:
        y = torch.nn.functional.conv_transpose2d(x, w)
    assert y.shape == (1, 3, 7, 7)
    assert counter.gemm_flops == 2 * x.numel() * 3 * 3 * 3


def test_fused_layer_moves_less_non_gemm_traffic_than_the_plain_modules():
    from dynamixer.model import DynaMixerLayer
    torch.manual_seed(0)
    layer = DynaMixerLayer(64, (8, 8), 4)
    x = torch.randn(2, 8, 8, 64)
    traffic = {}
    for fused in (True, False):
        layer.token_mixer.fused = fused
        with OpCounter() as counter:
            layer(x).sum().backward()
        traffic[fused] = counter.nongemm_bytes
        layer.zero_grad(set_to_none=True)
    assert traffic[True] < 0.85 * traffic[False]  # 0.78 at this shape


def test_saved_bytes_counts_each_storage_once_and_skips_parameters():
    lin = torch.nn.Linear(8, 8, bias=False)
    x = torch.randn(4, 8, requires_grad=True)

    class Square(torch.nn.Module):
        def forward(self, t):
            y = lin(t)
            return y * y  # saves y twice (one storage)

    assert saved_bytes(torch.nn.ModuleDict({'lin': lin}).lin, x) == 4 * 8 * 4  # x; the weight is a parameter
    model = Square()
    model.lin = lin
    assert saved_bytes(model, x) == 2 * 4 * 8 * 4  # x (for the weight grad) and y


def test_benchmark_runs_tiny_models_side_by_side_and_writes_results(tmp_path):
    out = tmp_path / 'results.csv'
    results = benchmark.main([
        '--model', 'dynamixer_xs', 'dynamixer_xs@fused=False', '--model-kwargs', 'num_classes=10',
        '--bench', 'both', '-b', '2', '--device', 'cpu', '--num-warm-iter', '1', '--num-bench-iter', '1',
        '--rounds', '2', '--results-file', str(out)])
    assert len(results) == 2
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [r['model'] for r in rows] == ['dynamixer_xs', 'dynamixer_xs@fused=False']
    for col in ('param_count', 'gmacs', 'aten_ops', 'copy_ops', 'saved_mib_per_img', 'nongemm_mb_per_img',
                'infer_nongemm_mb_per_img', 'gemm_gflop_per_img', 'infer_samples_per_sec',
                'train_samples_per_sec', 'infer_rounds_samples_per_sec', 'batch_size', 'img_size', 'device', 'malloc'):
        assert col in rows[0], col
    fused, plain = rows
    assert fused['param_count'] == plain['param_count']
    assert fused['gmacs'] == plain['gmacs'] and float(fused['gmacs']) > 0
    assert int(fused['aten_ops']) < int(plain['aten_ops'])
    assert int(fused['copy_ops']) < int(plain['copy_ops'])
    assert float(fused['saved_mib_per_img']) < float(plain['saved_mib_per_img'])
    assert float(fused['infer_nongemm_mb_per_img']) < float(plain['infer_nongemm_mb_per_img'])
    # the same GEMMs, and the fused backward recomputes the mixing: a little more, never less
    assert float(plain['gemm_gflop_per_img']) <= float(fused['gemm_gflop_per_img']) < 1.1 * float(plain['gemm_gflop_per_img'])
    assert len(fused['infer_rounds_samples_per_sec'].split()) == 2
    assert fused['malloc'] == benchmark.memory_allocator()
    assert int(fused['infer_page_faults_per_img']) >= 0 and int(fused['train_page_faults_per_img']) >= 0


def test_in_chans_sets_the_benchmark_input_channels():
    # the pretrained cfg says 3 channels; a grey model (Fashion-MNIST recipe) must get 1-channel inputs
    results = benchmark.main([
        '--model', 'dynamixer_xs_s2stem_sum', '--model-kwargs', 'in_chans=1', 'num_classes=10', '--img-size', '28',
        '--bench', 'train', '-b', '2', '--device', 'cpu', '--num-warm-iter', '1', '--num-bench-iter', '1',
        '--rounds', '1', '--no-proxies'])
    assert results[0]['img_size'] == 28 and results[0]['train_samples_per_sec'] > 0
    assert results[0]['gmacs'] == 0.03  # fvcore on a (1, 1, 28, 28) input: 34 MMACs, rounded to 2 places


def test_reference_formulation_entry_reproduces_the_issues_proxy_counts():
    # `reference:dynamixer_s` is the authors' formulation (tests/reference_dynamixer.py); issue 4 measured the
    # reference code at 6,311 aten ops, 664 copies and 226.7 MiB/img (parameters included, batch 2)
    results = benchmark.main([
        '--model', 'reference:dynamixer_s', '--bench', 'inference', '-b', '1', '--device', 'cpu',
        '--num-warm-iter', '1', '--num-bench-iter', '1', '--rounds', '1', '--no-gmacs'])
    ref = results[0]
    assert ref['param_count'] == 26.27
    assert ref['copy_ops'] == 664
    assert abs(ref['aten_ops'] - 6311) < 0.02 * 6311
    assert abs(ref['saved_mib_per_img_with_params'] - 226.7) < 2


def test_profiled_op_count_counts_top_level_aten_calls_only():
    a, b = torch.randn(4, 3), torch.randn(3, 5)
    lin = torch.nn.Linear(3, 5)
    ops, copies = benchmark.profiled_aten_ops(lambda: (torch.cat([a @ b, lin(a)]).sum()))
    # mm, linear (its addmm is called by linear and not counted again), cat, sum
    assert (ops, copies) == (4, 1)


def test_compiled_entries_with_a_memory_budget_keep_less_for_backward_side_by_side(tmp_path):
    # one process, the same layer code: the budgeted entry must compile its own graphs, not reuse the first's
    results = benchmark.main([
        '--model', 'dynamixer_xs@torchcompile=aot_eager', 'dynamixer_xs@torchcompile=aot_eager,compile_memory_budget=0.3',
        '--model-kwargs', 'num_classes=10', '--bench', 'train', '-b', '2', '--device', 'cpu', '--num-warm-iter', '1',
        '--num-bench-iter', '1', '--rounds', '1', '--no-gmacs'])
    default, budget = results
    assert (default['compile_memory_budget'], budget['compile_memory_budget']) == ('', 0.3)
    assert budget['compiled_saved_mib_per_img'] < 0.5 * default['compiled_saved_mib_per_img']


@pytest.mark.parametrize('entry, message', [('dynamixer_xs@compile_memory_budget=0.5', 'needs torchcompile'),
                                            ('dynamixer_xs@torchcompile=aot_eager,compile_memory_budget=2',
                                             r'must be in \(0, 1\], got 2')])
def test_bad_compile_memory_budget_is_one_clear_error(entry, message):
    with pytest.raises(SystemExit, match=message):
        benchmark.main(['--model', entry, '--device', 'cpu', '--no-proxies', '--no-gmacs'])


def test_model_dtype_runs_an_entry_in_that_dtype_beside_a_float32_one(monkeypatch):
    seen = []  # the dtype of each training forward's input
    from dynamixer.model import DynaMixer
    real = DynaMixer.forward_features
    monkeypatch.setattr(DynaMixer, 'forward_features', lambda self, x: seen.append(x.dtype) or real(self, x))
    results = benchmark.main([
        '--model', 'dynamixer_xs@model_dtype=bfloat16', 'dynamixer_xs', '--bench', 'both', '-b', '2', '--device', 'cpu',
        '--num-warm-iter', '1', '--num-bench-iter', '1', '--rounds', '1', '--no-proxies', '--no-gmacs'])
    assert [r['model_dtype'] for r in results] == ['bfloat16', 'float32']
    assert set(seen) == {torch.bfloat16, torch.float32}
    assert all(r['infer_samples_per_sec'] > 0 and r['train_samples_per_sec'] > 0 for r in results)
    with pytest.raises(SystemExit, match='a model dtype and autocast'):
        benchmark.main(['--model', 'dynamixer_xs@model_dtype=bfloat16,amp=bfloat16', '--device', 'cpu', '--no-proxies',
                        '--no-gmacs'])


def test_an_entry_can_set_its_own_precision_side_by_side(monkeypatch):
    seen = []  # the dtype each entry's training forward runs its GEMMs in
    real_linear = torch.nn.functional.linear
    monkeypatch.setattr(torch.nn.functional, 'linear', lambda x, w, b=None: seen.append(
        torch.get_autocast_dtype('cpu') if torch.is_autocast_enabled('cpu') else torch.float32) or real_linear(x, w, b))
    results = benchmark.main([
        '--model', 'dynamixer_xs@fused=False,amp=fp32', 'dynamixer_xs@fused=False', '--amp', '--amp-dtype', 'bfloat16',
        '--bench', 'train', '-b', '2', '--device', 'cpu', '--num-warm-iter', '1', '--num-bench-iter', '1',
        '--rounds', '1', '--no-proxies', '--no-gmacs'])
    assert [r['amp'] for r in results] == ['fp32', 'bfloat16']
    assert set(seen) == {torch.float32, torch.bfloat16}
    with pytest.raises(SystemExit, match="amp must be fp32, float16 or bfloat16, got 'fp16'"):
        benchmark.main(['--model', 'dynamixer_xs@amp=fp16', '--device', 'cpu', '--no-proxies', '--no-gmacs'])


def test_an_entry_can_opt_into_the_triton_mix_kernel_side_by_side(monkeypatch):
    import dynamixer.ops as ops
    real = ops.triton_mix_enabled
    seen = []  # per forward of a fused block: whether the opt-in switch (read at call time) was on

    def spy(x):
        seen.append(os.environ.get('DYNAMIXER_TRITON_MIX') == '1')
        return real(x)

    monkeypatch.setattr(ops, 'triton_mix_enabled', spy)
    monkeypatch.delenv('DYNAMIXER_TRITON_MIX', raising=False)
    results = benchmark.main([
        '--model', 'dynamixer_xs@triton_mix=1', 'dynamixer_xs', '--bench', 'inference', '-b', '2', '--device', 'cpu',
        '--num-warm-iter', '1', '--num-bench-iter', '1', '--rounds', '1', '--no-proxies', '--no-gmacs'])
    assert [r['triton_mix'] for r in results] == [1, 0]
    assert True in seen and False in seen
    assert 'DYNAMIXER_TRITON_MIX' not in os.environ  # restored after every step


TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4'


@pytest.mark.parametrize('env, expected', [
    ({}, 'glibc'),
    ({'GLIBC_TUNABLES': 'glibc.malloc.trim_threshold=17179869184'}, 'glibc (GLIBC_TUNABLES)'),
    pytest.param({'LD_PRELOAD': TCMALLOC}, 'tcmalloc', marks=pytest.mark.skipif(
        not os.path.exists(TCMALLOC), reason='Debian package libtcmalloc-minimal4 not installed (.ci/run installs it)')),
])
def test_results_name_the_malloc_the_process_runs_on(env, expected):
    base = {k: v for k, v in os.environ.items() if k not in ('LD_PRELOAD', 'GLIBC_TUNABLES', 'MALLOC_CONF')}
    out = subprocess.run([sys.executable, '-c', 'import benchmark; print(benchmark.memory_allocator())'],
                         env={**base, **env}, capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == expected
