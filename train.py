#!/usr/bin/env python3
"""Train DynaMixer (or any timm model) on ImageNet, CIFAR, Fashion-MNIST or an image folder.

Wiring only: parse flags -> timm factories -> `dynamixer.engine`. Flag names are timm's, so the
reference README commands run unchanged, e.g.

    ./distributed_train.sh 8 /data/imagenet -c configs/dynamixer_s_in1k.yaml
    python train.py /data/imagenet --model dynamixer_s -b 256 --opt adamw --lr 2e-3 ...

`-c CONFIG.yaml` supplies defaults (keys are flag names with '_'), command-line flags override them.
The LR given is the LR used (no scaling with the batch size). Bad inputs end with one line
`error: ...` on stderr and exit status 2.
"""
import argparse
import copy
import csv
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime

import torch
import yaml
from timm.utils import ParseKwargs

_logger = logging.getLogger('train')


class ConfigError(Exception):
    """A bad command line or config; the message says what to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(f'{message} (see train.py --help)')


# The first parser reads only the config file; its values become the defaults of the main parser.
config_parser = _Parser(description='Training config', add_help=False)
config_parser.add_argument('-c', '--config', default='', type=str, metavar='FILE',
                           help='YAML config file whose keys (flag names) set defaults; flags override them')

parser = _Parser(description='Train a DynaMixer (or any timm) image classifier')

group = parser.add_argument_group('Dataset parameters')
group.add_argument('data', nargs='?', metavar='DIR', const=None, help='path to dataset (positional)')
group.add_argument('--data-dir', metavar='DIR', help='path to dataset (same as the positional DIR)')
group.add_argument('--dataset', metavar='NAME', default='',
                   help="'' (image folder), torch/cifar10, torch/cifar100, fashion_mnist")
group.add_argument('--train-split', metavar='NAME', default='train', help='dataset train split (default: train)')
group.add_argument('--val-split', metavar='NAME', default='validation',
                   help='dataset validation split (default: validation)')
group.add_argument('--train-num-samples', default=None, type=int, metavar='N',
                   help='train on a fixed class-balanced subset of N images (quick runs)')
group.add_argument('--val-num-samples', default=None, type=int, metavar='N',
                   help='validate on a fixed class-balanced subset of N images (quick runs)')
group.add_argument('--dataset-download', action='store_true', help='download torch/ datasets if missing')
group.add_argument('--strict-data', action='store_true',
                   help='stop at the first unreadable image (default: skip it with a warning naming it)')
group.add_argument('--class-map', default='', type=str, metavar='FILENAME', help='class map file for folders')

group = parser.add_argument_group('Model parameters')
group.add_argument('--model', default='dynamixer_s', type=str, metavar='MODEL',
                   help='name of the model to train (default: dynamixer_s)')
group.add_argument('--pretrained', action='store_true',
                   help='start from pretrained weights (--pretrained-path or the model default); the head is '
                        're-initialised when --num-classes differs')
group.add_argument('--pretrained-path', default=None, type=str, metavar='FILE',
                   help='file with pretrained weights for --pretrained (class count and img size are adapted)')
group.add_argument('--initial-checkpoint', default='', type=str, metavar='FILE',
                   help='load these weights exactly (same architecture and class count)')
group.add_argument('--resume', default='', type=str, metavar='PATH|auto',
                   help="resume the full training state from a checkpoint, or 'auto': the latest checkpoint "
                        'of --experiment in --output (training continues in that folder)')
group.add_argument('--no-resume-opt', action='store_true', help='do not restore the optimizer state on resume')
group.add_argument('--num-classes', type=int, default=None, metavar='N',
                   help='number of classes (default: the number of classes of the training set)')
group.add_argument('--gp', default=None, type=str, metavar='POOL', help='global pool type override')
group.add_argument('--img-size', type=int, default=None, metavar='N',
                   help='image size; the model is built for it (default: the model default)')
group.add_argument('--in-chans', type=int, default=None, metavar='N', help='image input channels (default: 3)')
group.add_argument('--input-size', default=None, nargs=3, type=int, metavar='N N N',
                   help='input dims (C H W), overrides --img-size and --in-chans')
group.add_argument('--crop-pct', default=None, type=float, metavar='PCT', help='validation center crop percent')
group.add_argument('--mean', type=float, nargs='+', default=None, metavar='MEAN', help='override dataset mean')
group.add_argument('--std', type=float, nargs='+', default=None, metavar='STD', help='override dataset std')
group.add_argument('--interpolation', default='', type=str, metavar='NAME', help='validation resize interpolation')
group.add_argument('-b', '--batch-size', type=int, default=128, metavar='N', help='batch size per process')
group.add_argument('-vb', '--validation-batch-size', type=int, default=None, metavar='N',
                   help='validation batch size (default: --batch-size)')
group.add_argument('--grad-accum-steps', type=int, default=1, metavar='N',
                   help='batches accumulated per optimizer step (effective batch = N x batch size x processes)')
group.add_argument('--grad-checkpointing', action='store_true', help='trade compute for memory')
group.add_argument('--torchcompile', nargs='?', type=str, default=None, const='inductor',
                   help='torch.compile the model with this backend (default when given: inductor); DynaMixer '
                        'models are compiled per layer (dynamixer.ops.compile_layers)')
group.add_argument('--compile-memory-budget', type=float, default=None, metavar='B',
                   help='with --torchcompile: activation memory budget in (0, 1] of the compiled backward; below 1 '
                        'it recomputes activations instead of saving them (0.4 keeps dynamixer_s under 120 MiB/img, '
                        'docs/benchmarks.md). Default: torch\'s (1, no extra recomputation)')

group = parser.add_argument_group('Device parameters')
group.add_argument('--device', default=None, type=str,
                   help='cuda, cuda:N or cpu (default: cuda when available, else cpu)')
group.add_argument('--amp', action='store_true', help='mixed precision through torch.autocast')
group.add_argument('--amp-dtype', default='float16', choices=('float16', 'bfloat16'),
                   help='autocast dtype for --amp (default: float16; GradScaler only for float16 on CUDA)')
group.add_argument('--force-amp', action='store_true',
                   help='keep --amp on a CPU without AVX-512, where bfloat16 runs far slower than fp32 and train.py '
                        'otherwise trains in fp32 with a warning')
group.add_argument('--apex-amp', action='store_true',
                   help='accepted for the reference commands: NVIDIA apex is not used, native --amp instead')
group.add_argument('--no-prefetcher', action='store_true', help="disable timm's CUDA prefetcher loader")
group.add_argument('--pin-mem', action='store_true', help='pin CPU memory in the DataLoader')
group.add_argument('--dist-bn', type=str, default='reduce', choices=('broadcast', 'reduce', ''),
                   help='distribute BatchNorm stats between nodes after each epoch (default: reduce)')

group = parser.add_argument_group('Optimizer parameters')
group.add_argument('--opt', default='sgd', type=str, metavar='OPTIMIZER', help='optimizer (default: sgd)')
group.add_argument('--opt-eps', default=None, type=float, metavar='EPSILON', help='optimizer epsilon')
group.add_argument('--opt-betas', default=None, type=float, nargs='+', metavar='BETA', help='optimizer betas')
group.add_argument('--opt-kwargs', nargs='*', default={}, action=ParseKwargs, metavar='KEY=VALUE',
                   help="extra optimizer constructor arguments, e.g. fused=True (one kernel per step for AdamW on the "
                        "CPU and CUDA; timm's flag)")
group.add_argument('--momentum', type=float, default=0.9, metavar='M', help='optimizer momentum (default: 0.9)')
group.add_argument('--weight-decay', type=float, default=2e-5, help='weight decay (default: 2e-5)')
group.add_argument('--clip-grad', type=float, default=None, metavar='NORM', help='clip gradients (default: off)')
group.add_argument('--clip-mode', type=str, default='norm', choices=('norm', 'value', 'agc'),
                   help='gradient clipping mode (default: norm)')
group.add_argument('--layer-decay', type=float, default=None, help='layer-wise learning rate decay (default: off)')

group = parser.add_argument_group('Learning rate schedule parameters')
group.add_argument('--sched', type=str, default='cosine', metavar='SCHEDULER', help='LR scheduler (default: cosine)')
group.add_argument('--sched-on-updates', action='store_true', help='update the LR every optimizer step')
group.add_argument('--lr', type=float, default=0.1, metavar='LR', help='learning rate, used as given (default: 0.1)')
group.add_argument('--lr-noise', type=float, nargs='+', default=None, metavar='pct, pct', help='LR noise epochs')
group.add_argument('--lr-noise-pct', type=float, default=0.67, metavar='PERCENT', help='LR noise limit')
group.add_argument('--lr-noise-std', type=float, default=1.0, metavar='STDDEV', help='LR noise std-dev')
group.add_argument('--lr-cycle-mul', type=float, default=1.0, metavar='MULT', help='LR cycle length multiplier')
group.add_argument('--lr-cycle-decay', type=float, default=0.5, metavar='MULT', help='LR decay per cycle')
group.add_argument('--lr-cycle-limit', type=int, default=1, metavar='N', help='LR cycle limit')
group.add_argument('--lr-k-decay', type=float, default=1.0, help='LR k-decay for cosine/poly')
group.add_argument('--warmup-lr', type=float, default=1e-5, metavar='LR', help='warmup start LR (default: 1e-5)')
group.add_argument('--min-lr', type=float, default=0, metavar='LR', help='lower LR bound (default: 0)')
group.add_argument('--epochs', type=int, default=300, metavar='N', help='number of epochs (default: 300)')
group.add_argument('--start-epoch', default=None, type=int, metavar='N', help='manual epoch number (on restarts)')
group.add_argument('--decay-milestones', default=[90, 180, 270], type=int, nargs='+', metavar='MILESTONES',
                   help='epochs for the multistep scheduler')
group.add_argument('--decay-epochs', type=float, default=90, metavar='N', help='epochs between LR decays')
group.add_argument('--warmup-epochs', type=int, default=5, metavar='N', help='LR warmup epochs (default: 5)')
group.add_argument('--warmup-prefix', action='store_true', help='exclude warmup from the decay schedule')
group.add_argument('--cooldown-epochs', type=int, default=0, metavar='N', help='epochs at min LR after the cycle')
group.add_argument('--patience-epochs', type=int, default=10, metavar='N', help='patience of the plateau scheduler')
group.add_argument('--decay-rate', '--dr', type=float, default=0.1, metavar='RATE', help='LR decay rate')

group = parser.add_argument_group('Augmentation and regularization parameters')
group.add_argument('--no-aug', action='store_true', help='disable all training augmentation')
group.add_argument('--scale', type=float, nargs='+', default=[0.08, 1.0], metavar='PCT',
                   help='random resized crop scale range')
group.add_argument('--ratio', type=float, nargs='+', default=[3. / 4., 4. / 3.], metavar='RATIO',
                   help='random resized crop aspect ratio range')
group.add_argument('--hflip', type=float, default=0.5, help='horizontal flip probability')
group.add_argument('--vflip', type=float, default=0., help='vertical flip probability')
group.add_argument('--color-jitter', type=float, default=0.4, metavar='PCT', help='color jitter (default: 0.4)')
group.add_argument('--aa', type=str, default=None, metavar='NAME',
                   help='AutoAugment policy, e.g. rand-m9-mstd0.5-inc1 (default: none)')
group.add_argument('--aug-repeats', type=float, default=0, help='repeated augmentation count (default: 0)')
group.add_argument('--aug-splits', type=int, default=0, help='augmentation splits (default: 0)')
group.add_argument('--reprob', type=float, default=0., metavar='PCT', help='random erase probability')
group.add_argument('--remode', type=str, default='pixel', help="random erase mode (default: 'pixel')")
group.add_argument('--recount', type=int, default=1, help='random erase count (default: 1)')
group.add_argument('--resplit', action='store_true', help='do not random erase the first augmentation split')
group.add_argument('--mixup', type=float, default=0.0, help='mixup alpha, mixup on if > 0 (default: 0)')
group.add_argument('--cutmix', type=float, default=0.0, help='cutmix alpha, cutmix on if > 0 (default: 0)')
group.add_argument('--cutmix-minmax', type=float, nargs='+', default=None, help='cutmix min/max ratio')
group.add_argument('--mixup-prob', type=float, default=1.0, help='probability of mixup or cutmix per batch')
group.add_argument('--mixup-switch-prob', type=float, default=0.5,
                   help='probability of cutmix instead of mixup when both are on')
group.add_argument('--mixup-mode', type=str, default='batch', help="'batch', 'pair' or 'elem'")
group.add_argument('--mixup-off-epoch', default=0, type=int, metavar='N', help='turn mixup off after this epoch')
group.add_argument('--smoothing', type=float, default=0.1, help='label smoothing (default: 0.1)')
group.add_argument('--train-interpolation', type=str, default='random', help="training interpolation")
group.add_argument('--drop', type=float, default=0.0, metavar='PCT', help='dropout rate (default: 0)')
group.add_argument('--drop-path', type=float, default=None, metavar='PCT', help='drop path rate')
group.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs, metavar='KEY=VALUE',
                   help="extra model constructor arguments, e.g. generator='static' reweight=False (timm's flag)")
group.add_argument('--model-ema', action='store_true', help='keep an EMA of the weights, validated beside the model')
group.add_argument('--model-ema-force-cpu', action='store_true', help='keep the EMA on the CPU (not validated)')
group.add_argument('--model-ema-decay', type=float, default=0.9998, help='EMA decay (default: 0.9998)')
group.add_argument('--model-ema-warmup', action='store_true', help='warm up the EMA decay')

group = parser.add_argument_group('Miscellaneous parameters')
group.add_argument('--seed', type=int, default=42, metavar='S', help='random seed (default: 42)')
group.add_argument('--log-interval', type=int, default=50, metavar='N', help='optimizer steps between log lines')
group.add_argument('--recovery-interval', type=int, default=0, metavar='N',
                   help='save a recovery checkpoint every N optimizer steps (default: 0, off)')
group.add_argument('--checkpoint-hist', type=int, default=10, metavar='N', help='number of checkpoints to keep')
group.add_argument('-j', '--workers', type=int, default=4, metavar='N', help='data loading processes (default: 4)')
group.add_argument('--in-memory', action='store_true',
                   help='small fixed-size datasets (Fashion-MNIST, CIFAR): decode the training set once into one '
                        'tensor on --device and augment whole batches there (crop, flips, erasing, mixup), no '
                        'worker processes (dynamixer.data.InMemoryLoader); validation is unchanged')
group.add_argument('--output', default='', type=str, metavar='PATH',
                   help='folder of experiments (default: ./output/train)')
group.add_argument('--experiment', default='', type=str, metavar='NAME',
                   help='experiment folder name (default: date-model-size); an existing one is never '
                        'overwritten: a -1, -2 ... suffix is added unless resuming')
group.add_argument('--eval-metric', default='top1', type=str, metavar='EVAL_METRIC',
                   help='metric that ranks checkpoints (default: top1)')
group.add_argument('--final-tta-hflip', action='store_true',
                   help='after the last epoch, evaluate the final weights (and the EMA) once more in fp32 with '
                        'horizontal-flip test-time augmentation, as validate.py --tta-hflip does; the result goes '
                        'to the log and to final_tta_hflip.json in the experiment folder')


def error_exit(message: str, status: int = 2):
    print(f'error: {message}', file=sys.stderr, flush=True)
    sys.exit(status)


def _parser_with_defaults(cfg):
    """A copy of `parser` whose defaults are the config's keys: the module's parser stays as it is, so a later
    parse in the same process (tests, notebooks, main(argv)) does not inherit this config's values."""
    p = copy.deepcopy(parser)
    p.set_defaults(**{k.replace('-', '_'): v for k, v in cfg.items()})
    return p


