"""Fashion-MNIST sweeps for docs/results.md: same-size peers, the paper's ablations, resolution transfer.

Every run is `train.py -c configs/dynamixer_xs_fashion_mnist.yaml` with a shorter, equal budget (a fixed
number of training images, so that a busy machine changes the wall time but not the result) and
one model. Ablations and peers need constructor arguments that train.py has no flag for, so each run goes
through `python scripts/sweep_fmnist.py train --model-kwargs JSON -- <train.py args>`, which runs train.py
unchanged in this process with those arguments added to its `timm.create_model` call.

    python scripts/sweep_fmnist.py list
    python scripts/sweep_fmnist.py run peers ablations --seeds 0 1   # one run after the other, seed-major
    python scripts/sweep_fmnist.py run ablations --seeds 0 --only static_xs dense_xs
    python scripts/sweep_fmnist.py run peers --budget long --seeds 0     # 120k images, full test set
    python scripts/sweep_fmnist.py run tuning --budget long --seeds 0    # the recipe's lr, batch, regularisation
    python scripts/sweep_fmnist.py run hour --budget full --seeds 42 --only hour_mixer_p4   # one hour, 2 threads
    python scripts/sweep_fmnist.py transfer runs/xs_fmnist_main/model_best.pth.tar --img-size 32 --seeds 0
    python scripts/sweep_fmnist.py collect > docs/results/sweep.csv
    python scripts/sweep_fmnist.py table dynamixer_xs static_xs dense_xs --output runs/sweep_long  # markdown rows
    python scripts/sweep_fmnist.py export runs/xs_fmnist_main/model_best.pth.tar   # -> dynamixer_xs.fmnist weights
    python scripts/sweep_fmnist.py export runs/xsc_fmnist_17ep/last.pth.tar --tag dynamixer_xs_convstem.fmnist

Resolution transfer: the 28-px checkpoint is fine-tuned at --img-size (FINETUNE budget) twice, once with its
generators resampled to the new token count (what `checkpoint_filter_fn` does on load) and once with freshly
initialised generators (every `generate` Linear / static matrix replaced by that of a new model at the new
size; all other weights loaded).

Runs land in runs/sweep/<name>-s<seed>/ (train.py's summary.csv, args.yaml, checkpoints, log) with
run.json: the command, seed, wall time, host, CPU count and load average before and after.
One compute thread per run (OMP_NUM_THREADS=1): on a shared 2-core machine that is the fast setting. The hour
group's runs take 2 (they need the machine to themselves).
"""
import argparse
import csv
import json
import os
import platform
import runpy
import signal
import subprocess
import sys
import time
from functools import partial

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join('configs', 'dynamixer_xs_fashion_mnist.yaml')

# Short budget: 4 epochs of a fixed class-balanced 4500-image subset (18k images, 140 steps of 128),
# evaluated on a fixed class-balanced 2000-image subset of the test set.
SHORT = ['--train-num-samples', '4500', '--epochs', '4', '--warmup-epochs', '1', '--val-num-samples', '2000',
         '--crop-pct', '1.0', '--checkpoint-hist', '1', '--log-interval', '1000']

# Long budget (peers): 2 epochs of the full 60k train set (120k images, 938 steps of 128), scored on the
# full 10k test set.
LONG = ['--epochs', '2', '--warmup-epochs', '1', '--crop-pct', '1.0', '--checkpoint-hist', '1', '--log-interval', '1000']
# Full budget (the hour group): the recipe's own epochs, train set and test set; only the checkpoint history is cut.
FULL = ['--checkpoint-hist', '1']
BUDGETS = {'short': SHORT, 'long': LONG, 'full': FULL}
OUTPUTS = {'short': 'sweep', 'long': 'sweep_long', 'full': 'sweep_hour'}  # default run folder per budget

# Fine-tuning budget of the resolution-transfer runs: 2 epochs of 4500 images, lower constant-ish lr.
FINETUNE = ['--train-num-samples', '4500', '--epochs', '2', '--warmup-epochs', '0', '--lr', '5e-4',
            '--val-num-samples', '2000', '--crop-pct', '1.0', '--checkpoint-hist', '1', '--log-interval', '1000']

