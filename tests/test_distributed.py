"""distributed_train.sh: DDP over gloo on CPU, the reference README command, torchrun restarts."""
import csv
import glob
import os
import signal
import subprocess
import time

import pytest

from conftest import REPO, cpu_env
from dynamixer.checkpoint import load_checkpoint_file

SCRIPT = os.path.join(REPO, 'distributed_train.sh')
REFERENCE_FLAGS = ('-b 256 -j 8 --opt adamw --epochs 300 --sched cosine --apex-amp --img-size 224 --drop-path 0.1 '
                   '--lr 2e-3 --weight-decay 0.05 --remode pixel --reprob 0.25 --aa rand-m9-mstd0.5-inc1 '
                   '--smoothing 0.1 --mixup 0.8 --cutmix 1.0 --warmup-lr 1e-6 --warmup-epochs 20').split()


def _env(**extra):
    import sys
    return cpu_env(PYTHON=sys.executable, **extra)


def _run_script(args, timeout=300, **env):
    return subprocess.run(['bash', SCRIPT] + [str(a) for a in args], cwd=REPO, env=_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def _summary(path):
    with open(os.path.join(path, 'summary.csv'), newline='') as f:
        return list(csv.DictReader(f))


def _reference_run(tmp_path, image_folder, model, batch, drop_path):
    # the README command exactly as written, then tiny-run overrides: later flags win in argparse
    flags = ['--model', model] + REFERENCE_FLAGS
    flags[flags.index('-b') + 1], flags[flags.index('--drop-path') + 1] = batch, drop_path
    overrides = ['-b', '2', '--epochs', '1', '--img-size', '28', '-j', '0', '--output', tmp_path, '--experiment', 'ref']
    result = _run_script(['2', image_folder] + flags + overrides)
    assert result.returncode == 0, result.stderr[-4000:]
    assert 'process 0 of 2 on cpu (gloo)' in result.stderr and 'process 1 of 2 on cpu (gloo)' in result.stderr
    assert '--apex-amp: NVIDIA apex is not used' in result.stderr
    assert 'Final top-1' in result.stdout
    checkpoint = load_checkpoint_file(tmp_path / 'ref' / 'last.pth.tar')  # what validate.py reads
    assert checkpoint['arch'] == model and checkpoint['epoch'] == 0
    assert checkpoint['state_dict']['head.weight'].shape[0] == 3
    assert [r['epoch'] for r in _summary(tmp_path / 'ref')] == ['0']


def test_reference_readme_command_runs_on_two_gloo_processes(tmp_path, image_folder):
    _reference_run(tmp_path, image_folder, 'dynamixer_s', '256', '0.1')


@pytest.mark.slow
@pytest.mark.parametrize('model, batch, drop_path', [('dynamixer_m', '128', '0.1'), ('dynamixer_l', '64', '0.3')])
def test_reference_readme_command_runs_for_m_and_l(tmp_path, image_folder, model, batch, drop_path):
    _reference_run(tmp_path, image_folder, model, batch, drop_path)


def test_script_without_arguments_prints_usage():
    result = _run_script([])
    assert result.returncode == 2 and result.stderr.startswith('usage: ')


def _children(pid):
    with open(f'/proc/{pid}/task/{pid}/children') as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.slow
def test_worker_killed_mid_epoch_is_restarted_and_resumes_with_identical_metrics(tmp_path, image_folder):
    """MAX_RESTARTS=1: a worker SIGKILLed in epoch 1 is restarted by torchrun, resumes from the recovery
    checkpoint (TORCHELASTIC_RESTART_COUNT > 0 -> --resume auto) and ends with the uninterrupted run's metrics."""
    recipe = [image_folder, '--model', 'dynamixer_xs', '--img-size', '32', '-b', '2', '-j', '0', '--opt', 'adamw',
              '--lr', '1e-3', '--warmup-epochs', '0', '--epochs', '2', '--seed', '3', '--drop-path', '0.1',
              '--mixup', '0.8', '--recovery-interval', '2', '--output', tmp_path]
    full = _run_script(['2'] + recipe + ['--experiment', 'full'])
    assert full.returncode == 0, full.stderr[-4000:]

    proc = subprocess.Popen(['bash', SCRIPT, '2'] + [str(a) for a in recipe + ['--experiment', 'restarted']],
                            cwd=REPO, env=_env(MAX_RESTARTS=1), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 240
    while not glob.glob(str(tmp_path / 'restarted' / 'recovery-1-*.pth.tar')):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    workers = _children(proc.pid)  # torchrun (exec'd by the script) -> its worker processes
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-4000:]
    assert 'Restart 1 by torchrun' in stderr and 'starting epoch 1 at step' in stderr

    expected, got = _summary(tmp_path / 'full'), _summary(tmp_path / 'restarted')
    assert [r['epoch'] for r in got] == ['0', '1']
    for row_expected, row_got in zip(expected, got):
        for key, value in row_expected.items():
            assert float(row_got[key]) == pytest.approx(float(value), rel=1e-6), key