def _parse_args(argv=None):
    """Two-stage parse: the config file's keys become defaults, then the command line overrides them."""
    args_config, remaining = config_parser.parse_known_args(argv)
    if args_config.config:
        try:
            with open(args_config.config) as f:
                cfg = yaml.safe_load(f) or {}
        except OSError as e:
            raise ConfigError(f"config '{args_config.config}': {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config '{args_config.config}': not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"config '{args_config.config}': expected a mapping of flag names to values")
        known = {a.dest for a in parser._actions}
        unknown = sorted(k for k in cfg if k.replace('-', '_') not in known)
        if unknown:
            raise ConfigError(f"config '{args_config.config}': unknown keys {', '.join(unknown)} "
                              "(keys are train.py flag names with '_', e.g. drop_path)")
    args = (_parser_with_defaults(cfg) if args_config.config else parser).parse_args(remaining)
    args.config = args_config.config
    args_text = yaml.safe_dump(args.__dict__, default_flow_style=False)
    return args, args_text


def _resolve_args(args):
    """Settle flags that depend on each other; raise ConfigError for impossible combinations."""
    if args.data and args.data_dir and args.data != args.data_dir:
        raise ConfigError(f'two data dirs given ({args.data} and --data-dir {args.data_dir}): give one')
    args.data_dir = args.data_dir or args.data
    if args.input_size is not None:
        args.in_chans, args.img_size = args.input_size[0], args.input_size[1]
    args.in_chans = args.in_chans or 3
    if args.grad_accum_steps < 1:
        raise ConfigError('--grad-accum-steps must be >= 1')
    if args.batch_size < 1:
        raise ConfigError('-b/--batch-size must be >= 1')
    if args.compile_memory_budget is not None:
        if not args.torchcompile:
            raise ConfigError('--compile-memory-budget applies to compiled models: add --torchcompile')
        if not 0 < args.compile_memory_budget <= 1:
            raise ConfigError(f'--compile-memory-budget must be in (0, 1], got {args.compile_memory_budget}')
    if args.pretrained_path and not args.pretrained:
        args.pretrained = True  # a path without --pretrained can only mean "start from these weights"
    if args.pretrained and args.initial_checkpoint:
        raise ConfigError('give either --pretrained(-path) or --initial-checkpoint, not both')
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.apex_amp:
        _logger.info('--apex-amp: NVIDIA apex is not used; mixed precision through native torch.autocast instead')
        args.amp = True
    args.prefetcher = not args.no_prefetcher and args.device.startswith('cuda')
    if args.in_memory:
        unsupported = [flag for flag, on in (
            ('--color-jitter', args.color_jitter), ('--aa', args.aa), ('--aug-repeats', args.aug_repeats),
            ('--aug-splits', args.aug_splits)) if on and not args.no_aug]
        if unsupported:
            raise ConfigError(f'--in-memory augments with crops, flips, random erasing and mixup only: set '
                              f'{" and ".join(f + " 0" if f != "--aa" else "no --aa" for f in unsupported)}, '
                              'or drop --in-memory')
    # restarted by torchrun (--max-restarts): continue from the latest checkpoint of this run
    restart_count = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0') or 0)
    max_restarts = int(os.environ.get('TORCHELASTIC_MAX_RESTARTS', '0') or 0)
    if max_restarts > 0 and not args.experiment:
        run_id = os.environ.get('TORCHELASTIC_RUN_ID', '')
        if run_id in ('', 'none'):
            raise ConfigError('torchrun --max-restarts needs --experiment NAME so that a restarted worker '
                              'finds the checkpoints of its run')
        args.experiment = f'{args.model}-{run_id}'
    if restart_count > 0 and not args.resume:
        _logger.info(f'Restart {restart_count} by torchrun: resuming from the latest checkpoint (--resume auto)')
        args.resume = 'auto'
    return args


def _amp_setup(args, device):
    """(autocast dtype or None, timm NativeScaler or None)."""
    from dynamixer.engine import cpu_amp_dtype
    if not args.amp:
        return None, None
    amp_dtype = torch.bfloat16 if args.amp_dtype == 'bfloat16' else torch.float16
    if device.type == 'cpu' and amp_dtype == torch.float16:
        if not args.apex_amp:
            _logger.info('--amp on CPU: float16 autocast is not supported well there, using bfloat16')
        amp_dtype = torch.bfloat16
    if device.type == 'cpu':
        amp_dtype = cpu_amp_dtype(amp_dtype, force=args.force_amp)
        if amp_dtype is None:
            return None, None
    loss_scaler = None
    if amp_dtype == torch.float16 and device.type == 'cuda':
        from timm.utils import NativeScaler
        loss_scaler = NativeScaler(device='cuda')
    _logger.info(f'Mixed precision: torch.autocast({device.type}, {amp_dtype})'
                 + (' with a GradScaler' if loss_scaler is not None else ''))
    return amp_dtype, loss_scaler


def _create_datasets(args):
    try:
        from dynamixer.data import DataError, create_image_dataset, dataset_num_classes
    except ImportError as e:  # dynamixer.data is optional for timm-only use
        raise ConfigError(f'dynamixer.data is not available ({e}); reinstall the package') from None
    common = dict(class_map=args.class_map, in_chans=args.in_chans, download=args.dataset_download,
                  strict=args.strict_data)
    try:
        train = create_image_dataset(args.dataset, args.data_dir, split=args.train_split, is_training=True,
                                     num_samples=args.train_num_samples, **common)
        val = create_image_dataset(args.dataset, args.data_dir, split=args.val_split, is_training=False,
                                   num_samples=args.val_num_samples, **common)
    except DataError as e:
        raise ConfigError(str(e)) from None
    if len(train) == 0:
        raise ConfigError(f"no training images in data dir '{args.data_dir}'")
    return train, val, dataset_num_classes(train)


def _create_model(args):
    import timm
    from dynamixer.checkpoint import CheckpointError, load_checkpoint_file, state_dict_from_checkpoint
    from dynamixer.engine import create_model

    if not timm.is_model(args.model):
        dyn = ', '.join(timm.list_models('dynamixer*'))
        raise ConfigError(f"unknown model '{args.model}': choose one of {dyn} or another timm model name")
    kwargs = dict(num_classes=args.num_classes, in_chans=args.in_chans, drop_rate=args.drop)
    if args.drop_path is not None:
        kwargs['drop_path_rate'] = args.drop_path
    kwargs.update(args.model_kwargs)
    if args.gp is not None:
        kwargs['global_pool'] = args.gp
    if args.img_size is not None:
        kwargs['img_size'] = args.img_size
    if args.pretrained_path:
        # check the file here so a bad one is one clear line, timm loads it (weights_only) afterwards
        try:
            pretrained_num_classes = state_dict_from_checkpoint(load_checkpoint_file(args.pretrained_path))
        except CheckpointError as e:
            raise ConfigError(f'--pretrained-path: {e}') from None
        head = [v for k, v in pretrained_num_classes.items() if k.endswith('head.weight') or k.endswith('fc.weight')]
        src_classes = head[0].shape[0] if head else None
        kwargs['pretrained_cfg_overlay'] = dict(file=args.pretrained_path, num_classes=src_classes or 1000)
    try:
        model = create_model(args.model, pretrained=args.pretrained, **kwargs)  # CNNs: without img_size
    except (ValueError, RuntimeError, TypeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if args.pretrained_path:
            raise ConfigError(f"--pretrained-path '{args.pretrained_path}': {msg}") from None
        raise ConfigError(f"could not build '{args.model}' ({msg})") from None
    if args.pretrained and model.num_classes != model.pretrained_cfg.get('num_classes', model.num_classes):
        _logger.info(f"Pretrained head ({model.pretrained_cfg.get('num_classes')} classes) dropped: "
                     f'classifier re-initialised for {model.num_classes} classes')
    if args.initial_checkpoint:
        try:
            state_dict = state_dict_from_checkpoint(load_checkpoint_file(args.initial_checkpoint))
        except CheckpointError as e:
            raise ConfigError(f'--initial-checkpoint: {e}') from None
        own = model.state_dict()
        wrong = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
        classifier = model.pretrained_cfg.get('classifier', 'head')
        if any(k.startswith(classifier + '.') for k in wrong):
            src = state_dict[f'{classifier}.weight'].shape[0]
            raise ConfigError(
                f"--initial-checkpoint '{args.initial_checkpoint}' has {src} classes but the model has "
                f'{model.num_classes}: use --pretrained-path {args.initial_checkpoint} instead, which '
                're-initialises the head for the new class count')
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected or wrong:
            problems = [f'{len(v)} {what} (e.g. {", ".join(v[:2])})' for what, v in
                        (('missing keys', missing), ('unexpected keys', unexpected), ('shape mismatches', wrong)) if v]
            raise ConfigError(f"--initial-checkpoint '{args.initial_checkpoint}' does not fit '{args.model}': "
                              f"{'; '.join(problems)} (--pretrained-path adapts the class count and image "
                              'size, not the architecture)')
        model.load_state_dict(state_dict)
        _logger.info(f"Loaded initial weights from '{args.initial_checkpoint}'")
    return model


class _SigtermStop:
    """SIGTERM (a scheduler's preemption, `kill`, torchrun stopping its workers) as a request to stop cleanly.

    One process: the current optimizer step finishes, a recovery checkpoint is saved, and train.py exits with
    status 143 and the command that resumes; a second SIGTERM stops at once. Distributed runs keep SIGTERM's
    default action: the processes would see it at different steps, and torchrun uses it to stop workers that may
    be blocked in a collective with a dead peer; the last epoch or recovery checkpoint resumes there. Installed in
    the main thread only, and the previous handler is restored on exit.
    """

    def __init__(self, enabled: bool):  # disabled: never requested, SIGTERM keeps its action
        self.enabled, self.requested, self.epoch, self._previous = enabled, False, 0, None

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum, frame):
        from dynamixer.engine import TrainingStopped
        if self.requested:
            raise TrainingStopped(self.epoch, None, saved=False)
        self.requested = True
        _logger.info('SIGTERM: stopping after this optimizer step (in validation: after the epoch checkpoint), '
                     'state saved')

    def is_requested(self) -> bool:
        return self.requested


def _output_dir(args):
    """Primary process: the run folder. A new run never reuses an existing folder; a resume continues one:
    `--resume PATH` the folder of --experiment (or, without it, the checkpoint's folder), `--resume auto` the
    newest folder of --experiment (NAME, NAME-1, NAME-2, ...: the one the interrupted attempt wrote)."""
    from timm.utils import get_outdir
    base = args.output or './output/train'
    if args.resume and args.resume != 'auto':
        if not args.experiment:
            return os.path.dirname(os.path.abspath(args.resume))
        return os.path.join(base, args.experiment)
    exp_name = args.experiment or '-'.join([
        datetime.now().strftime('%Y%m%d-%H%M%S'), args.model.replace('/', '_'), str(args.img_size or 'default')])
    if args.resume == 'auto' and os.path.isdir(os.path.join(base, exp_name)):
        suffixes = [0] + [int(d[len(exp_name) + 1:]) for d in os.listdir(base)
                          if d.startswith(exp_name + '-') and d[len(exp_name) + 1:].isdigit()]
        newest = max(suffixes)
        return os.path.join(base, exp_name if newest == 0 else f'{exp_name}-{newest}')
    return get_outdir(base, exp_name, inc=True)


def _init_distributed(args):
    """timm's `init_distributed_device`, except after a torchrun restart.

    torchrun keeps its TCP store across restarts; a restarted gloo group would read the addresses of the
    previous attempt's dead workers from it and fail ('connectFullMesh ... Connection refused'). After a
    restart the process group is therefore created on the same store under a fresh key prefix.
    """
    import torch.distributed as dist
    from timm.utils import init_distributed_device
    restart = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0') or 0)
    if restart == 0 or int(os.environ.get('WORLD_SIZE', '1')) <= 1:
        return init_distributed_device(args)
    device_type = args.device.split(':')[0]
    store, rank, world_size = next(dist.rendezvous('env://'))
    dist.init_process_group('nccl' if device_type == 'cuda' else 'gloo',
                            store=dist.PrefixStore(f'/restart_{restart}', store), rank=rank, world_size=world_size)
    args.distributed, args.world_size, args.rank = True, world_size, rank
    args.local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if device_type == 'cuda':
        args.device = f'cuda:{args.local_rank}'
        torch.cuda.set_device(args.device)
    return torch.device(args.device)


def _write_summary(epoch, train_metrics, eval_metrics, filename, lr):
    """Append the epoch's row to summary.csv, first dropping rows of this or later epochs (left by a run
    that was stopped after writing them, before its checkpoint): each epoch appears exactly once."""
    from timm.utils import update_summary
    if os.path.exists(filename):
        with open(filename, newline='') as f:
            rows = list(csv.reader(f))
        if len(rows) > 1 and any(int(r[0]) >= epoch for r in rows[1:] if r):
            kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epoch]
            tmp = filename + '.tmp'
            with open(tmp, 'w', newline='') as f:
                csv.writer(f).writerows(kept)
            os.replace(tmp, filename)
    update_summary(epoch, train_metrics, eval_metrics, filename, lr=lr)