# name: (timm model name, constructor kwargs added by this script, extra train.py args)
PEERS = {
    'dynamixer_xs': ('dynamixer_xs', {}, []),
    'dynamixer_xs_convstem': ('dynamixer_xs_convstem', {}, []),  # two 3x3 convs before the patch conv
    'static_xs': ('dynamixer_xs', {'generator': 'static'}, []),  # ViP-like: learned, input-independent mixing
    'mixer_p4': ('mixer_s16_224', {'patch_size': 4, 'embed_dim': 128, 'num_blocks': 5}, []),
    'resmlp_p4': ('resmlp_12_224', {'patch_size': 4, 'embed_dim': 96, 'num_blocks': 9}, []),
    'resnet10t_narrow': ('resnet10t', {'channels': (32, 64, 96, 176)}, []),
}
ABLATIONS = {
    'dynamixer_xs': PEERS['dynamixer_xs'],
    'static_xs': PEERS['static_xs'],
    'dense_xs': ('dynamixer_xs', {'generator': 'dense'}, []),
    'no_column': ('dynamixer_xs', {'column_mixing': False}, []),
    'no_row': ('dynamixer_xs', {'row_mixing': False}, []),
    'no_channel': ('dynamixer_xs', {'channel_mixing': False}, []),
    'no_reweight': ('dynamixer_xs', {'reweight': False}, []),
    'share_op': ('dynamixer_xs', {'share_op': True}, []),
    'one_segment': ('dynamixer_xs', {'num_heads': (1, 1, 1, 1)}, []),
    'segments_x2': ('dynamixer_xs', {'num_heads': (4, 8, 8, 8)}, []),
    'd1': ('dynamixer_xs', {'reduced_dim': 1}, []),
    'd4': ('dynamixer_xs', {'reduced_dim': 4}, []),
}
# recipe choices of configs/dynamixer_xs_convstem_fashion_mnist.yaml, at the peers' budget
RECIPE_CHOICES = {
    'dynamixer_xs_convstem': PEERS['dynamixer_xs_convstem'],
    'convstem_bf16': ('dynamixer_xs_convstem', {}, ['--amp', '--amp-dtype', 'bfloat16']),
}
# lr, batch size and regularisation of the 60-minute recipe as it read in session 6 (lr 2e-3, 20 epochs; the
# section 1e runs of docs/results.md), at the 120k-image budget: which way each should move
TUNING = {name: ('dynamixer_xs_convstem_sum', {}, extra) for name, extra in {
    'tune_base': [],
    'tune_lr4e-3': ['--lr', '4e-3'],
    'tune_lr6e-3': ['--lr', '6e-3'],
    'tune_lr8e-3': ['--lr', '8e-3'],
    'tune_b64': ['-b', '64'],
    'tune_b256_lr4e-3': ['-b', '256', '--lr', '4e-3'],
    'tune_noreg': ['--smoothing', '0', '--reprob', '0'],
    'tune_lr4e-3_noreg': ['--lr', '4e-3', '--smoothing', '0', '--reprob', '0'],
    'tune_b64_lr4e-3': ['-b', '64', '--lr', '4e-3'],  # session 15: the two best single changes together
}.items()}
# the hour (issue 5's budget): the session 6-19 recipe as written (GROUP_RECIPES), full 60k / 10k, each model with
# the epochs that fit 60 minutes of the idle 2-core machine at its own speed (2 threads; docs/results.md 1g and
# 1h). The bare --model-kwargs clears the config's own model_kwargs (fused=False, a DynaMixer argument); the
# DynaMixer rows put it back in their constructor kwargs.
HOUR = {name: (model, kwargs, ['--epochs', str(epochs), *extra, '--model-kwargs'])
        for name, (model, kwargs, epochs, *extra) in {
    'hour_dynamixer': ('dynamixer_xs_convstem_sum', {'fused': False}, 23),
    'hour_static': ('dynamixer_xs_convstem_sum', {'fused': False, 'generator': 'static'}, 23),
    'hour_mixer_p4': (*PEERS['mixer_p4'][:2], 35),
    'hour_resmlp_p4': (*PEERS['resmlp_p4'][:2], 33),
    'hour_resnet10t_narrow': (*PEERS['resnet10t_narrow'][:2], 85),
    # session 16: the tuning screen's batch 64 (with the recipe's lr 4e-3; 1e), about 8% slower per image there
    'hour_dynamixer_b64': ('dynamixer_xs_convstem_sum', {'fused': False}, 21, '-b', '64'),
}.items()}
GROUPS = {'peers': PEERS, 'ablations': ABLATIONS, 'recipe': RECIPE_CHOICES, 'tuning': TUNING, 'hour': HOUR}
# the train.py config a group's runs start from, where it is not RECIPE
# The hour group is pinned to the recipe its recorded runs used (sessions 6-19: lr 4e-3, no stochastic depth, no EMA);
# the shipped config gained stochastic depth and an EMA in session 20 (docs/results.md 1p): pass
# --recipe configs/dynamixer_xs_convstem_sum_fashion_mnist.yaml to run the peers under it.
GROUP_RECIPES = {'tuning': os.path.join('docs', 'results', 'xscs_fmnist_20ep_s0', 'config.yaml'),
                 'hour': os.path.join('docs', 'results', 'xscs_fmnist_23ep_lr4e-3', 'config.yaml')}
