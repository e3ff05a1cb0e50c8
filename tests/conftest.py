"""Shared fixtures: tiny generated image folders and a helper that runs train.py as a subprocess."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Triton kernels (dynamixer/kernels) run in Triton's interpreter where there is no GPU, so that their tests run on
# the CPU; triton.jit reads this when the kernel is defined, i.e. before dynamixer is first imported
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')


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
