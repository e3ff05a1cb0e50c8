"""The mixing matrices DynaMixer generates for a few test images: the 'dynamic' made visible.

    python scripts/plot_mixing.py --checkpoint runs/xs_fmnist_main/model_best.pth.tar -o docs/img/xs_fmnist_mixing.png
    python scripts/plot_mixing.py --pretrained -o mixing.png          # the shipped dynamixer_xs.fmnist weights
    python scripts/plot_mixing.py --pretrained dynamixer_xs_convstem.fmnist -o mixing.png

For one layer, forward hooks capture the inputs of its column op (`token_mixer.mix_h`) and row op
(`token_mixer.mix_w`); `DynaMixerOp.mixing_weights` turns them into (N, G, L_i, L_j) matrices (source i,
target j; each target's column sums to 1). Shown per image: the middle column's and the middle row's
matrices for the first heads. The last row is the spread (std over the images) of each entry: a static
(Synthesizer-Random / ViP) mixer would be zero there.
"""
import argparse
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import timm  # noqa: E402

import dynamixer  # noqa: E402,F401  registers dynamixer_*
from dynamixer.data import FASHION_MNIST_CLASSES, FashionMNIST  # noqa: E402

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST, as in configs/dynamixer_xs_fashion_mnist.yaml


def load_model(args):
    # fused=False: the plain path calls mix_h / mix_w as modules, so their forward hooks fire
    kw = dict(img_size=28, in_chans=1, num_classes=10, fused=False)
    if args.pretrained:
        return timm.create_model(args.pretrained, pretrained=True, **kw).eval()
    model = timm.create_model(args.model, **kw)
    state = torch.load(args.checkpoint, map_location='cpu', weights_only=False)
    state = state.get('state_dict_ema') or state.get('state_dict') or state
    model.load_state_dict({k[7:] if k.startswith('module.') else k: v for k, v in state.items()})
    return model.eval()


@torch.no_grad()
def capture(model, layer_name, images):
    """Mixing weights of the layer's column and row op for `images` (B, 1, 28, 28), plus the predictions."""
    layer = model.get_submodule(layer_name)
    seen = {}
    hooks = [getattr(layer.token_mixer, op).register_forward_hook(
        lambda m, inp, out, op=op: seen.__setitem__(op, m.mixing_weights(inp[0]))) for op in ('mix_h', 'mix_w')]
    logits = model(images)
    for h in hooks:
        h.remove()
    return seen['mix_h'], seen['mix_w'], logits.argmax(-1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--checkpoint', help='a train.py checkpoint of --model')
    src.add_argument('--pretrained', nargs='?', const='dynamixer_xs.fmnist', default=None, metavar='TAG',
                     help='shipped weights: dynamixer_xs.fmnist (default) or dynamixer_xs_convstem.fmnist')
    p.add_argument('--model', default='dynamixer_xs')
    p.add_argument('--layer', default='stages.0.layers.1', help='the layer whose ops are shown')
    p.add_argument('--images', type=int, nargs='+', default=[0, 1, 2, 3], help='test-set indices')
    p.add_argument('--heads', type=int, default=2, help='heads shown per op')
    p.add_argument('-o', '--output', default='mixing.png')
    args = p.parse_args()

    model = load_model(args)
    test = FashionMNIST(None, 'test')
    raw = torch.stack([torch.from_numpy(test.data[i].copy()) for i in args.images]).float() / 255.  # (B, 28, 28)
    images = ((raw - MEAN) / STD).unsqueeze(1)  # (B, 1, 28, 28)
    col, row, pred = capture(model, args.layer, images)  # (B*W, G, H, H), (B*H, G, W, W)
    B = len(args.images)
    H, W = model.get_submodule(args.layer).token_mixer.grid_size
    col = col.reshape(B, W, *col.shape[1:])[:, W // 2]  # middle column: (B, G, H_i, H_j)
    row = row.reshape(B, H, *row.shape[1:])[:, H // 2]  # middle row: (B, G, W_i, W_j)
    G = min(args.heads, col.shape[1])

    ncols = 1 + 2 * G
    fig, axes = plt.subplots(B + 1, ncols, figsize=(1.9 * ncols, 1.9 * (B + 1)))
    vmax = max(col.max().item(), row.max().item())
    for b in range(B):
        ax = axes[b, 0]
        ax.imshow(raw[b], cmap='gray')
        ax.axvline(W // 2 * 28 / W + 14 / W, color='tab:red', lw=0.8)  # the mixed column / row, in pixels
        ax.axhline(H // 2 * 28 / H + 14 / H, color='tab:blue', lw=0.8)
        label, guess = FASHION_MNIST_CLASSES[test.targets[args.images[b]]], FASHION_MNIST_CLASSES[pred[b]]
        ax.set_title(f'{label}\n(pred {guess})', fontsize=7)
        for g in range(G):
            axes[b, 1 + g].imshow(col[b, g], cmap='viridis', vmin=0, vmax=vmax)
            axes[b, 1 + G + g].imshow(row[b, g], cmap='viridis', vmin=0, vmax=vmax)
    for g in range(G):  # spread over the images: zero for an input-independent mixer
        axes[B, 1 + g].imshow(col[:, g].std(0), cmap='magma')
        axes[B, 1 + G + g].imshow(row[:, g].std(0), cmap='magma')
        axes[0, 1 + g].set_title(f'column op, head {g}\n(red line)', fontsize=7)
        axes[0, 1 + G + g].set_title(f'row op, head {g}\n(blue line)', fontsize=7)
    axes[B, 0].text(0.5, 0.5, 'std over\nthese images', ha='center', va='center', fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for b in range(B + 1):
        axes[b, 1].set_ylabel('source i', fontsize=6)
    axes[B, 1].set_xlabel('target j', fontsize=6)
    fig.suptitle(f'{args.pretrained or args.model} {args.layer}: generated mixing weights ({H}x{W} tokens)', fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.output) or '.', exist_ok=True)
    fig.savefig(args.output, dpi=90)
    print(f'wrote {args.output}')


if __name__ == '__main__':
    main()
