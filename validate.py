#!/usr/bin/env python3
"""Evaluate a DynaMixer (or any timm) model on a labelled image dataset: top-1, top-5, loss, images/s.

    python validate.py /data/imagenet --model dynamixer_s --checkpoint output/train/<run>/model_best.pth.tar
    python validate.py --dataset fashion_mnist --model dynamixer_xs --img-size 28 --in-chans 1 \
        --num-classes 10 --checkpoint output/train/<run>/model_best.pth.tar --results-file results.json
    python validate.py /data/cifar --dataset torch/cifar10 --model dynamixer_xs --num-classes 10 --checkpoint ...

Flags keep timm's validate.py names. Checkpoints: ours (train.py, `state_dict`/`state_dict_ema`), timm's,
a bare state dict, safetensors, or the authors' reference layout (mapped by the model's
`checkpoint_filter_fn`). Bad inputs (missing/corrupt checkpoint, a checkpoint of another variant or class
count, missing data) end with one `error: ...` line on stderr and exit status 2.
"""
import argparse
import csv
import json
import logging
import os
import sys
import time
from typing import Dict, Optional

import torch
import torch.nn as nn
import timm
from timm.data import create_loader, resolve_data_config
from timm.utils import ParseKwargs
from timm.utils.log import FormatterNoInfo

import dynamixer  # noqa: F401  registers dynamixer_* with timm
from dynamixer.checkpoint import CheckpointError, load_checkpoint_file, load_weights, training_args
from dynamixer.data import DataError, create_image_dataset, dataset_num_classes, log_skipped_files
from dynamixer.engine import TrainingError, cpu_amp_dtype, cpu_line, evaluate
from dynamixer.engine import create_model as engine_create_model

_logger = logging.getLogger('validate')


class InputError(Exception):
    """A bad command line input (model, checkpoint fit, device); the message is one line saying what to do."""


parser = argparse.ArgumentParser(description='Evaluate a timm / DynaMixer model on an image dataset')
parser.add_argument('data', nargs='?', metavar='DIR', help='path to dataset (positional, same as --data-dir)')
parser.add_argument('--data-dir', metavar='DIR', help='path to dataset (root dir)')
parser.add_argument('--dataset', metavar='NAME', default='',
                    help='dataset type: "" (image folder, default), fashion_mnist, torch/cifar10, torch/cifar100, ...')
parser.add_argument('--split', metavar='NAME', default='validation', help='dataset split (default: validation)')
parser.add_argument('--dataset-download', action='store_true', help='allow download of torch/ datasets')
parser.add_argument('--class-map', default='', metavar='FILENAME', help='path to class to idx mapping file')
parser.add_argument('--num-samples', type=int, default=None, metavar='N',
                    help='evaluate a deterministic class-balanced subset of N samples (default: all)')
parser.add_argument('--strict-data', action='store_true',
                    help='stop at the first unreadable image instead of skipping it with a warning')
parser.add_argument('--model', '-m', metavar='NAME', default=None,
                    help="model architecture (default: the checkpoint's training args, else dynamixer_s)")
parser.add_argument('--pretrained', action='store_true', help="use the model's pretrained weights")
parser.add_argument('--checkpoint', default='', metavar='FILE', help='checkpoint file to evaluate')
parser.add_argument('--use-ema', action='store_true', help="use the checkpoint's EMA weights (state_dict_ema)")
parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs, metavar='KEY=VALUE',
                    help="extra model constructor arguments, e.g. channels='(32,64,96,176)' (timm's flag; default: "
                         "training args)")
parser.add_argument('--num-classes', type=int, default=None, help='number of label classes (default: training args, else the model default)')
parser.add_argument('--img-size', type=int, default=None, metavar='N', help='input image size (default: training args, else the model default)')
parser.add_argument('--in-chans', type=int, default=None, metavar='N', help='image input channels, 1 or 3 (default: training args, else 3)')
parser.add_argument('--crop-pct', type=float, default=None, metavar='PCT', help='center crop fraction (default: training args, else the model default)')
parser.add_argument('--crop-mode', default=None, metavar='MODE', help='crop mode: center, squash, border')
parser.add_argument('--mean', type=float, nargs='+', default=None, metavar='MEAN', help='normalisation mean (default: training args, else the model default)')
parser.add_argument('--std', type=float, nargs='+', default=None, metavar='STD', help='normalisation std (default: training args, else the model default)')
parser.add_argument('--interpolation', default='', metavar='NAME', help='image resize interpolation (default: training args, else the model default)')
parser.add_argument('-b', '--batch-size', type=int, default=256, metavar='N', help='mini-batch size (default: 256)')
parser.add_argument('-j', '--workers', type=int, default=4, metavar='N', help='data loading workers (default: 4)')
parser.add_argument('--no-prefetcher', action='store_true', help='normalise on the CPU instead of the device')
parser.add_argument('--tta-hflip', action='store_true',
                    help="test-time augmentation: average each image's logits with those of its horizontal mirror "
                         "(for models trained with --hflip; twice the evaluation time)")
