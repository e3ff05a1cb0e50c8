"""Training curves from train.py's summary.csv: loss, top-1 and learning rate per epoch, as one PNG.

    python scripts/plot_curves.py runs/xs_fmnist_main/summary.csv -o docs/img/xs_fmnist_curves.png
    python scripts/plot_curves.py runs/sweep/*-s0/summary.csv --labels ... -o docs/img/peers.png

Several summary files are drawn in the same axes (one colour per run), labelled with --labels or with the
name of the folder they are in. A run trained with --model-ema also gets its EMA's test loss and top-1, dotted.
"""
import argparse
import csv
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def read_summary(path):
    """summary.csv -> dict of column -> list of floats (epochs as given, first row wins on repeats)."""
    rows = list(csv.DictReader(open(path)))
    return {k: [float(r[k]) for r in rows if r.get(k) not in (None, '')] for k in rows[0]} if rows else {}


def plot(paths, labels, out, title=''):
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for path, label in zip(paths, labels):
        s = read_summary(path)
        ep = [e + 1 for e in s['epoch']]  # summary rows are written after the epoch: x = epochs done
        line, = axes[0].plot(ep, s['train_loss'], '-o', ms=3, label=f'{label} train')
        axes[0].plot(ep, s['eval_loss'], '--s', ms=3, color=line.get_color(), label=f'{label} test')
        axes[1].plot(ep, s['eval_top1'], '-o', ms=3, color=line.get_color(), label=label)
        if s.get('eval_ema_top1'):  # a run with --model-ema: its EMA, validated beside the model, dotted
            axes[0].plot(ep, s['eval_ema_loss'], ':', color=line.get_color(), label=f'{label} test, EMA')
            axes[1].plot(ep, s['eval_ema_top1'], ':', color=line.get_color(), label=f'{label} EMA')
        lr = s.get('lr') or s.get('train_lr')
        axes[2].plot(ep, lr, '-o', ms=3, color=line.get_color(), label=label)
        best = max(s['eval_top1'])
        axes[1].annotate(f'{s["eval_top1"][-1]:.2f}', (ep[-1], s['eval_top1'][-1]), fontsize=8,
                         textcoords='offset points', xytext=(3, -10 if best > s['eval_top1'][-1] else 3))
    axes[0].set(title='loss (train: smoothed labels)', xlabel='epoch')
    axes[1].set(title='test top-1 (%)', xlabel='epoch')
    axes[2].set(title='learning rate (at epoch end)', xlabel='epoch', yscale='log')
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if len(axes[1].lines) > 1:
        axes[1].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f'wrote {out}')
    return fig


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('summaries', nargs='+', help="train.py's summary.csv files")
    p.add_argument('--labels', nargs='+', default=None, help='one per file (default: the folder names)')
    p.add_argument('--title', default='')
    p.add_argument('-o', '--output', default='curves.png')
    args = p.parse_args()
    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(s))) for s in args.summaries]
    if len(labels) != len(args.summaries):
        p.error(f'{len(args.summaries)} summaries but {len(labels)} labels')
    plot(args.summaries, labels, args.output, args.title)


if __name__ == '__main__':
    main()
