"""The training and evaluation loops of dynamixer.engine, on tiny in-memory models and data."""
import logging

import pytest
import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.utils import ModelEmaV3

from dynamixer.checkpoint import get_rng_state
import dynamixer  # noqa: F401  registers dynamixer_* with timm
from dynamixer.engine import (DeviceOutOfMemoryError, NonFiniteLossError, TrainingStopped, cpu_amp_dtype,
                              cpu_has_native_bf16, create_model, evaluate, train_one_epoch)

CPU = torch.device('cpu')


def _batches(n_batches=6, batch_size=4, num_classes=3, seed=0):
    """A list of (input, target) batches: a linearly separable 3-class problem in 8 dims."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, 8, generator=g) * 3
    out = []
    for _ in range(n_batches):
        target = torch.randint(0, num_classes, (batch_size,), generator=g)
        out.append((centres[target] + torch.randn(batch_size, 8, generator=g) * 0.1, target))
    return out


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))


def _train(model, loader, lr=0.1, **kwargs):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return train_one_epoch(0, model, loader, optimizer, torch.nn.CrossEntropyLoss(), CPU, **kwargs), optimizer


def test_training_lowers_loss_and_evaluate_reports_loss_top1_top5():
    model, data = _model(), _batches()
    before = evaluate(model, data, torch.nn.CrossEntropyLoss(), CPU)
    for _ in range(5):
        metrics, _ = _train(model, data)
    after = evaluate(model, data, torch.nn.CrossEntropyLoss(), CPU)
    assert set(before) == {'loss', 'top1', 'top5'} and set(metrics) == {'loss', 'lr'}
    assert after['loss'] < before['loss'] / 2
    assert after['top1'] == 100.0 and after['top5'] == 100.0  # 3 classes: top-5 is top-3
    assert metrics['lr'] == pytest.approx(0.1)


def test_evaluate_counts_top1_and_top5_exactly():
    # 10 classes, 4 samples: target ranked 1st, 2nd, 5th and 6th by the logits
    logits = torch.arange(10.).flip(0).repeat(4, 1)  # class 0 highest ... class 9 lowest
    target = torch.tensor([0, 1, 4, 5])

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits[: x.shape[0]]

    out = evaluate(Fixed(), [(torch.zeros(4, 1), target)], torch.nn.CrossEntropyLoss(), CPU)
    assert out['top1'] == pytest.approx(25.0) and out['top5'] == pytest.approx(75.0)
    assert out['loss'] == pytest.approx(torch.nn.functional.cross_entropy(logits, target).item())


def test_evaluate_tta_hflip_scores_the_mean_of_the_logits_of_the_image_and_its_mirror():
    # the model reads the left and right pixel of a 1x2 image: class 0 wins on the image, class 1 on its mirror,
    # and their mean ties broken towards class 2 by a constant
    class LeftRight(torch.nn.Module):
        def forward(self, x):  # x: (B, 1, 1, 2) -> logits (B, 3)
            left, right = x[:, 0, 0, 0], x[:, 0, 0, 1]
            return torch.stack([3 * left, 3 * right, torch.full_like(left, 2.)], -1)

    x = torch.tensor([[[[1., 0.]]]])
    target = torch.tensor([2])
    plain = evaluate(LeftRight(), [(x, target)], torch.nn.CrossEntropyLoss(), CPU)
    tta = evaluate(LeftRight(), [(x, target)], torch.nn.CrossEntropyLoss(), CPU, tta_hflip=True)
    assert plain['top1'] == 0.0 and tta['top1'] == 100.0  # mean logits (1.5, 1.5, 2): class 2
    mean_logits = torch.tensor([[1.5, 1.5, 2.]])
    assert tta['loss'] == pytest.approx(torch.nn.functional.cross_entropy(mean_logits, target).item())


def test_evaluate_runs_without_autograd_so_no_activations_are_kept():
    seen = []

    class Probe(torch.nn.Linear):
        def forward(self, x):
            seen.append(torch.is_grad_enabled())
            return super().forward(x)

    model = Probe(8, 3)
    out = evaluate(model, _batches(n_batches=2), torch.nn.CrossEntropyLoss(), CPU, tta_hflip=True)
    assert seen == [False] * 4 and torch.is_grad_enabled()  # 2 batches x (image, mirror); grad mode restored
    assert 0 <= out['top1'] <= 100


def test_grad_accumulation_equals_one_large_batch():
    data = _batches(n_batches=4, batch_size=4)
    big = [(torch.cat([a[0] for a in data[i:i + 2]]), torch.cat([a[1] for a in data[i:i + 2]])) for i in (0, 2)]
    m_accum, m_big = _model(), _model()
    _train(m_accum, data, grad_accum_steps=2)
    _train(m_big, big)
    for a, b in zip(m_accum.parameters(), m_big.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_grad_clipping_bounds_the_update():
    model = _model()
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    _train(model, _batches(n_batches=1), lr=1.0, clip_grad=0.01)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm() <= 0.01 + 1e-6  # SGD lr 1: update = clipped gradient


def test_nan_loss_stops_with_step_epoch_lr_and_advice():
    data = _batches()
    data[2] = (torch.full_like(data[2][0], float('nan')), data[2][1])
    with pytest.raises(NonFiniteLossError) as e:
        _train(_model(), data, lr=0.05)
    msg = str(e.value)
    assert 'nan' in msg and 'step 3/6 of epoch 0' in msg and 'lr 0.05' in msg
    assert '--lr' in msg and '--clip-grad' in msg and 'bfloat16' in msg


def test_out_of_memory_names_batch_size_and_suggests_grad_accum():
    class Oom(torch.nn.Module):
        def forward(self, x):
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')

    model = torch.nn.Sequential(torch.nn.Linear(8, 3), Oom())
    with pytest.raises(DeviceOutOfMemoryError) as e:
        _train(model, _batches(batch_size=4))
    assert 'batch size 4' in str(e.value) and '--grad-accum-steps 2' in str(e.value)


def test_mixup_and_ema_are_applied():
    model = _model()
    ema = ModelEmaV3(model, decay=0.5)
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=0., label_smoothing=0.1, num_classes=3)
    data = _batches(batch_size=4)  # Mixup needs an even batch
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_one_epoch(0, model, data, optimizer, SoftTargetCrossEntropy(), CPU, mixup_fn=mixup, model_ema=ema)
    model_w, ema_w = model[0].weight.detach(), ema.module[0].weight.detach()
    assert not torch.equal(model_w, ema_w)  # the EMA lags behind the model
    assert (ema_w - model_w).abs().max() < 1.0


def test_recovery_hook_runs_every_n_steps_and_resume_skips_done_steps():
    data = _batches(n_batches=7)
    calls = []

    def recovery_fn(epoch, step, state):
        calls.append((epoch, step, state['loss_count'], get_rng_state()))

    torch.manual_seed(1)
    model_full = _model()
    full, _ = _train(model_full, data, recovery_interval=3, recovery_fn=recovery_fn)
    assert [c[:3] for c in calls] == [(0, 3, 12), (0, 6, 24)]

    # resume after step 3 from a model that has seen exactly those steps (plain SGD: no optimizer state)
    model_part = _model()
    first, _ = _train(model_part, data[:3])
    resumed, _ = _train(model_part, data, resume_state=dict(step=3, rng_state=calls[0][3],
                                                            loss_sum=first['loss'] * 12, loss_count=12))
    for a, b in zip(model_full.parameters(), model_part.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed['loss'] == pytest.approx(full['loss'], rel=1e-6)


def test_stop_request_saves_the_state_after_the_current_step_and_raises():
    data = _batches(n_batches=7)
    saved, steps_seen = [], []

    def stop_requested():  # asked after every optimizer step but the last; True once 4 steps are done
        steps_seen.append(len(steps_seen) + 1)
        return len(steps_seen) == 4

    model = _model()
    with pytest.raises(TrainingStopped, match='stopped after step 4 of epoch 0, state saved') as info:
        _train(model, data, recovery_fn=lambda epoch, step, state: saved.append((epoch, step, state['loss_count'])),
               stop_requested=stop_requested)
    assert (info.value.epoch, info.value.step, info.value.saved) == (0, 4, True)
    assert saved == [(0, 4, 16)]  # the 4 steps done, 4 images each
    # the model holds exactly those 4 steps
    reference = _model()
    _train(reference, data[:4])
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # not asked after the epoch's last step: the epoch ends normally and train.py checks before the next one
    asked = []
    _train(_model(), data, stop_requested=lambda: asked.append(1) or False)
    assert len(asked) == 6


def test_log_line_has_loss_lr_throughput_and_eta(caplog):
    with caplog.at_level(logging.INFO, logger='dynamixer.engine'):
        _train(_model(), _batches(n_batches=4), log_interval=2)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('Train:')]
    assert len(lines) == 2
    for line in lines:
        assert 'Loss:' in line and 'LR: 1.000e-01' in line and 'img/s' in line and 'ETA:' in line


def test_create_model_passes_img_size_to_models_that_take_it():
    model = create_model('dynamixer_xs', img_size=28, in_chans=1, num_classes=10)
    assert model.stages[1].layers[0].token_mixer.grid_size == (7, 7)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_create_model_builds_a_cnn_without_img_size_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger='dynamixer.engine'):
        model = create_model('resnet10t', img_size=28, in_chans=1, num_classes=10, channels=(8, 16, 24, 32))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert 'resnet10t takes no img_size argument: built without it' in caplog.text


def test_create_model_does_not_hide_other_bad_arguments():
    with pytest.raises(TypeError, match='no_such_option'):
        create_model('resnet10t', img_size=28, no_such_option=1)
    with pytest.raises(TypeError, match='no_such_option'):
        create_model('dynamixer_xs', img_size=28, no_such_option=1)


# ---------------------------------------------------------------- bf16 autocast on CPUs without AVX-512

AVX2_ONLY = dict(avx2=True, avx512_f=False, avx512_bf16=False, amx_bf16=False)


@pytest.mark.parametrize('caps, native', [
    (AVX2_ONLY, False),
    (dict(AVX2_ONLY, avx512_f=True), True),                     # AVX-512 without bf16: left as asked (not measured)
    (dict(AVX2_ONLY, avx512_f=True, avx512_bf16=True), True),
    (dict(AVX2_ONLY, amx_bf16=True), True),
])
def test_native_bf16_needs_avx512_or_amx(monkeypatch, caps, native):
    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: caps)
    assert cpu_has_native_bf16() is native


def test_cpu_amp_falls_back_to_fp32_without_avx512_and_says_how_to_keep_it(monkeypatch, caplog):
    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: AVX2_ONLY)
    with caplog.at_level(logging.WARNING):
        assert cpu_amp_dtype(torch.bfloat16) is None
    assert 'no AVX-512' in caplog.text and 'fp32' in caplog.text and '--force-amp' in caplog.text
    assert 'bfloat16 matmuls' in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert cpu_amp_dtype(torch.float16) is None  # validate.py's default dtype: the message names it
    assert 'float16 matmuls' in caplog.text and 'bfloat16 matmuls' not in caplog.text
    assert cpu_amp_dtype(torch.bfloat16, force=True) is torch.bfloat16
    assert cpu_amp_dtype(None) is None


def test_cpu_amp_is_kept_where_bf16_is_native(monkeypatch, caplog):
    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: dict(AVX2_ONLY, avx512_f=True, avx512_bf16=True))
    with caplog.at_level(logging.WARNING):
        assert cpu_amp_dtype(torch.bfloat16) is torch.bfloat16
    assert caplog.text == ''