# compute threads per run where not 1 (OMP_NUM_THREADS in the environment overrides): the hour runs have the
# machine to themselves
GROUP_THREADS = {'hour': '2'}

# row labels of `table`, with the paper's ImageNet-1k top-1 of DynaMixer-S for the ablations (its tables 4-8)
LABELS = {
    'dynamixer_xs': ('baseline (dynamic, G = 2/4, d = 2)', '82.7'),
    'static_xs': ('generator: static', '81.5 (Synthesizer-Random)'),
    'dense_xs': ('generator: dense', '81.4 (Synthesizer-Dense)'),
    'no_column': ('without column mixing', '79.2'),
    'no_row': ('without row mixing', '79.4'),
    'no_channel': ('without channel mixing', '82.1'),
    'no_reweight': ('without reweighting (plain sum)', '81.9'),
    'share_op': ('one op shared by rows and columns', '82.2'),
    'one_segment': ('segments: 1 head everywhere', '82.2 (one segment)'),
    'segments_x2': ('segments: 2x heads (4/8; C/G = 8, 12)', '(D/S=24 best: 82.7)'),
    'd1': ('reduced dim d = 1', '82.4-82.7 (d = 1..8)'),
    'd4': ('reduced dim d = 4', '82.4-82.7 (d = 1..8)'),
    'dynamixer_xs_convstem': ('DynaMixer, conv stem (dynamixer_xs_convstem)', ''),
    'convstem_bf16': ('DynaMixer, conv stem, bf16 autocast', ''),
    'mixer_p4': ('MLP-Mixer, patch 4', ''),
    'resmlp_p4': ('ResMLP, patch 4', ''),
    'resnet10t_narrow': ('small CNN: ResNet-10-T, narrow', ''),
}


def _patched_create_model(create_model, extra):
    """timm.create_model with `extra` added; timm's Mixer/ResMLP entrypoints fix patch_size and width,
    so for those the MlpMixer class is built through timm's own factory with the same cfg."""
    def fn(name, pretrained=False, **kwargs):
        kwargs = dict(kwargs, **extra)
        if name in ('mixer_s16_224', 'resmlp_12_224') and 'patch_size' in extra:
            from timm.models import build_model_with_cfg
            from timm.models.mlp_mixer import Affine, MlpMixer, ResBlock, checkpoint_filter_fn
            if name.startswith('resmlp'):
                kwargs = dict(dict(mlp_ratio=4, block_layer=partial(ResBlock, init_values=0.1), norm_layer=Affine,
                                   stem_norm=False), **kwargs)
            return build_model_with_cfg(MlpMixer, name, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                                        **kwargs)
        if name.startswith('resnet'):
            kwargs.pop('img_size', None)  # CNNs take any input size
        return create_model(name, pretrained=pretrained, **kwargs)
    return fn


def train_in_process(model_kwargs, train_args):
    """Run train.py with `train_args`, its timm.create_model call receiving `model_kwargs` as well."""
    import timm
    import dynamixer  # noqa: F401  registers dynamixer_*
    extra = {k: tuple(v) if isinstance(v, list) else v for k, v in model_kwargs.items()}
    timm.create_model = _patched_create_model(timm.create_model, extra)
    sys.argv = ['train.py'] + train_args
    sys.path.insert(0, ROOT)
    runpy.run_path(os.path.join(ROOT, 'train.py'), run_name='__main__')


def _cpu_capability() -> str:
    """torch's CPU kernel level (AVX2 / AVX512 / ...): bf16 autocast is fast only with AVX-512."""
    import torch  # imported where needed, as in the rest of this script
    return torch.backends.cpu.get_cpu_capability()


