"""Checkpoint loading is safe, saving is atomic, resuming restores the whole training state."""
import errno
import os

import pytest
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3

from dynamixer.checkpoint import (
    CheckpointError, CheckpointSaver, atomic_save, find_latest_checkpoint, load_checkpoint_file,
    resume_checkpoint, state_dict_from_checkpoint,
)


class _WritesMarker:
    """A pickle payload that would create a file if it were ever unpickled with full pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'payload': _WritesMarker(str(marker))}, path)
    assert not marker.exists()  # saving does not run the payload
    with pytest.raises(CheckpointError) as e:
        load_checkpoint_file(path)
    assert not marker.exists()
    msg = str(e.value)
    assert str(path) in msg and 'arbitrary code' in msg and '\n' not in msg


@pytest.mark.parametrize('make, problem', [
    (lambda p: None, 'file not found'),
    (lambda p: p.write_bytes(b''), 'empty file'),
    (lambda p: p.write_text('hello, not a checkpoint'), 'not a PyTorch checkpoint'),
    (lambda p: torch.save([1, 2, 3], p), 'not a checkpoint'),
    (lambda p: torch.save({'epoch': 3}, p), 'not a checkpoint'),
])
def test_bad_checkpoint_files_give_one_line_naming_file_and_problem(tmp_path, make, problem):
    path = tmp_path / 'x.pth.tar'
    make(path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint_file(path)
    msg = str(e.value)
    assert problem in msg and str(path) in msg and '\n' not in msg


def test_truncated_checkpoint_is_reported_as_corrupt(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.randn(100)}}, good)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint_file(cut)


def test_safetensors_and_plain_state_dict_load(tmp_path):
    import safetensors.torch
    sd = {'head.weight': torch.randn(3, 4)}
    safetensors.torch.save_file(sd, str(tmp_path / 'w.safetensors'))
    torch.save({'module.head.weight': sd['head.weight']}, tmp_path / 'w.pth')
    for name in ('w.safetensors', 'w.pth'):
        loaded = state_dict_from_checkpoint(load_checkpoint_file(tmp_path / name))
        assert torch.equal(loaded['head.weight'], sd['head.weight'])


def test_atomic_save_keeps_previous_checkpoint_when_disk_is_full(tmp_path, monkeypatch):
    path = tmp_path / 'last.pth.tar'
    atomic_save({'state_dict': {'w': torch.zeros(4)}, 'epoch': 1}, path)

    def full_disk(obj, f, *args, **kwargs):
        f.write(b'partial')
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(CheckpointError) as e:
        atomic_save({'state_dict': {'w': torch.ones(4)}, 'epoch': 2}, path)
    monkeypatch.undo()
    assert 'no space left on device' in str(e.value) and 'previous checkpoint is intact' in str(e.value)
    assert load_checkpoint_file(path)['epoch'] == 1
    assert os.listdir(tmp_path) == ['last.pth.tar']  # no temp file left behind


def _training_objects(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    optimizer = create_optimizer_v2(model, 'adamw', lr=1e-2, weight_decay=0.05)
    scheduler, _ = create_scheduler_v2(optimizer, 'cosine', num_epochs=5, warmup_epochs=1, warmup_lr=1e-4)
    ema = ModelEmaV3(model, decay=0.9)
    return model, optimizer, scheduler, ema


def _step(model, optimizer, ema):
    loss = model(torch.randn(5, 4)).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ema.update(model)


def test_resume_restores_model_optimizer_ema_scheduler_and_epoch(tmp_path):
    model, optimizer, scheduler, ema = _training_objects()
    saver = CheckpointSaver(model, optimizer, model_ema=ema, lr_scheduler=scheduler,
                            checkpoint_dir=str(tmp_path), recovery_dir=str(tmp_path), max_history=2)
    for epoch in range(3):
        _step(model, optimizer, ema)
        scheduler.step(epoch + 1)
        saver.save_checkpoint(epoch, metric=float(epoch))
    assert sorted(os.listdir(tmp_path)) == ['checkpoint-1.pth.tar', 'checkpoint-2.pth.tar',
                                            'last.pth.tar', 'model_best.pth.tar']

    model2, optimizer2, scheduler2, ema2 = _training_objects(seed=1)
    out = resume_checkpoint(str(tmp_path / 'last.pth.tar'), model2, optimizer2, model_ema=ema2,
                            lr_scheduler=scheduler2)
    assert (out['epoch'], out['step']) == (3, 0)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ema.state_dict().values(), ema2.state_dict().values()):
        assert torch.equal(a, b)
    assert optimizer2.state_dict()['state'][0]['step'] == optimizer.state_dict()['state'][0]['step']
    assert scheduler2.state_dict() == scheduler.state_dict()


def test_recovery_checkpoint_resumes_inside_the_epoch_and_auto_finds_it(tmp_path):
    model, optimizer, scheduler, ema = _training_objects()
    saver = CheckpointSaver(model, optimizer, checkpoint_dir=str(tmp_path), recovery_dir=str(tmp_path))
    saver.save_checkpoint(0)
    saver.save_recovery(1, batch_idx=4)  # 5 steps of epoch 1 done
    saver.save_recovery(1, batch_idx=9)
    latest = find_latest_checkpoint(str(tmp_path))
    assert os.path.basename(latest) == 'recovery-1-10.pth.tar'
    out = resume_checkpoint(latest, *_training_objects()[:2])
    assert (out['epoch'], out['step']) == (1, 10)


def test_auto_resume_skips_a_corrupt_checkpoint(tmp_path):
    model, optimizer, _, _ = _training_objects()
    saver = CheckpointSaver(model, optimizer, checkpoint_dir=str(tmp_path), recovery_dir=str(tmp_path))
    saver.save_checkpoint(0)
    (tmp_path / 'recovery-1-3.pth.tar').write_bytes(b'PK\x03\x04 cut short')
    assert os.path.basename(find_latest_checkpoint(str(tmp_path))) == 'last.pth.tar'
    assert find_latest_checkpoint(str(tmp_path / 'nothing-here')) is None


def test_saver_keeps_last_checkpoint_when_disk_fills_during_save(tmp_path, monkeypatch):
    model, optimizer, _, _ = _training_objects()
    saver = CheckpointSaver(model, optimizer, checkpoint_dir=str(tmp_path), recovery_dir=str(tmp_path))
    saver.save_checkpoint(0, metric=1.0)

    def full_disk(obj, f, *args, **kwargs):
        f.write(b'PK partial')
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(CheckpointError, match='no space left on device'):
        saver.save_checkpoint(1, metric=2.0)
    monkeypatch.undo()
    assert load_checkpoint_file(tmp_path / 'last.pth.tar')['epoch'] == 0
    assert load_checkpoint_file(tmp_path / 'model_best.pth.tar')['epoch'] == 0
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]


def test_process_killed_while_saving_leaves_previous_checkpoint_intact(tmp_path):
    import signal
    import subprocess
    import sys
    path = tmp_path / 'last.pth.tar'
    atomic_save({'state_dict': {'w': torch.zeros(3)}, 'epoch': 4}, path)
    child = (
        'import sys, time, torch\n'
        'from dynamixer.checkpoint import atomic_save\n'
        'def slow_save(obj, f, *a, **k):\n'
        '    f.write(b"PK half a checkpoint"); f.flush(); print("writing", flush=True); time.sleep(60)\n'
        'torch.save = slow_save\n'
        f'atomic_save({{"epoch": 5}}, {str(path)!r})\n')
    proc = subprocess.Popen([sys.executable, '-c', child], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__))))
    assert proc.stdout.readline().strip() == 'writing'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint_file(path)['epoch'] == 4
    assert find_latest_checkpoint(str(tmp_path)) == str(path)
    assert len(os.listdir(tmp_path)) == 2  # + the cut-short temp file, which the next saver removes
    CheckpointSaver(torch.nn.Linear(1, 1), None, checkpoint_dir=str(tmp_path))
    assert os.listdir(tmp_path) == ['last.pth.tar']


@pytest.mark.parametrize('content', [b'epoch,loss\n0,1.0\n', b'{"state_dict": {}}', b'\x89PNG\r\n\x1a\n0000'])
def test_files_that_are_not_checkpoints_are_named_as_such(tmp_path, content):
    path = tmp_path / 'model.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"model.pth': not a PyTorch checkpoint"):
        load_checkpoint_file(str(path))
