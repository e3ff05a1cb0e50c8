"""Shared fixtures: tiny generated image folders and a helper that runs train.py as a subprocess; a check that there
is scratch disk for the run."""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Triton kernels (dynamixer/kernels) run in Triton's interpreter where there is no GPU, so that their tests run on
# the CPU; triton.jit reads this when the kernel is defined, i.e. before dynamixer is first imported
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')

# Scratch space the run needs: the largest test writes a 0.35 GB checkpoint (pytest.ini deletes a passing test's
# tmp_path when it ends), and a first run grows inductor's cache by about 0.15 GB (measured in session 33: `du -sm` of
# the --basetemp folder every second over a full default run, and of torchinductor_root after it). Short of it, tests fail by the
# hundred with errors that do not say why (CI, 2026-12-07), so the run stops first with one line that does.
MIN_FREE_MB = int(os.environ.get('DYNAMIXER_TEST_MIN_FREE_MB', 400))


def free_disk_problem(path: str, need_mb: int = MIN_FREE_MB):
    """None if `path`'s disk has `need_mb` MB free, else the one-line error that stops the run."""
    free_mb = shutil.disk_usage(path).free / 2 ** 20
    if free_mb >= need_mb:
        return None
    return (f'only {free_mb:.0f} MB free on the disk of {path}; the tests need about {need_mb} MB of scratch space: '
            f'free some disk, or point TMPDIR (or pytest --basetemp) at a disk with room')


def pytest_sessionstart(session):
    base = session.config.option.basetemp
    path = os.path.dirname(os.path.abspath(base)) if base else tempfile.gettempdir()
    problem = free_disk_problem(path)
    if problem:
        pytest.exit(problem, returncode=1)


def make_image_folder(root, num_classes=3, per_class=(8, 4), size=32, mode='RGB', seed=0):
    """Write root/train/<class>/*.png and root/validation/<class>/*.png.

    Each class has its own mean colour plus noise, so a model can learn it in a few steps.

    Args:
        root: folder to create.
        num_classes: number of class folders.
        per_class: images per class in (train, validation).
        size: image side in pixels.
        mode: 'RGB' or 'L'.

    Returns:
        `root` as a string.
    """
    rng = np.random.default_rng(seed)
    channels = 3 if mode == 'RGB' else 1
    for split, n in zip(('train', 'validation'), per_class):
        for c in range(num_classes):
            folder = os.path.join(root, split, f'class_{c}')
            os.makedirs(folder, exist_ok=True)
            base = rng.uniform(0, 255, size=channels) * 0 + 255. * (c + 0.5) / num_classes
            for i in range(n):
                pixels = np.clip(base + rng.normal(0, 40, size=(size, size, channels)), 0, 255).astype(np.uint8)
                img = Image.fromarray(pixels[..., 0] if mode == 'L' else pixels, mode)
                img.save(os.path.join(folder, f'{i:03d}.png'))
    return str(root)


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory):
    """A 3-class RGB ImageFolder, 32 px: 8 train and 4 validation images per class (session-wide, read-only)."""
    return make_image_folder(tmp_path_factory.mktemp('images'))


@pytest.fixture
def fresh_image_folder(tmp_path):
    """Factory for an ImageFolder in this test's tmp_path: fresh_image_folder(num_classes=.., size=..)."""
    def make(name='images', **kwargs):
        return make_image_folder(tmp_path / name, **kwargs)
    return make


def cpu_env(**extra):
    """Environment for a CPU child process: one thread (the machine is shared), no CUDA, repo importable."""
    env = dict(os.environ)
    env.update(CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=REPO + os.pathsep + env.get('PYTHONPATH', ''), PYTHONUNBUFFERED='1')
    for k in [k for k in env if k.startswith(('TORCHELASTIC_', 'LOCAL_RANK', 'WORLD_SIZE'))] + ['RANK']:
        env.pop(k, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_train(args, timeout=300, **env):
    """Run `python train.py ARGS` on the CPU; returns the CompletedProcess (text stdout/stderr)."""
    cmd = [sys.executable, os.path.join(REPO, 'train.py')] + [str(a) for a in args]
    return subprocess.run(cmd, cwd=REPO, env=cpu_env(**env), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def train_cli():
    """The `run_train` helper as a fixture."""
    return run_train