def call_child(cmd, **kwargs):
    """subprocess.call that takes its child down with it: when the sweep is interrupted (Ctrl-C) or terminated
    (kill, a job scheduler), the training run it started gets SIGTERM too instead of training on as an orphan
    beside whatever runs next. The run keeps its checkpoints, and `run` resumes it from the last one."""
    proc = subprocess.Popen(cmd, **kwargs)

    def terminated(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        return proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_one(name, spec, seed, out_dir, budget, recipe=RECIPE, threads='1'):
    model, kwargs, extra = spec
    exp = f'{name}-s{seed}'
    if os.path.exists(os.path.join(out_dir, exp, 'run.json')):
        print(f'skip {exp}: done', flush=True)
        return
    train_args = ['-c', recipe, '--model', model, '--seed', str(seed), '--output', out_dir, '--experiment', exp,
                  '--resume', 'auto'] + budget + extra
    cmd = [sys.executable, os.path.relpath(__file__, ROOT), 'train', '--model-kwargs', json.dumps(kwargs), '--'] + train_args
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', threads))
    os.makedirs(os.path.join(out_dir, exp), exist_ok=True)
    load0, t0 = os.getloadavg(), time.time()
    print(f'start {exp} at {time.strftime("%H:%M:%S", time.gmtime())} UTC', flush=True)
    with open(os.path.join(out_dir, exp, 'log.txt'), 'a') as log:
        rc = call_child(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.time() - t0
    info = dict(name=name, seed=seed, model=model, model_kwargs=kwargs, command=' '.join(cmd), rc=rc,
                wall_s=round(wall, 1), host=platform.node(), cpus=os.cpu_count(),
                cpu_capability=_cpu_capability(), threads=env['OMP_NUM_THREADS'],
                loadavg_start=load0, loadavg_end=os.getloadavg(),
                finished_utc=time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()))
    if rc == 0:
        with open(os.path.join(out_dir, exp, 'run.json'), 'w') as f:
            json.dump(info, f, indent=1)
    print(f'end {exp}: rc {rc}, {wall:.0f} s', flush=True)


def transfer_checkpoints(source, img_size, out_dir):
    """Write the two starting points of the transfer runs; returns {name: path}."""
    import torch
    import timm
    import dynamixer  # noqa: F401
    ckpt = torch.load(source, map_location='cpu', weights_only=False)
    state = ckpt.get('state_dict_ema') or ckpt.get('state_dict') or ckpt
    torch.manual_seed(0)
    fresh = timm.create_model('dynamixer_xs', img_size=img_size, in_chans=1, num_classes=10).state_dict()
    fresh_gen = dict(state)
    for k, v in fresh.items():
        if '.generate.' in k or k.endswith('static_logits'):
            fresh_gen[k] = v  # already the new size: loaded as is, not resampled
    os.makedirs(out_dir, exist_ok=True)
    paths = {'resampled': os.path.join(out_dir, 'start_resampled.pth'),
             'fresh_generator': os.path.join(out_dir, f'start_fresh_generator_{img_size}.pth')}
    torch.save({'state_dict': state}, paths['resampled'])  # resampled by checkpoint_filter_fn on load
    torch.save({'state_dict': fresh_gen}, paths['fresh_generator'])
    return paths


def weights_file(tag):
    """The packaged weights file of a pretrained tag, as its cfg in dynamixer/model.py names it."""
    import timm
    import dynamixer  # noqa: F401  registers the tags
    return timm.models.get_pretrained_cfg(tag).file


def export(source, tag, out=None):
    """Save a checkpoint's weights as the packaged safetensors file of `tag` and print its top-1 on the
    1000-image class-balanced test subset, loaded back through timm.create_model(tag, pretrained=True)."""
    import safetensors.torch
    import timm
    import torch
    from timm.data import create_transform, resolve_data_config
    import dynamixer  # noqa: F401
    from dynamixer.data import FashionMNIST
    out = out or weights_file(tag)
    ckpt = torch.load(source, map_location='cpu', weights_only=False)
    state = ckpt.get('state_dict_ema') or ckpt.get('state_dict') or ckpt
    state = {k[7:] if k.startswith('module.') else k: v.contiguous() for k, v in state.items()}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    safetensors.torch.save_file(state, out, metadata={'source': os.path.basename(source), 'epoch': str(ckpt.get('epoch'))})
    model = timm.create_model(tag, pretrained=True, pretrained_cfg_overlay=dict(file=out)).eval()
    data = FashionMNIST(split='test', num_samples=1000, transform=create_transform(**resolve_data_config(model=model)))
    x = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(-1) for b in x.split(250)])
    top1 = 100. * (pred == torch.tensor(data.targets)).float().mean().item()
    print(f'wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB); top-1 on the 1000-image test subset: {top1:.2f}')