def _final_tta_hflip(model, model_ema, loader_eval, loss_fn, device, args, epoch, output_dir, primary):
    """The final weights (and EMA) evaluated once more with horizontal-flip TTA in fp32, the numbers that
    `validate.py --tta-hflip` gives for last.pth.tar; logged and written to final_tta_hflip.json."""
    from dynamixer.engine import evaluate
    result = dict(epoch=epoch, tta='hflip', precision='float32')
    for prefix, m in (('', model), ('ema_', model_ema)):
        if m is None:
            continue
        metrics = evaluate(m, loader_eval, loss_fn, device, amp_dtype=None, distributed=args.distributed,
                           log_interval=0, is_primary=primary, tta_hflip=True)
        result.update((prefix + k, v) for k, v in metrics.items())
    if primary:
        with open(os.path.join(output_dir, 'final_tta_hflip.json'), 'w') as f:
            json.dump(result, f, indent=2)
        msg = f"*** Final top-1 with flip TTA (fp32): {result['top1']:.2f}"
        if 'ema_top1' in result:
            msg += f" (EMA {result['ema_top1']:.2f})"
        print(msg, flush=True)


def main(argv=None):
    from timm.utils import setup_default_logging
    setup_default_logging()
    args, args_text = _parse_args(argv)
    args = _resolve_args(args)

    import torch.distributed as dist
    import timm
    import dynamixer  # noqa: F401  registers dynamixer_* with timm
    from timm.data import FastCollateMixup, Mixup, create_loader, resolve_data_config
    from dynamixer.data import DataError, InMemoryLoader
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2, optimizer_kwargs
    from timm.scheduler import create_scheduler_v2, scheduler_kwargs
    from timm.utils import ModelEmaV3, distribute_bn, random_seed
    from dynamixer.checkpoint import CheckpointSaver, find_latest_checkpoint, get_rng_state, resume_checkpoint
    from dynamixer.data import log_skipped_files
    from dynamixer.engine import TrainingStopped, cpu_line, evaluate, train_one_epoch
    from dynamixer.model import DynaMixerLayer
    from dynamixer.ops import compile_layers

    if not timm.is_model(args.model):  # before reading the data: a typo should not wait for a dataset scan
        raise ConfigError(f"unknown model '{args.model}': choose one of {', '.join(timm.list_models('dynamixer*'))} "
                          'or another timm model name')
    device = _init_distributed(args)
    primary = args.rank == 0
    if args.distributed:
        _logger.info(f'Distributed training: process {args.rank} of {args.world_size} on {device} '
                     f'({dist.get_backend()})')
    else:
        _logger.info(f'Training on a single process on {device}')
    if device.type == 'cpu':
        _logger.info(cpu_line())
    if not primary:
        logging.getLogger().setLevel(logging.WARNING)
    random_seed(args.seed, args.rank)

    dataset_train, dataset_eval, data_classes = _create_datasets(args)
    if args.num_classes is None:
        args.num_classes = data_classes or 1000
        _logger.info(f'--num-classes {args.num_classes} (from the training set)')
    elif data_classes and data_classes > args.num_classes:
        raise ConfigError(f'the training set has {data_classes} classes but --num-classes is {args.num_classes}')

    model = _create_model(args)
    if args.grad_checkpointing:
        model.set_grad_checkpointing(enable=True)
    if primary:
        _logger.info(f'Model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters')

    data_config = resolve_data_config(vars(args), model=model)
    for key in ('mean', 'std'):
        values = tuple(data_config[key])
        if len(values) != args.in_chans:
            if len(values) == 1:  # a grey model's statistics for RGB input: the same value per channel
                data_config[key] = values * args.in_chans
            elif args.in_chans == 1:  # grey images: one value (timm's defaults are per RGB channel)
                data_config[key] = (sum(values) / len(values),)
            else:
                raise ConfigError(f'--{key} has {len(values)} values for {args.in_chans} input channels')
    data_config['input_size'] = (args.in_chans,) + tuple(data_config['input_size'][1:])
    if primary:
        _logger.info('Data config: ' + ', '.join(f'{k} {v}' for k, v in data_config.items()))

    model.to(device)
    try:
        optimizer = create_optimizer_v2(model, **dict(optimizer_kwargs(cfg=args), **args.opt_kwargs))
    except (TypeError, RuntimeError, ValueError) as e:
        if not args.opt_kwargs:
            raise
        raise ConfigError(f'--opt-kwargs {args.opt_kwargs} not accepted by --opt {args.opt}: {e}') from None
    amp_dtype, loss_scaler = _amp_setup(args, device)
    model_ema = None
    if args.model_ema:
        model_ema = ModelEmaV3(model, decay=args.model_ema_decay, use_warmup=args.model_ema_warmup,
                               device='cpu' if args.model_ema_force_cpu else None)

    # data
    mixup_fn, collate_fn = None, None
    mixup_active = args.mixup > 0 or args.cutmix > 0. or args.cutmix_minmax is not None
    if mixup_active:
        mixup_args = dict(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
                          prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
                          label_smoothing=args.smoothing, num_classes=args.num_classes)
        if args.prefetcher and not args.in_memory:
            collate_fn = FastCollateMixup(**mixup_args)
        else:
            mixup_fn = Mixup(**mixup_args)
    if args.in_memory:
        try:
            loader_train = InMemoryLoader(
                dataset_train, batch_size=args.batch_size, img_size=data_config['input_size'][-1],
                mean=data_config['mean'], std=data_config['std'], scale=args.scale, ratio=args.ratio,
                hflip=args.hflip, vflip=args.vflip, re_prob=args.reprob, re_mode=args.remode,
                re_count=args.recount, no_aug=args.no_aug, distributed=args.distributed,
                world_size=args.world_size, rank=args.rank, seed=args.seed, device=device)
        except DataError as e:
            raise ConfigError(str(e)) from None
        if primary:
            _logger.info(f'--in-memory: {len(dataset_train)} training images in one '
                         f'{tuple(loader_train.images.shape)} uint8 tensor on {device}')
    else:
        loader_train = create_loader(
            dataset_train, input_size=data_config['input_size'], batch_size=args.batch_size, is_training=True,
            no_aug=args.no_aug, re_prob=args.reprob, re_mode=args.remode, re_count=args.recount,
            re_split=args.resplit, scale=args.scale, ratio=args.ratio, hflip=args.hflip, vflip=args.vflip,
            color_jitter=args.color_jitter, auto_augment=args.aa, num_aug_repeats=args.aug_repeats,
            num_aug_splits=args.aug_splits, interpolation=args.train_interpolation, mean=data_config['mean'],
            std=data_config['std'], num_workers=args.workers, distributed=args.distributed, collate_fn=collate_fn,
            pin_memory=args.pin_mem, device=device, use_prefetcher=args.prefetcher,
            # workers restart each epoch (a few seconds) so that an epoch's augmentations depend only on
            # (seed, epoch): a resumed run then sees exactly the batches of the uninterrupted one
            persistent_workers=False)
    loader_eval = create_loader(
        dataset_eval, input_size=data_config['input_size'],
        batch_size=args.validation_batch_size or args.batch_size, is_training=False,
        interpolation=data_config['interpolation'], mean=data_config['mean'], std=data_config['std'],
        num_workers=args.workers, distributed=args.distributed, crop_pct=data_config['crop_pct'],
        pin_memory=args.pin_mem, device=device, use_prefetcher=args.prefetcher)
    if len(loader_train) == 0:
        raise ConfigError(f'the training set ({len(dataset_train)} images) is smaller than one batch '
                          f'(-b {args.batch_size} x {args.world_size} processes): give a smaller -b')

    if mixup_active:
        train_loss_fn = SoftTargetCrossEntropy()  # smoothing is folded into the mixed targets
    elif args.smoothing:
        train_loss_fn = LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    else:
        train_loss_fn = torch.nn.CrossEntropyLoss()
    train_loss_fn, validate_loss_fn = train_loss_fn.to(device), torch.nn.CrossEntropyLoss().to(device)

    updates_per_epoch = (len(loader_train) + args.grad_accum_steps - 1) // args.grad_accum_steps
    lr_scheduler, num_epochs = create_scheduler_v2(optimizer, **scheduler_kwargs(args),
                                                   updates_per_epoch=updates_per_epoch)

    # output folder (decided by the primary process, shared with the others) and resume
    output_dir = _output_dir(args) if primary else None
    if args.distributed:
        shared = [output_dir]
        dist.broadcast_object_list(shared, src=0)
        output_dir = shared[0]
    saver = None
    if primary:
        os.makedirs(output_dir, exist_ok=True)
        args_file = os.path.join(output_dir, 'args.yaml')
        if not os.path.exists(args_file):
            with open(args_file, 'w') as f:
                f.write(args_text)
        saver = CheckpointSaver(model=model, optimizer=optimizer, args=args, model_ema=model_ema,
                                amp_scaler=loss_scaler, checkpoint_dir=output_dir, recovery_dir=output_dir,
                                decreasing=args.eval_metric == 'loss', max_history=args.checkpoint_hist,
                                lr_scheduler=lr_scheduler)
        _logger.info(f'Output folder: {output_dir}')

    start_epoch, resume_state = 0, None
    resume_path = args.resume
    if args.resume == 'auto':
        resume_path = find_latest_checkpoint(output_dir)
        if resume_path is None:
            _logger.info(f'--resume auto: no checkpoint in {output_dir}, starting from scratch')
    if resume_path:
        from dynamixer.checkpoint import CheckpointError
        try:
            resumed = resume_checkpoint(resume_path, model, None if args.no_resume_opt else optimizer,
                                        loss_scaler=loss_scaler, model_ema=model_ema, lr_scheduler=lr_scheduler,
                                        saver=saver, restore_rng=False)
        except CheckpointError as e:
            raise ConfigError(f'--resume: {e}') from None
        start_epoch = resumed['epoch']
        if resumed['step']:
            # a recovery checkpoint: the exact state inside the epoch, per process when distributed
            from dynamixer.checkpoint import load_checkpoint_file
            ckpt = load_checkpoint_file(resume_path)
            rank_states = ckpt.get('rank_states') or []
            if len(rank_states) != args.world_size:
                raise ConfigError(f"--resume: '{resume_path}' was saved mid-epoch by {len(rank_states)} processes, "
                                  f'this run has {args.world_size}: resume from last.pth.tar (epoch boundary)')
            resume_state = dict(rank_states[args.rank], step=resumed['step'])
    if args.start_epoch is not None:
        start_epoch = args.start_epoch
    if start_epoch > 0 or resume_state:
        lr_scheduler.step(start_epoch)
        lr_scheduler.step_update(start_epoch * updates_per_epoch + (resume_state or {}).get('step', 0))

    # wrap after loading: DDP, compile
    train_model = model
    if args.distributed:
        from torch.nn.parallel import DistributedDataParallel as NativeDDP
        train_model = NativeDDP(model, device_ids=[device.index] if device.type == 'cuda' else None)
    if args.torchcompile:
        # in place, so the DDP wrapper, the EMA copy and the checkpoint keys stay the model's. DynaMixer models are
        # compiled per layer (one graph per layer shape reused by every layer: seconds of warm-up instead of
        # minutes, docs/benchmarks.md); other models whole
        compile_layers(model, memory_budget=args.compile_memory_budget, backend=args.torchcompile)
        if model_ema is not None:
            compile_layers(model_ema, backend=args.torchcompile)
        what = 'every DynaMixer layer' if any(isinstance(m, DynaMixerLayer) for m in model.modules()) else 'the model'
        budget = f', activation memory budget {args.compile_memory_budget}' if args.compile_memory_budget else ''
        _logger.info(f'Compiled {what} with torch.compile (backend {args.torchcompile}{budget})')

    def recovery_fn(epoch, step, state):
        # every process's RNG state and running loss, so each resumes exactly where it was
        own = dict(state, rng_state=get_rng_state())
        if args.distributed:
            rank_states = [None] * args.world_size
            dist.all_gather_object(rank_states, own)
        else:
            rank_states = [own]
        if saver is not None:
            saver.extra_state = dict(rank_states=rank_states)
            try:
                saver.save_recovery(epoch, batch_idx=step - 1)
            finally:
                saver.extra_state = {}
            _logger.info(f'Recovery checkpoint saved at epoch {epoch} step {step}')

    if primary:
        _logger.info(f'Scheduled epochs: {num_epochs}, starting at epoch {start_epoch}. '
                     f'{updates_per_epoch} optimizer steps per epoch, LR {args.lr:g} (as given, not scaled)')
    best_metric, best_epoch, eval_metrics = None, None, None
    if saver is not None and saver.best_metric is not None:
        best_metric, best_epoch = saver.best_metric, saver.best_epoch
    stop = _SigtermStop(enabled=not args.distributed)
    try:
        with stop:
            for epoch in range(start_epoch, num_epochs):
                stop.epoch = epoch
                if stop.is_requested():  # the signal came during the previous epoch's last step or its validation
                    raise TrainingStopped(epoch, 0)
                # each epoch's randomness (shuffle, augmentation, drop path, mixup) depends only on (seed, epoch,
                # rank), so a run resumed at an epoch or recovery checkpoint repeats the uninterrupted run
                random_seed(args.seed + 100_003 * epoch, args.rank)
                if hasattr(loader_train.sampler, 'set_epoch'):
                    loader_train.sampler.set_epoch(epoch)
                if mixup_active and args.mixup_off_epoch and epoch >= args.mixup_off_epoch:
                    if collate_fn is not None:
                        loader_train.mixup_enabled = False
                    elif mixup_fn is not None:
                        mixup_fn.mixup_enabled = False
                epoch_start = time.time()
                train_metrics = train_one_epoch(
                    epoch, train_model, loader_train, optimizer, train_loss_fn, device, lr_scheduler=lr_scheduler,
                    amp_dtype=amp_dtype, loss_scaler=loss_scaler, mixup_fn=mixup_fn, model_ema=model_ema,
                    clip_grad=args.clip_grad, clip_mode=args.clip_mode, grad_accum_steps=args.grad_accum_steps,
                    log_interval=args.log_interval, recovery_interval=args.recovery_interval,
                    recovery_fn=recovery_fn,
                    resume_state=resume_state if epoch == start_epoch else None,
                    stop_requested=stop.is_requested, distributed=args.distributed,
                    world_size=args.world_size, is_primary=primary)
                log_skipped_files(dataset_train, f'in training epoch {epoch}')
                if args.distributed and args.dist_bn in ('broadcast', 'reduce'):
                    distribute_bn(model, args.world_size, args.dist_bn == 'reduce')
                eval_metrics = evaluate(train_model, loader_eval, validate_loss_fn, device, amp_dtype=amp_dtype,
                                        distributed=args.distributed, log_interval=args.log_interval,
                                        is_primary=primary)
                log_skipped_files(dataset_eval, f'in validation after epoch {epoch}')
                if model_ema is not None and not args.model_ema_force_cpu:
                    ema_metrics = evaluate(model_ema, loader_eval, validate_loss_fn, device, amp_dtype=amp_dtype,
                                           distributed=args.distributed, log_interval=args.log_interval,
                                           log_prefix='Test (EMA)', is_primary=primary)
                    eval_metrics.update((f'ema_{k}', v) for k, v in ema_metrics.items())
                lr_scheduler.step(epoch + 1, eval_metrics[args.eval_metric])
                if primary:
                    _logger.info(f"Epoch {epoch}: train loss {train_metrics['loss']:.4f}, eval loss "
                                 f"{eval_metrics['loss']:.4f}, top-1 {eval_metrics['top1']:.2f}, "
                                 f"top-5 {eval_metrics['top5']:.2f} ({time.time() - epoch_start:.0f} s)")
                    _write_summary(epoch, train_metrics, eval_metrics, os.path.join(output_dir, 'summary.csv'),
                                   lr=train_metrics['lr'])
                    best_metric, best_epoch = saver.save_checkpoint(epoch, metric=eval_metrics[args.eval_metric])
                    saver.remove_recovery()
    except TrainingStopped as e:
        base, name = os.path.split(os.path.normpath(output_dir))
        e.args = (f'{e}; resume with the same command and --resume auto --output {base} --experiment {name}',)
        raise
    if args.distributed:
        dist.barrier()
    if primary and eval_metrics is not None:
        msg = f"*** Final top-1: {eval_metrics['top1']:.2f}"
        if best_metric is not None:
            msg += f'; best {args.eval_metric}: {best_metric:.2f} (epoch {best_epoch})'
        print(msg, flush=True)
    if args.final_tta_hflip and eval_metrics is not None:
        _final_tta_hflip(train_model, model_ema if not args.model_ema_force_cpu else None, loader_eval,
                         validate_loss_fn, device, args, num_epochs - 1, output_dir, primary)
    if args.distributed:
        dist.destroy_process_group()


def _run(argv=None):
    """Command-line entry: `main`, with expected failures turned into one `error:` line and an exit status."""
    from dynamixer.checkpoint import CheckpointError
    from dynamixer.engine import TrainingError, TrainingStopped
    try:
        from dynamixer.data import DataError
    except ImportError:
        DataError = ConfigError
    try:
        main(argv)
    except ConfigError as e:
        error_exit(str(e), 2)
    except (TrainingError, CheckpointError, DataError) as e:  # the run stopped; the message says why and what to do
        error_exit(str(e), 1)
    except TrainingStopped as e:  # SIGTERM
        error_exit(str(e), 128 + signal.SIGTERM)
    except KeyboardInterrupt:
        error_exit('interrupted; resume with --resume auto --experiment NAME (or --resume PATH/last.pth.tar)', 130)


if __name__ == '__main__':
    _run()
