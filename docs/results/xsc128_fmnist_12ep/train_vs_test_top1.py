"""Top-1 on the clean (un-augmented) 60k training set and on the 10k test set of three final checkpoints
(bf16 autocast, raw 28 px images normalised with the Fashion-MNIST mean/std, no crop): how under-fitted each is.

python docs/results/xsc128_fmnist_12ep/train_vs_test_top1.py > docs/results/xsc128_fmnist_12ep/train_vs_test_top1.txt
(needs the run folders runs/xsc128_fmnist_12ep, runs/cnn_fmnist_12ep, runs/xsc_fmnist_17ep)
"""
import numpy as np, sys
import torch, timm, dynamixer
from dynamixer.data import FashionMNIST
torch.set_num_threads(2)
specs = {'xsc128': ('dynamixer_xs_convstem', dict(img_size=28, embed_dims=(32,128,128,128)), 'runs/xsc128_fmnist_12ep/last.pth.tar'),
         'cnn': ('resnet10t', dict(channels=(32,64,96,176)), 'runs/cnn_fmnist_12ep/last.pth.tar'),
         'xsc17': ('dynamixer_xs_convstem', dict(img_size=28), 'runs/xsc_fmnist_17ep/checkpoint-16.pth.tar')}
for name, (model, kw, path) in specs.items():
    m = timm.create_model(model, in_chans=1, num_classes=10, **kw)
    m.load_state_dict(torch.load(path, map_location='cpu', weights_only=False)['state_dict']); m.eval()
    out = [name]
    for split in ['train', 'test']:
        ds = FashionMNIST(split=split)
        x = ((torch.tensor(ds.data).float() / 255 - 0.2860) / 0.3530).unsqueeze(1); t = torch.tensor(ds.targets)
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            pred = torch.cat([m(xb).float().argmax(1) for xb in x.split(1000)])
        out.append(f'{split} {100 * (pred == t).float().mean().item():.2f}')
    print(' '.join(out), flush=True)
