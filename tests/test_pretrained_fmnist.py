"""The shipped Fashion-MNIST weights load offline through timm and reach their recorded accuracy."""
import os

import pytest
import timm
import torch
from timm.data import create_transform, resolve_data_config

import dynamixer  # noqa: F401  registers dynamixer_* and the .fmnist weights
from dynamixer.data import FashionMNIST

WEIGHTS_DIR = os.path.join(os.path.dirname(dynamixer.__file__), 'weights')
FMNIST = '/usr/share/datasets/fashion-mnist'
# top-1 of the shipped weights on the first 1000 images of the class-balanced test subset
# (FashionMNIST(split='test', num_samples=1000)), recorded when the weights were exported
RECORDED_TOP1_1000 = {
    'dynamixer_xs.fmnist': 91.90,  # runs/xs_fmnist_16ep last (epoch 15 of 16); full 10k test set: 91.46
    'dynamixer_xs_convstem_sum.fmnist': 94.80,  # docs/results.md 1p: the EMA after the last of 31 epochs; full 10k test set: 93.21 (bf16 eval in training), 93.20 (validate.py, fp32)
    'dynamixer_xs_convstem_sum_dw.fmnist': 95.60,  # docs/results.md 1aa: the EMA after the last of 38 epochs of the dw config without random erasing, seed 0; full 10k test set: 93.90 (bf16 eval in training), 93.92 (validate.py, fp32), 94.15 (--tta-hflip)
    'dynamixer_xs_convstem.fmnist': 93.20,  # runs/xsc_fmnist_17ep last (epoch 16 of 17); full 10k test set: 91.95 (bf16 eval in training), 91.98 (validate.py, fp32)
}


@pytest.mark.parametrize('tag', sorted(RECORDED_TOP1_1000))
def test_pretrained_tag_is_listed_with_its_data_config(tag):
    assert tag in timm.list_pretrained('dynamixer_xs*')
    cfg = timm.models.get_pretrained_cfg(tag)
    assert cfg.num_classes == 10 and cfg.input_size == (1, 28, 28) and cfg.crop_pct == 1.0
    assert cfg.file == os.path.join(WEIGHTS_DIR, tag.replace('.', '_') + '.safetensors')
    assert os.path.exists(cfg.file) and not cfg.url and not cfg.hf_hub_id  # offline: a file in the package


@pytest.mark.skipif(not os.path.exists(os.path.join(FMNIST, 't10k-labels-idx1-ubyte.gz')),
                    reason='Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)')
@pytest.mark.parametrize('tag', sorted(RECORDED_TOP1_1000))
def test_pretrained_fmnist_weights_load_offline_and_reach_the_recorded_accuracy(monkeypatch, tag):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    model = timm.create_model(tag, pretrained=True).eval()
    assert model.num_classes == 10 and model.in_chans == 1 and model.img_size == (28, 28)
    config = resolve_data_config(model=model)
    transform = create_transform(**config)  # the cfg's mean/std/crop, as a timm user would
    data = FashionMNIST(split='test', num_samples=1000, transform=transform)
    x = torch.stack([data[i][0] for i in range(len(data))])  # (1000, 1, 28, 28)
    y = torch.tensor(data.targets)
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(-1) for b in x.split(250)])
    top1 = 100. * (pred == y).float().mean().item()
    assert abs(top1 - RECORDED_TOP1_1000[tag]) < 0.25, top1
