"""Top-1 of the shipped dynamixer_xs_convstem_sum.fmnist weights on the full 10k Fashion-MNIST test set (fp32):
the images as they are, flipped left-right, and the two softmaxes averaged (test-time flips; docs/results.md 1f).

python docs/results/xscs_fmnist_23ep_lr4e-3/flip_tta.py > docs/results/xscs_fmnist_23ep_lr4e-3/flip_tta.txt
"""
import timm
import torch
from timm.data import create_transform, resolve_data_config

import dynamixer  # noqa: F401  registers dynamixer_* and the .fmnist weights
from dynamixer.data import FashionMNIST

model = timm.create_model('dynamixer_xs_convstem_sum.fmnist', pretrained=True).eval()
data = FashionMNIST(split='test', transform=create_transform(**resolve_data_config(model=model)))
x = torch.stack([data[i][0] for i in range(len(data))])
y = torch.tensor(data.targets)
with torch.no_grad():
    plain = torch.cat([model(b).softmax(-1) for b in x.split(500)])
    flipped = torch.cat([model(b.flip(-1)).softmax(-1) for b in x.split(500)])
for label, p in (('as they are', plain), ('flipped', flipped), ('averaged', plain + flipped)):
    print(f'{label:12s} top-1 {100 * (p.argmax(-1) == y).float().mean().item():.2f} ({len(y)} test images)')
