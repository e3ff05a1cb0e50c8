"""Real data, end to end: train.py learns Fashion-MNIST with the shipped recipe.

A regression in the model, the op, the data pipeline, the optimiser or the schedule shows as a drop in
accuracy. Budget: 2 epochs of a fixed class-balanced 3000-image subset (94 steps of 64), evaluated on
1000 test images, no augmentation; about 40 s of CPU time (minutes of wall time on a busy machine).
Measured: see the threshold's comment.
"""
import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST = '/usr/share/datasets/fashion-mnist'


@pytest.mark.skipif(not os.path.exists(os.path.join(FMNIST, 't10k-labels-idx1-ubyte.gz')),
                    reason='Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)')
def test_train_py_learns_fashion_mnist_in_94_steps(tmp_path):
    cmd = [sys.executable, 'train.py', '-c', 'configs/dynamixer_xs_fashion_mnist.yaml',
           '--train-num-samples', '3000', '-b', '64', '--epochs', '2', '--warmup-epochs', '0', '--val-num-samples', '1000',
           '--no-aug', '--smoothing', '0', '--lr', '3e-3', '--seed', '0', '-j', '0', '--output', str(tmp_path), '--experiment', 'ci', '--log-interval', '100']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / 'ci' / 'summary.csv')))
    assert len(rows) == 2
    top1 = [float(r['eval_top1']) for r in rows]
    # measured 47.3 then 54.2 (seed 0, torch 2.14 CPU, 36 s of CPU time; 40.9 then 49.9 before the token-layout
    # change of session 2, which reorders float sums); chance is 10%. DynaMixer starts slowly (its generated
    # mixing starts uniform), so 94 steps are far from converged: 45 leaves room for BLAS/thread differences.
    assert top1[-1] > 45.0, top1
    assert float(rows[-1]['train_loss']) < float(rows[0]['train_loss'])
