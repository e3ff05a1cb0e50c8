"""train.py end to end on tiny generated image folders (CPU, dynamixer_xs), plus its flag and config parsing."""
import csv
import glob
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from conftest import REPO, cpu_env, run_train
from dynamixer.checkpoint import load_checkpoint_file

REFERENCE_FLAGS = ('-b 256 -j 8 --opt adamw --epochs 300 --sched cosine --apex-amp --img-size 224 --drop-path 0.1 '
                   '--lr 2e-3 --weight-decay 0.05 --remode pixel --reprob 0.25 --aa rand-m9-mstd0.5-inc1 '
                   '--smoothing 0.1 --mixup 0.8 --cutmix 1.0 --warmup-lr 1e-6 --warmup-epochs 20').split()

# a quick recipe for dynamixer_xs on the 32 px test images: 8 optimizer steps per epoch
QUICK = ['--model', 'dynamixer_xs', '--img-size', '32', '-b', '3', '-j', '0', '--opt', 'adamw', '--lr', '1e-3',
         '--warmup-epochs', '0', '--log-interval', '100']


def _train_module():
    spec = importlib.util.spec_from_file_location('train_script', os.path.join(REPO, 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(path):
    with open(os.path.join(path, 'summary.csv'), newline='') as f:
        return list(csv.DictReader(f))


def _assert_clean_error(result, *fragments):
    """One `error: ...` line on stderr, exit status 2, no traceback."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: '), last
    for fragment in fragments:
        assert fragment in last, last


def run_in_process(args, capsys):
    """train.py's command-line entry in this process (no interpreter start-up): a CompletedProcess look-alike."""
    import logging
    train = _train_module()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    code = 0  # a finished run returns; an error exits
    try:
        train._run([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    finally:  # train.py logs to the stream capsys gives this test only: drop its handler afterwards
        root.handlers[:], root.level = handlers, level
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


# --- flags and configs (in-process, fast) ------------------------------------------------------------------

def test_config_file_sets_defaults_and_command_line_overrides(tmp_path):
    train = _train_module()
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('model: dynamixer_xs\nlr: 0.5\ndrop_path: 0.2\n')
    args, text = train._parse_args(['-c', str(cfg), '/data', '--lr', '0.25'])
    assert (args.model, args.lr, args.drop_path, args.data) == ('dynamixer_xs', 0.25, 0.2, '/data')
    assert yaml.safe_load(text)['lr'] == 0.25


def test_unknown_yaml_key_is_an_error_naming_it(tmp_path):
    train = _train_module()
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('model: dynamixer_xs\nlearning_rate: 0.1\ndrop_pth: 0.1\n')
    with pytest.raises(train.ConfigError, match='unknown keys drop_pth, learning_rate'):
        train._parse_args(['-c', str(cfg)])


@pytest.mark.parametrize('name, batch, drop_path', [('s', 256, 0.1), ('m', 128, 0.1), ('l', 64, 0.3)])
def test_in1k_configs_hold_the_paper_recipe(name, batch, drop_path):
    train = _train_module()
    args, _ = train._parse_args(['-c', os.path.join(REPO, 'configs', f'dynamixer_{name}_in1k.yaml')])
    assert (args.model, args.batch_size, args.drop_path) == (f'dynamixer_{name}', batch, drop_path)
    assert (args.opt, args.lr, args.weight_decay, args.sched, args.epochs) == ('adamw', 2e-3, 0.05, 'cosine', 300)
    assert (args.warmup_epochs, args.warmup_lr, args.aa) == (20, 1e-6, 'rand-m9-mstd0.5-inc1')
    assert (args.reprob, args.remode, args.mixup, args.cutmix, args.smoothing) == (0.25, 'pixel', 0.8, 1.0, 0.1)


def test_fashion_mnist_hour_config_holds_the_shipped_recipe_and_the_peers_keep_theirs():
    # docs/results.md 1p: stochastic depth 0.1 and a warmed-up weight EMA on top of the session 6-19 recipe
    train = _train_module()
    args, _ = train._parse_args(['-c', os.path.join(REPO, 'configs', 'dynamixer_xs_convstem_sum_fashion_mnist.yaml')])
    assert (args.model, args.batch_size, args.lr, args.epochs, args.amp_dtype) == (
        'dynamixer_xs_convstem_sum', 128, 4e-3, 31, 'bfloat16')
    assert (args.drop_path, args.model_ema, args.model_ema_decay, args.model_ema_warmup) == (0.1, True, 0.9995, True)
    assert (args.dataset, args.val_split, args.img_size, args.in_chans, args.num_classes) == (
        'fashion_mnist', 'test', 28, 1, 10)
    old, _ = train._parse_args(['-c', os.path.join(REPO, 'docs', 'results', 'xscs_fmnist_23ep_lr4e-3', 'config.yaml')])
    assert (old.drop_path, old.model_ema, old.epochs, old.lr) == (None, False, 23, 4e-3)


def test_fashion_mnist_dw_config_is_the_hour_recipe_with_the_conv_38_epochs_no_erasing_and_the_flip_tta():
    # docs/results.md 1y, 1aa: the only differences from the shipped hour config are the model, the epochs, no
    # random erasing, and the final flip-TTA evaluation
    train = _train_module()
    cfgs = [os.path.join(REPO, 'configs', f'dynamixer_xs_convstem_sum{v}_fashion_mnist.yaml') for v in ('', '_dw')]
    base, dw = (vars(train._parse_args(['-c', c])[0]) for c in cfgs)
    assert (dw['model'], dw['epochs'], dw['reprob'], dw['final_tta_hflip']) == ('dynamixer_xs_convstem_sum_dw', 38,
                                                                                0, True)
    assert (base['reprob'], base['final_tta_hflip']) == (0.1, False)
    assert {k for k in base if base[k] != dw[k]} == {'config', 'model', 'epochs', 'reprob', 'final_tta_hflip'}


def test_a_second_parse_in_the_same_process_does_not_inherit_the_first_configs_values(tmp_path):
    # the config's keys used to stay on the module-level parser as defaults for every later parse
    train = _train_module()
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('# a config\nmodel: dynamixer_xs\ndrop_path: 0.3\nmodel_ema: true\nmin_lr: 1e-5\n')
    first, _ = train._parse_args(['-c', str(cfg)])
    assert (first.model, first.drop_path, first.model_ema, first.min_lr) == ('dynamixer_xs', 0.3, True, 1e-5)
    plain, _ = train._parse_args(['/data'])
    defaults = train.parser.parse_args([])
    assert (plain.model, plain.drop_path, plain.model_ema, plain.min_lr) == (
        defaults.model, None, False, defaults.min_lr)


def test_every_config_parses_and_starts_with_a_comment():
    train = _train_module()
    paths = sorted(glob.glob(os.path.join(REPO, 'configs', '*.yaml')))
    assert len(paths) >= 6
    for path in paths:
        with open(path) as f:
            assert f.readline().startswith('# '), path
        train._parse_args(['-c', path])


@pytest.mark.parametrize('model, batch, drop_path', [('dynamixer_s', '256', '0.1'), ('dynamixer_m', '128', '0.1'),
                                                     ('dynamixer_l', '64', '0.3')])
def test_reference_readme_command_parses_with_apex_falling_back_to_native_amp(model, batch, drop_path):
    train = _train_module()
    flags = ['/imagenet', '--model', model] + REFERENCE_FLAGS
    flags[flags.index('-b') + 1], flags[flags.index('--drop-path') + 1] = batch, drop_path
    args = train._resolve_args(train._parse_args(flags)[0])
    assert args.amp and args.apex_amp and args.data_dir == '/imagenet'
    assert (args.batch_size, args.drop_path, args.lr, args.workers) == (int(batch), float(drop_path), 2e-3, 8)


@pytest.mark.parametrize('flags, message', [
    (['--compile-memory-budget', '0.4'], 'add --torchcompile'),
    (['--torchcompile', '--compile-memory-budget', '1.5'], r'must be in \(0, 1\], got 1.5'),
])
def test_compile_memory_budget_needs_torchcompile_and_a_fraction(flags, message):
    train = _train_module()
    with pytest.raises(train.ConfigError, match=message):
        train._resolve_args(train._parse_args(['/data'] + flags)[0])


@pytest.mark.parametrize('flags, message', [
    (['--color-jitter', '0.4'], '--in-memory augments with crops, flips, random erasing and mixup only: set '
                                '--color-jitter 0'),
    (['--color-jitter', '0', '--aa', 'rand-m9-mstd0.5-inc1'], 'set no --aa'),
])
def test_in_memory_refuses_the_augmentations_it_does_not_have(flags, message):
    train = _train_module()
    with pytest.raises(train.ConfigError, match=re.escape(message)):
        train._resolve_args(train._parse_args(['/data', '--in-memory'] + flags)[0])


# --- bad inputs: one clear line, exit 2, no traceback (subprocess) ------------------------------------------

def test_missing_data_dir_is_one_clear_error(tmp_path):
    _assert_clean_error(run_train([tmp_path / 'nope'] + QUICK + ['--output', tmp_path]), str(tmp_path / 'nope'))


def test_empty_data_dir_is_one_clear_error(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    result = run_in_process([tmp_path / 'empty'] + QUICK + ['--output', tmp_path], capsys)
    _assert_clean_error(result, str(tmp_path / 'empty'))


def test_unknown_model_is_one_clear_error(tmp_path, image_folder, capsys):
    result = run_in_process([image_folder, '--model', 'dynamixer_xxl', '--output', tmp_path], capsys)
    _assert_clean_error(result, "unknown model 'dynamixer_xxl'", 'dynamixer_s')


def test_unknown_yaml_key_from_the_command_line_is_one_clear_error(tmp_path, image_folder, capsys):
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('lr: 0.1\nwarmup: 3\n')
    _assert_clean_error(run_in_process([image_folder, '-c', cfg], capsys), 'unknown keys warmup')


def test_initial_checkpoint_with_other_class_count_says_use_pretrained_path(tmp_path, image_folder, capsys):
    import timm
    import dynamixer  # noqa: F401
    ckpt = tmp_path / 'ten_classes.pth'
    torch.save({'state_dict': timm.create_model('dynamixer_xs', img_size=32, num_classes=10).state_dict()}, ckpt)
    result = run_in_process([image_folder] + QUICK + ['--initial-checkpoint', ckpt, '--output', tmp_path], capsys)
    _assert_clean_error(result, 'has 10 classes but the model has 3', '--pretrained-path')


def test_corrupt_resume_checkpoint_is_one_clear_error(tmp_path, image_folder, capsys):
    bad = tmp_path / 'last.pth.tar'
    bad.write_bytes(b'PK\x03\x04 not really a checkpoint')
    result = run_in_process([image_folder] + QUICK + ['--resume', bad, '--output', tmp_path], capsys)
    _assert_clean_error(result, str(bad), 'truncated or corrupt')


@pytest.mark.parametrize('force', [False, True])
def test_amp_on_a_cpu_without_avx512_trains_in_fp32_unless_forced(tmp_path, image_folder, capsys, monkeypatch, force):
    # an AVX2-only CPU: a bf16 matmul there ran 135x slower than fp32 (docs/bench/cpu_bf16_avx2.txt)
    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: dict(avx2=True, avx512_f=False, avx512_bf16=False))
    flags = ['--amp', '--amp-dtype', 'bfloat16', '--epochs', '1', '--output', tmp_path] + (['--force-amp'] if force else [])
    result = run_in_process([image_folder] + QUICK + flags, capsys)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ('autocast is off and this run is in fp32' in result.stderr) is not force
    assert ('Mixed precision: torch.autocast(cpu, torch.bfloat16)' in result.stderr) is force
    assert len(_summary(glob.glob(str(tmp_path / '*'))[0])) == 1


def test_cpu_run_logs_its_capability_threads_and_malloc(tmp_path, image_folder, capsys):
    from dynamixer.engine import memory_allocator
    result = run_in_process([image_folder] + QUICK + ['--epochs', '1', '--output', tmp_path], capsys)
    assert result.returncode == 0, result.stderr[-2000:]
    line = f'CPU: {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, malloc {memory_allocator()}'
    assert line in result.stderr
    # on plain glibc the line says what to try
    assert ('tcmalloc (LD_PRELOAD) or higher GLIBC_TUNABLES' in result.stderr) is (memory_allocator() == 'glibc')


def test_diverging_run_stops_with_one_line_naming_step_epoch_and_lr(tmp_path, image_folder):
    result = run_train([image_folder] + QUICK + ['--opt', 'sgd', '--lr', '1e30', '--output', tmp_path])
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: loss is nan at step ') and 'of epoch 0 (lr 1e+30)' in last and '--clip-grad' in last


# --- training runs (subprocess) ----------------------------------------------------------------------------

def test_resume_continues_at_the_next_epoch_and_summary_has_each_epoch_once(tmp_path, image_folder):
    out = tmp_path / 'runs'
    recipe = [image_folder] + QUICK + ['--epochs', '3', '--output', out, '--experiment', 'r', '--seed', '5']
    first = run_train(recipe)
    assert first.returncode == 0, first.stderr[-3000:]
    run = out / 'r'
    uninterrupted = _summary(run)
    # as if the run had stopped after writing epoch 1's and 2's summary rows but before their checkpoints
    os.replace(run / 'checkpoint-0.pth.tar', tmp_path / 'epoch0.pth.tar')
    assert load_checkpoint_file(tmp_path / 'epoch0.pth.tar')['epoch'] == 0
    second = run_train(recipe + ['--resume', tmp_path / 'epoch0.pth.tar'])
    assert second.returncode == 0, second.stderr[-3000:]
    assert 'starting epoch 1' in second.stderr and 'Final top-1' in second.stdout
    assert sorted(os.listdir(out)) == ['r']  # continued in the run's folder
    resumed = _summary(run)
    assert [r['epoch'] for r in resumed] == ['0', '1', '2']
    for row_expected, row_got in zip(uninterrupted, resumed):  # an epoch-boundary resume repeats the run exactly
        for key, value in row_expected.items():
            assert float(row_got[key]) == pytest.approx(float(value), rel=1e-6), key
    assert load_checkpoint_file(run / 'last.pth.tar')['epoch'] == 2


def test_final_tta_hflip_reports_what_validate_py_gives_for_the_last_weights_and_their_ema(tmp_path, image_folder):
    result = run_train([image_folder] + QUICK + ['--epochs', '1', '--model-ema', '--model-ema-decay', '0.5',
                                                 '--final-tta-hflip', '--output', tmp_path, '--experiment', 't'])
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads((tmp_path / 't' / 'final_tta_hflip.json').read_text())
    assert (final['epoch'], final['tta'], final['precision']) == (0, 'hflip', 'float32')
    assert re.search(rf"\*\*\* Final top-1 with flip TTA \(fp32\): {final['top1']:.2f} \(EMA {final['ema_top1']:.2f}\)",
                     result.stdout), result.stdout
    for prefix, flags in (('', []), ('ema_', ['--use-ema'])):
        proc = subprocess.run(
            [sys.executable, 'validate.py', str(image_folder), '--model', 'dynamixer_xs', '--img-size', '32',
             '--checkpoint', str(tmp_path / 't' / 'last.pth.tar'), '--tta-hflip', '-j', '0',
             '--results-file', str(tmp_path / f'{prefix}v.json')] + flags,
            cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        validated = json.loads((tmp_path / f'{prefix}v.json').read_text())
        # validate.py rounds loss to 6 and top-1 to 4 decimals; one image of the 12 is 8.3 points of top-1
        assert final[prefix + 'loss'] == pytest.approx(validated['loss'], abs=2e-6)
        assert final[prefix + 'top1'] == pytest.approx(validated['top1'], abs=1e-3)
    assert final['loss'] != pytest.approx(final['ema_loss'], rel=1e-4)  # two different sets of weights


def test_new_run_never_overwrites_an_existing_experiment(tmp_path, image_folder):
    out = tmp_path / 'runs'
    args = [image_folder] + QUICK + ['--epochs', '1', '--output', out, '--experiment', 'exp']
    assert run_train(args).returncode == 0
    before = {p: os.stat(p).st_mtime_ns for p in glob.glob(str(out / 'exp' / '*'))}
    result = run_train(args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p: os.stat(p).st_mtime_ns for p in glob.glob(str(out / 'exp' / '*'))} == before
    assert sorted(os.listdir(out / 'exp-1')) == sorted(os.listdir(out / 'exp'))


def test_finetune_to_other_class_count_and_img_size_with_pretrained_path(tmp_path, image_folder, fresh_image_folder):
    out = tmp_path / 'runs'
    src = run_train([image_folder] + QUICK + ['--epochs', '1', '--output', out, '--experiment', 'src'])
    assert src.returncode == 0, src.stderr[-3000:]
    five_classes = fresh_image_folder(num_classes=5, per_class=(3, 2), size=28)
    pretrained = out / 'src' / 'last.pth.tar'
    quick_28 = [a if a != '32' else '28' for a in QUICK]
    result = run_train([five_classes] + quick_28 + ['--epochs', '1', '--lr', '1e-9', '--output', out,
                                                    '--experiment', 'ft', '--pretrained-path', pretrained])
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'classifier re-initialised for 5 classes' in result.stderr
    src_sd = load_checkpoint_file(pretrained)['state_dict']
    ft_sd = load_checkpoint_file(out / 'ft' / 'last.pth.tar')['state_dict']
    assert ft_sd['head.weight'].shape[0] == 5 and src_sd['head.weight'].shape[0] == 3
    # the backbone starts from the pretrained weights (lr 1e-9: still equal after one epoch)
    torch.testing.assert_close(ft_sd['stem.proj.weight'], src_sd['stem.proj.weight'], rtol=0, atol=1e-6)


@pytest.mark.parametrize('loader_flags', [['--aa', 'rand-m9-mstd0.5-inc1'], ['--in-memory', '--color-jitter', '0']],
                         ids=['dataloader', 'in_memory'])
def test_train_resumes_after_kill_with_identical_metrics(tmp_path, image_folder, loader_flags):
    """SIGKILL in the middle of epoch 1, then --resume auto: summary.csv equals the uninterrupted run's
    (tolerance: relative 1e-6; on one machine with the same thread count it is bit-identical)."""
    out = tmp_path / 'runs'
    recipe = [image_folder] + QUICK + ['--epochs', '3', '--output', out, '--seed', '7', '--recovery-interval', '2',
                                       '--mixup', '0.8', '--cutmix', '1.0', '--reprob', '0.25', '--drop-path', '0.1',
                                       '--model-ema', '--model-ema-decay', '0.9', '-b', '2'] + loader_flags
    full = run_train(recipe + ['--experiment', 'full'])
    assert full.returncode == 0, full.stderr[-3000:]

    cmd = [sys.executable, os.path.join(REPO, 'train.py')] + [str(a) for a in recipe + ['--experiment', 'killed']]
    proc = subprocess.Popen(cmd, cwd=REPO, env=cpu_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not glob.glob(str(out / 'killed' / 'recovery-1-*.pth.tar')) and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert [r['epoch'] for r in _summary(out / 'killed')] == ['0']

    resumed = run_train(recipe + ['--experiment', 'killed', '--resume', 'auto'])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'starting epoch 1 at step' in resumed.stderr
    expected, got = _summary(out / 'full'), _summary(out / 'killed')
    assert [r['epoch'] for r in got] == ['0', '1', '2']
    for row_expected, row_got in zip(expected, got):
        for key, value in row_expected.items():
            assert float(row_got[key]) == pytest.approx(float(value), rel=1e-6), key
    assert not glob.glob(str(out / 'killed' / 'recovery-*'))  # superseded by the epoch checkpoints


def test_sigterm_saves_a_recovery_checkpoint_and_the_resumed_run_matches(tmp_path, image_folder):
    """SIGTERM (preemption, `kill`) in epoch 1: the step ends, a recovery checkpoint is saved, train.py exits 143
    with the resume command, and that command finishes with the uninterrupted run's summary.csv."""
    out = tmp_path / 'runs'
    recipe = [image_folder] + QUICK + ['--epochs', '3', '--output', out, '--seed', '7', '-b', '2', '--in-memory',
                                       '--color-jitter', '0', '--model-ema', '--model-ema-decay', '0.9',
                                       '--log-interval', '1']
    full = run_train(recipe + ['--experiment', 'full'])
    assert full.returncode == 0, full.stderr[-3000:]

    cmd = [sys.executable, os.path.join(REPO, 'train.py')] + [str(a) for a in recipe + ['--experiment', 'stopped']]
    log = tmp_path / 'stderr.txt'
    with open(log, 'w') as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=cpu_env(), stdout=subprocess.DEVNULL, stderr=err, text=True)
        deadline = time.time() + 240
        while 'Train: 1 [ 1/12' not in log.read_text() and proc.poll() is None:
            assert time.time() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    stderr = log.read_text()
    assert 'SIGTERM: stopping after this optimizer step (in validation: after the epoch checkpoint)' in stderr
    match = re.search(r'error: stopped after step (\d+) of epoch 1, state saved; resume with the same command and '
                      r'--resume auto --output (.+) --experiment stopped$', stderr.strip().splitlines()[-1])
    assert match and 1 <= int(match.group(1)) < 12 and match.group(2) == str(out), stderr[-2000:]
    assert 'Traceback' not in stderr
    assert len(glob.glob(str(out / 'stopped' / 'recovery-1-*.pth.tar'))) == 1

    resumed = run_train(recipe + ['--experiment', 'stopped', '--resume', 'auto'])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'starting epoch 1 at step {match.group(1)}' in resumed.stderr
    expected, got = _summary(out / 'full'), _summary(out / 'stopped')
    assert [r['epoch'] for r in got] == ['0', '1', '2']
    for row_expected, row_got in zip(expected, got):
        for key, value in row_expected.items():
            assert float(row_got[key]) == pytest.approx(float(value), rel=1e-6), key


def test_fashion_mnist_config_trains_on_grey_images(tmp_path):
    if not os.path.isdir('/usr/share/datasets/fashion-mnist'):
        pytest.skip('Fashion-MNIST is not installed')
    result = run_train(['-c', os.path.join(REPO, 'configs', 'dynamixer_xs_fashion_mnist.yaml'), '--epochs', '1',
                        '--train-num-samples', '120', '--val-num-samples', '60', '-b', '30', '-j', '0',
                        '--output', tmp_path, '--experiment', 'fm'])
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'input_size (1, 28, 28)' in result.stderr
    assert re.search(r'mean \(\d\.\d+,\), std \(\d\.\d+,\)', result.stderr)  # one value for one channel
    ckpt = load_checkpoint_file(tmp_path / 'fm' / 'last.pth.tar')
    assert ckpt['state_dict']['head.weight'].shape[0] == 10
    assert ckpt['args']['in_chans'] == 1


# --- bad images inside the data (the dataset side is tested in tests/test_data.py) ------------------------

def test_unreadable_training_image_is_skipped_and_counted_at_epoch_end(tmp_path, fresh_image_folder):
    root = fresh_image_folder(num_classes=2, per_class=(4, 2))
    bad = os.path.join(root, 'train', 'class_0', '001.png')
    with open(bad, 'wb') as f:
        f.write(b'this is not a png')
    result = run_train([root] + QUICK + ['--epochs', '1', '--output', tmp_path, '--experiment', 'skip'])
    assert result.returncode == 0, result.stderr[-2000:]
    log = result.stdout + result.stderr
    assert f'1 unreadable image file(s) skipped in training epoch 0: {bad}' in log
    assert len(_summary(tmp_path / 'skip')) == 1


def test_strict_data_stops_training_naming_the_unreadable_image(tmp_path, fresh_image_folder):
    root = fresh_image_folder(num_classes=2, per_class=(4, 2))
    bad = os.path.join(root, 'train', 'class_1', '000.png')
    with open(bad, 'wb') as f:
        f.write(b'\x89PNG truncated')
    result = run_train([root] + QUICK + ['--epochs', '1', '--strict-data', '--output', tmp_path])
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and bad in last, last


def test_model_kwargs_reach_the_model_and_a_typo_is_one_clear_error(tmp_path, image_folder, capsys):
    result = run_train([image_folder] + QUICK + ['--epochs', '1', '--output', tmp_path, '--experiment', 'kw',
                                                 '--model-kwargs', "generator='static'", 'reweight=False'])
    assert result.returncode == 0, result.stderr[-2000:]
    sd = load_checkpoint_file(tmp_path / 'kw' / 'last.pth.tar')['state_dict']
    assert 'stages.0.layers.0.token_mixer.mix_h.static_logits' in sd
    assert not any('reweight' in k for k in sd)
    bad = run_in_process([image_folder] + QUICK + ['--output', tmp_path, '--model-kwargs', 'genrator=1'], capsys)
    _assert_clean_error(bad, 'genrator')


def test_opt_kwargs_reach_the_optimizer_and_a_typo_is_one_clear_error(tmp_path, image_folder, capsys):
    result = run_train([image_folder] + QUICK + ['--epochs', '1', '--output', tmp_path, '--experiment', 'fused',
                                                 '--opt-kwargs', 'fused=True'])
    assert result.returncode == 0, result.stderr[-2000:]
    groups = load_checkpoint_file(tmp_path / 'fused' / 'last.pth.tar')['optimizer']['param_groups']
    assert [g['fused'] for g in groups] == [True, True]  # with and without weight decay
    bad = run_in_process([image_folder] + QUICK + ['--output', tmp_path, '--opt-kwargs', 'fusd=True'], capsys)
    _assert_clean_error(bad, '--opt-kwargs', 'fusd', '--opt adamw')


@pytest.mark.slow
def test_torchcompile_compiles_each_dynamixer_layer_and_trains(tmp_path, image_folder):
    result = run_train([image_folder] + QUICK + ['--epochs', '1', '--torchcompile', 'aot_eager', '--output', tmp_path,
                                                 '--experiment', 'compiled', '--compile-memory-budget', '0.5'],
                       timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'Compiled every DynaMixer layer with torch.compile (backend aot_eager, activation memory budget 0.5)' \
        in result.stdout + result.stderr
    sd = load_checkpoint_file(tmp_path / 'compiled' / 'last.pth.tar')['state_dict']
    assert not any('_orig_mod' in k for k in sd)  # in-place compile: the checkpoint keys are the model's
    assert len(_summary(tmp_path / 'compiled')) == 1


def test_in_memory_with_images_of_another_size_is_one_clear_error(tmp_path, image_folder, capsys):
    result = run_train([image_folder] + QUICK + ['--img-size', '28', '--in-memory', '--color-jitter', '0',
                                                 '--epochs', '1', '--output', tmp_path])
    _assert_clean_error(result, '--in-memory needs every image at the input size 28x28', 'image 0 is 32x32',
                        'drop --in-memory')


def test_a_timm_cnn_trains_with_img_size_set_it_is_built_without_it(tmp_path, image_folder):
    # recipes set img_size for DynaMixer; timm's CNNs take any size and reject the argument
    result = run_train([image_folder] + QUICK + ['--model', 'resnet10t', '--model-kwargs', 'channels=(8,16,24,32)',
                                                 '--epochs', '1', '--output', tmp_path, '--experiment', 'cnn'])
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resnet10t takes no img_size argument: built without it' in result.stderr
    ckpt = load_checkpoint_file(tmp_path / 'cnn' / 'last.pth.tar')
    sd = ckpt['state_dict']  # the stage widths are the given channels
    assert [sd[f'layer{i}.0.conv1.weight'].shape[0] for i in (1, 2, 3, 4)] == [8, 16, 24, 32]
