"""Where the cold regional-compile warm-up of dynamixer_s goes, one fresh process and inductor cache per line.

    OMP_NUM_THREADS=2 python docs/bench/avx2/compile_breakdown.py > docs/bench/avx2/compile_breakdown.txt

Each line compiles `compile_layers(model, fused=False)` (the documented setting) from an empty
TORCHINDUCTOR_CACHE_DIR and times the first call: an inference forward (batch 8, 224 px, no_grad) or a training
step (forward, backward, AdamW). The phases are torch's own timers (`torch._dynamo.utils.compilation_time_metrics`,
what `compile_times()` prints), summed
over the graphs compiled: dynamo's bytecode tracing, AOTAutograd, inductor's lowering and code generation, and
the wait for the C++ kernels that inductor's worker pool compiles (`compile_threads`, 2 on 2 cores). `kernels`
counts the C++ sources inductor wrote. `dynamic=True` is the one-graph-for-both-layer-shapes idea, measured.
"""
import glob
import os
import subprocess
import sys
import tempfile
import time

PHASES = ['bytecode_tracing', 'create_aot_dispatcher_function', 'GraphLowering.run', 'GraphLowering.codegen',
          'async_compile.wait']


def compiled_step(bench: str, **compile_kwargs):
    """dynamixer_s (batch 8, 224 px, 2 threads) with `compile_layers(model, fused=False, **compile_kwargs)`, and a
    function running one inference forward (no_grad) or one training step (forward, backward, AdamW)."""
    import torch
    import timm
    import dynamixer  # noqa: F401 (registers the models)
    from dynamixer.ops import compile_layers
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = timm.create_model('dynamixer_s')
    compile_layers(model, fused=False, **compile_kwargs)
    x = torch.randn(8, 3, 224, 224)
    opt = torch.optim.AdamW(model.parameters())

    def step():
        if bench == 'inference':
            with torch.no_grad():
                model(x)
        else:
            model(x).logsumexp(-1).mean().backward()
            opt.step()
            opt.zero_grad()

    model.train(bench == 'train')
    return step


def child(bench: str, dynamic: bool) -> None:
    from torch._dynamo.utils import compilation_time_metrics as times
    step = compiled_step(bench, **({'dynamic': True} if dynamic else {}))
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    step()
    second = time.perf_counter() - t0
    graphs = len(times.get('_compile.compile_inner', []))
    phases = ' '.join(f'{sum(times.get(k, [0.0])):7.1f}' for k in PHASES)
    kernels = len(glob.glob(os.path.join(os.environ['TORCHINDUCTOR_CACHE_DIR'], '**', '*.cpp'), recursive=True))
    print(f'{bench:9s} {"dynamic=True" if dynamic else "static":12s} {first:7.1f} {second:6.2f} {graphs:6d} '
          f'{kernels:7d} {phases}', flush=True)


def main() -> None:
    if len(sys.argv) == 3:
        return child(sys.argv[1], sys.argv[2] == 'dynamic')
    import torch
    print(f'# torch {torch.__version__}, {os.cpu_count()} CPUs, {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}')
    print('# bench     shapes       first_s second_s graphs kernels ' + ' '.join(PHASES))
    for bench, shapes in [('inference', 'static'), ('train', 'static'), ('inference', 'dynamic')]:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=tempfile.mkdtemp())
        subprocess.run([sys.executable, __file__, bench, shapes], env=env, check=True, stderr=subprocess.DEVNULL)


if __name__ == '__main__':
    main()