def zero_shot(path, img_size, num_samples=2000):
    """Top-1 of a dynamixer_xs checkpoint at img_size, loaded (and resampled) as train.py does, without
    training, on the fixed class-balanced test subset resized to img_size."""
    import timm
    import torch
    from timm.data import create_transform
    from dynamixer.data import FashionMNIST
    model = timm.create_model('dynamixer_xs', pretrained=True, img_size=img_size, in_chans=1, num_classes=10,
                              pretrained_cfg_overlay=dict(file=path, num_classes=10)).eval()
    transform = create_transform(input_size=(1, img_size, img_size), mean=(0.2860,), std=(0.3530,), crop_pct=1.0,
                                 interpolation='bicubic')
    data = FashionMNIST(split='test', num_samples=num_samples, transform=transform)
    x = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(-1) for b in x.split(500)])
    return round(100. * (pred == torch.tensor(data.targets)).float().mean().item(), 2)


def finished_runs(out_dir):
    """(run.json contents, summary.csv rows, params in M as logged) of every finished run in out_dir, by name."""
    for exp in sorted(os.listdir(out_dir)):
        path = os.path.join(out_dir, exp)
        if os.path.exists(os.path.join(path, 'run.json')):
            info = json.load(open(os.path.join(path, 'run.json')))
            rows = list(csv.DictReader(open(os.path.join(path, 'summary.csv'))))
            yield info, rows, _params(path)


def collect(out_dir):
    """One CSV row per finished run: final and best top-1 on the eval subset, params, wall time."""
    w = csv.writer(sys.stdout)
    w.writerow(['name', 'seed', 'model', 'model_kwargs', 'params_M', 'final_top1', 'best_top1', 'final_eval_loss',
                'epochs', 'wall_s', 'loadavg_start_1m', 'finished_utc'])
    for info, rows, params in finished_runs(out_dir):
        w.writerow([info['name'], info['seed'], info['model'], json.dumps(info['model_kwargs']), params,
                    rows[-1]['eval_top1'], max(float(r['eval_top1']) for r in rows), rows[-1]['eval_loss'],
                    len(rows), info['wall_s'], info['loadavg_start'][0], info['finished_utc']])


def table(out_dir, names):
    """Markdown rows for docs/results.md: per name, the top-1 after the first epoch per seed, the final top-1
    as mean +- half the range over seeds, each seed, the wall time of each run, and the paper's number."""
    runs = {}
    for info, rows, params in finished_runs(out_dir):
        runs.setdefault(info['name'], []).append((info['seed'], rows, info['wall_s'], params))
    print('| ablation | params | top-1 after epoch 1 | top-1 at the end (mean ± half-range) | per seed | wall s | paper, ImageNet (DynaMixer-S) |')
    print('|---|---|---|---|---|---|---|')
    for name in names or list(runs):
        if name not in runs:
            print(f'| {LABELS.get(name, (name,))[0]} | not run | | | | | |')
            continue
        seeds = sorted(runs[name], key=lambda r: r[0])
        final = [float(rows[-1]['eval_top1']) for _, rows, _, _ in seeds]
        mean, half = sum(final) / len(final), (max(final) - min(final)) / 2
        label, paper = LABELS.get(name, (name, ''))
        print(f'| {label} | {seeds[0][3]}M | ' + ', '.join(f"{float(rows[0]['eval_top1']):.2f}" for _, rows, _, _ in seeds)
              + f' | **{mean:.2f} ± {half:.2f}** | ' + ', '.join(f's{s}: {v:.2f}' for (s, *_), v in zip(seeds, final))
              + ' | ' + ', '.join(f'{w:.0f}' for _, _, w, _ in seeds) + f' | {paper} |')