parser.add_argument('--amp', action='store_true', help='use mixed precision (autocast)')
parser.add_argument('--force-amp', action='store_true',
                    help='keep --amp or --model-dtype in half precision on a CPU without AVX-512 (by default evaluated in fp32 '
                         'there, with a warning)')
parser.add_argument('--amp-dtype', default='float16', choices=('float16', 'bfloat16'), help='autocast dtype (default: float16)')
parser.add_argument('--model-dtype', default=None, choices=('float32', 'float16', 'bfloat16'),
                    help='run the model and its inputs in this dtype, without autocast (as in timm); bfloat16 is the '
                         'fastest CPU inference on AVX-512 (docs/validation.md). Not with --amp')
parser.add_argument('--device', default=None, help='device (default: cuda if available, else cpu)')
parser.add_argument('--log-freq', type=int, default=10, metavar='N', help='batch logging frequency (default: 10)')
parser.add_argument('--results-file', default='', metavar='FILE', help='write the results to FILE (.json or .csv)')


def create_model(args: argparse.Namespace) -> nn.Module:
    kwargs = {k: v for k, v in dict(num_classes=args.num_classes, in_chans=args.in_chans, img_size=args.img_size).items()
              if v is not None}
    if ':' not in args.model and not timm.is_model(args.model.split('.')[0]):  # hf-hub:/local-dir: go to timm
        similar = timm.list_models(f'*{args.model.split("_")[0]}*')[:8]
        raise InputError(f'--model {args.model}: unknown model' + (f' (similar: {", ".join(similar)})' if similar else ''))
    kwargs.update(args.model_kwargs or {})
    try:
        return engine_create_model(args.model, pretrained=args.pretrained, **kwargs)  # CNNs: without img_size
    except (TypeError, ValueError, RuntimeError, OSError) as e:  # unknown kwarg, bad size, weights not downloadable
        flags = ' '.join(f'--{k.replace("_", "-")} {v}' for k, v in kwargs.items())
        raise InputError(f'cannot create {args.model} {flags}'.rstrip() + f': {str(e).splitlines()[0]}') from None


def _fit_channels(values, n: int):
    """Normalisation stats for n channels: a 3-channel default is averaged for grey input."""
    values = tuple(values)
    if len(values) == n:
        return values
    if len(values) == 1:
        return values * n
    return (sum(values) / len(values),) * n


def validate(args: argparse.Namespace) -> Dict:
    """Build model, data and loader from `args`, evaluate, and return the results dict."""
    if args.data and args.data_dir and args.data != args.data_dir:
        raise InputError(f'two data dirs given ({args.data} and --data-dir {args.data_dir}): give one')
    if args.device:
        device = torch.device(args.device)
    else:
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise InputError(f'--device {args.device}: no CUDA device is available; use --device cpu')
    if device.type == 'cpu':
        _logger.info(cpu_line())
    model_dtype = getattr(torch, args.model_dtype) if args.model_dtype else None
    if model_dtype is not None and args.amp:
        raise InputError('--model-dtype and --amp: --model-dtype runs the model in that dtype, --amp autocasts it '
                         'from float32; give one of them')
    if device.type == 'cpu' and model_dtype in (torch.float16, torch.bfloat16):
        model_dtype = cpu_amp_dtype(model_dtype, force=args.force_amp, flag='--model-dtype')

    checkpoint = load_checkpoint_file(args.checkpoint) if args.checkpoint else None
    if checkpoint is not None:
        taken = []
        for key, value in training_args(checkpoint).items():
            if getattr(args, key) in (None, '', {}):  # a flag the user gave wins
                setattr(args, key, value)
                taken.append(f"--{key.replace('_', '-')} {' '.join(map(str, value)) if isinstance(value, list) else value}")
        if taken:
            _logger.info(f"from the training args in {args.checkpoint}: {', '.join(taken)}")
    args.model = args.model or 'dynamixer_s'
    model = create_model(args)
    if checkpoint is not None:
        load_weights(model, checkpoint, args.checkpoint, args.use_ema)
    elif not args.pretrained:
        _logger.warning('no --checkpoint and no --pretrained: evaluating randomly initialised weights')
    param_count = sum(p.numel() for p in model.parameters())
    model = model.to(device, dtype=model_dtype).eval()

    in_chans = args.in_chans or getattr(model, 'in_chans', 3)  # a pretrained tag's cfg may set it
    data_config = resolve_data_config(dict(vars(args), in_chans=in_chans), model=model)
    input_size = (in_chans, *data_config['input_size'][1:])
    mean, std = _fit_channels(data_config['mean'], in_chans), _fit_channels(data_config['std'], in_chans)

    root = args.data_dir or args.data
    dataset = create_image_dataset(
        args.dataset, root, args.split, is_training=False, strict=args.strict_data, num_samples=args.num_samples,
        in_chans=in_chans, download=args.dataset_download, class_map=args.class_map)
    data_classes = dataset_num_classes(dataset)
    if data_classes is not None and data_classes > model.num_classes:
        raise InputError(f'the dataset in {root or args.dataset} has {data_classes} classes but the model has '
                         f'{model.num_classes} outputs: pass --num-classes {data_classes} (and a checkpoint trained on it)')

    loader = create_loader(
        dataset, input_size=input_size, batch_size=args.batch_size, use_prefetcher=not args.no_prefetcher,
        interpolation=data_config['interpolation'], mean=mean, std=std, num_workers=args.workers,
        crop_pct=data_config['crop_pct'], crop_mode=data_config['crop_mode'], pin_memory=device.type == 'cuda',
        device=device)
    amp_dtype = getattr(torch, args.amp_dtype) if args.amp else None
    if device.type == 'cpu':
        amp_dtype = cpu_amp_dtype(amp_dtype, force=args.force_amp)

    start = time.perf_counter()
    try:
        metrics = evaluate(model, loader, nn.CrossEntropyLoss().to(device), device, amp_dtype=amp_dtype,
                           log_interval=args.log_freq, tta_hflip=args.tta_hflip, input_dtype=model_dtype)
    except ValueError as e:  # the model rejects the input size or channels; its message says what to do
        raise InputError(str(e).splitlines()[0]) from None
    elapsed = time.perf_counter() - start
    skipped = log_skipped_files(dataset, 'during validation')

    return dict(
        model=args.model, checkpoint=args.checkpoint, dataset=args.dataset or 'folder', data_dir=root or '',
        split=args.split, num_images=len(dataset) - skipped, skipped_files=skipped,
        top1=round(metrics['top1'], 4), top1_err=round(100 - metrics['top1'], 4),
        top5=round(metrics['top5'], 4), top5_err=round(100 - metrics['top5'], 4), loss=round(metrics['loss'], 6),
        images_per_sec=round(len(dataset) / elapsed, 2), param_count=round(param_count / 1e6, 3),
        img_size=input_size[-1], in_chans=in_chans, crop_pct=data_config['crop_pct'],
        interpolation=data_config['interpolation'], use_ema=args.use_ema, tta_hflip=args.tta_hflip, amp=str(amp_dtype).replace('torch.', '') if amp_dtype else '',
        model_dtype=str(model_dtype or torch.float32).replace('torch.', ''), device=str(device),
    )


def write_results(results: Dict, path: str) -> None:
    """Write the results as JSON, or as one CSV row with a header when `path` ends in .csv."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w', newline='') as f:
            if path.endswith('.csv'):
                writer = csv.DictWriter(f, fieldnames=list(results))
                writer.writeheader()
                writer.writerow(results)
            else:
                json.dump(results, f, indent=2)
                f.write('\n')
    except OSError as e:
        raise InputError(f'cannot write --results-file {path}: {e.strerror} (the results are printed above)') from None


def main(argv: Optional[list] = None) -> int:
    args = parser.parse_args(argv)
    if args.results_file and os.path.splitext(args.results_file)[1] not in ('.json', '.csv'):
        parser.error(f'--results-file {args.results_file}: the name must end in .json or .csv')
    # log to stderr for this call only (timm's format), so that main() can also be called in-process
    handler = logging.StreamHandler()
    handler.setFormatter(FormatterNoInfo())
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    try:
        results = validate(args)
        print(f"* Acc@1 {results['top1']:.3f} ({results['top1_err']:.3f})  Acc@5 {results['top5']:.3f} "
              f"({results['top5_err']:.3f})  loss {results['loss']:.4f}  "
              f"{results['num_images']} images, {results['images_per_sec']:.1f} images/s")
        print(json.dumps(results, indent=2))
        if args.results_file:
            write_results(results, args.results_file)
            _logger.info(f'results written to {args.results_file}')
    except (CheckpointError, DataError, InputError, TrainingError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    finally:
        root_logger.removeHandler(handler)
    return 0

if __name__ == '__main__':
    sys.exit(main())