def _params(run_dir):
    """Params in M as train.py logged them; '?' where the log was not kept (docs/results/ keeps no logs)."""
    log = os.path.join(run_dir, 'log.txt')
    if not os.path.exists(log):
        return '?'
    for line in open(log).read().splitlines():
        if ' parameters' in line and line.startswith('Model '):
            return line.split(': ')[1].split('M')[0]
    return '?'


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    sub.add_parser('list')
    r = sub.add_parser('run')
    r.add_argument('groups', nargs='+', choices=sorted(GROUPS), help='groups, run in this order for each seed')
    r.add_argument('--seeds', type=int, nargs='+', default=[0])
    r.add_argument('--only', nargs='+', default=None, help='run only these names of the group')
    r.add_argument('--budget', default='short', choices=sorted(BUDGETS),
                   help='short: 18k images, 2000 test images; long: 120k images, the full 10k test set; '
                        'full: the recipe\'s own epochs on the full sets (the hour group)')
    r.add_argument('--output', default=None,
                   help='default: runs/sweep (short), runs/sweep_long (long), runs/sweep_hour (full)')
    r.add_argument('--recipe', default=None, help=f'train.py config the budget and run arguments apply to '
                                                   f'(default: the group\'s, {GROUP_RECIPES}, else {RECIPE})')
    tr = sub.add_parser('transfer', help='fine-tune a 28-px checkpoint at another size, two generator inits')
    tr.add_argument('source', help='train.py checkpoint of dynamixer_xs at 28 px')
    tr.add_argument('--img-size', type=int, default=32)
    tr.add_argument('--seeds', type=int, nargs='+', default=[0])
    tr.add_argument('--output', default=os.path.join('runs', 'sweep'))
    e = sub.add_parser('export', help='checkpoint -> the packaged weights of a pretrained tag')
    e.add_argument('source')
    e.add_argument('--tag', default='dynamixer_xs.fmnist', help='pretrained tag (model.tag) the weights are for')
    e.add_argument('-o', '--out', default=None, help='default: dynamixer/weights/<tag, . -> _>.safetensors')
    c = sub.add_parser('collect')
    c.add_argument('--output', default=os.path.join('runs', 'sweep'))
    tb = sub.add_parser('table', help='markdown rows of finished runs (mean and half-range over seeds)')
    tb.add_argument('names', nargs='*', help='rows in this order (default: every finished name)')
    tb.add_argument('--output', default=os.path.join('runs', 'sweep_long'))
    t = sub.add_parser('train', help='internal: train.py with extra model kwargs')
    t.add_argument('--model-kwargs', default='{}')
    t.add_argument('train_args', nargs=argparse.REMAINDER)
    args = p.parse_args()
    if args.cmd == 'list':
        for g, runs in GROUPS.items():
            for name, (model, kwargs, extra) in runs.items():
                print(f'{g:10s} {name:18s} {model:16s} {json.dumps(kwargs)} {" ".join(extra)}')
    elif args.cmd == 'run':
        out = args.output or os.path.join('runs', OUTPUTS[args.budget])
        for seed in args.seeds:  # seed-major: a first seed of everything before a second one
            for group in args.groups:
                runs = GROUPS[group]
                for name in args.only or list(runs):
                    if name in runs:
                        run_one(name, runs[name], seed, out, BUDGETS[args.budget],
                                args.recipe or GROUP_RECIPES.get(group, RECIPE), GROUP_THREADS.get(group, '1'))
    elif args.cmd == 'transfer':
        paths = transfer_checkpoints(args.source, args.img_size, os.path.join(args.output, 'transfer_start'))
        scores = {'source_at_28': zero_shot(paths['resampled'], 28)}
        scores.update({f'{init}_at_{args.img_size}': zero_shot(path, args.img_size) for init, path in paths.items()})
        with open(os.path.join(args.output, f'transfer{args.img_size}_before_finetuning.json'), 'w') as f:
            json.dump(dict(source=args.source, test_images=2000, top1=scores), f, indent=1)
        print(f'before fine-tuning: {scores}', flush=True)
        for seed in args.seeds:
            for init, path in paths.items():
                spec = ('dynamixer_xs', {}, ['--img-size', str(args.img_size), '--pretrained', '--pretrained-path', path])
                run_one(f'transfer{args.img_size}_{init}', spec, seed, args.output, FINETUNE)
    elif args.cmd == 'export':
        export(args.source, args.tag, args.out)
    elif args.cmd == 'collect':
        collect(args.output)
    elif args.cmd == 'table':
        table(args.output, args.names)
    else:
        train_args = args.train_args[1:] if args.train_args[:1] == ['--'] else args.train_args
        train_in_process(json.loads(args.model_kwargs), train_args)


if __name__ == '__main__':
    main()
