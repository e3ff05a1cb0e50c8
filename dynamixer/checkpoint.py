"""Checkpoint files: safe loading, atomic saving, resuming.

* `load_checkpoint_file` only ever unpickles with `torch.load(..., weights_only=True)` (or reads
  safetensors), so a checkpoint from the internet cannot run code on load. Every failure becomes a
  `CheckpointError` whose message is one line naming the file and the problem.
* `atomic_save` writes to a temp file in the destination directory, fsyncs it and renames it over the
  destination: a kill or a full disk during a save leaves the previous checkpoint intact.
* `CheckpointSaver` is timm's saver (`last`, `model_best`, `checkpoint-N` with `--checkpoint-hist`)
  with its save primitive replaced by `atomic_save` and a state that loads with weights_only=True.
* `training_args` and `load_weights` give validation and fine-tuning the model settings and the weights
  of a checkpoint, mapped onto the model or refused with the flag to pass.
* `resume_checkpoint` restores model, optimizer, scaler, EMA, scheduler, epoch and step-in-epoch.
* `find_latest_checkpoint` picks the most advanced readable checkpoint of a run (`--resume auto`).
"""
import errno
import glob
import logging
import os
import pickle
import random
import sys
import tempfile
import warnings
import zipfile
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from timm.models import clean_state_dict
from timm.utils import CheckpointSaver as _TimmCheckpointSaver
from timm.utils import get_state_dict, unwrap_model

_logger = logging.getLogger(__name__)

__all__ = [
    'CheckpointError', 'load_checkpoint_file', 'state_dict_from_checkpoint', 'training_args', 'load_weights',
    'atomic_save',
    'CheckpointSaver', 'resume_checkpoint', 'find_latest_checkpoint', 'get_rng_state', 'set_rng_state',
]

RECOVERY_PREFIX = 'recovery'


class CheckpointError(Exception):
    """A checkpoint could not be read or written; the message is one line naming the file and why."""


def _describe_load_error(err: BaseException) -> str:
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    msg = msg.split('. ')[0]  # torch appends paragraphs of advice; keep the first sentence
    if 'weights only load failed' in str(err).lower() or 'unsupported global' in str(err).lower():
        return ('refused: it contains pickled Python objects that could run arbitrary code when loaded '
                '(only tensors and plain containers are accepted); re-save it as a plain state_dict '
                'from a trusted source')
    if isinstance(err, (EOFError, zipfile.BadZipFile)) or any(
            s in msg for s in ('central directory', 'failed reading', 'truncated', 'file read failed',
                               'Invalid magic')):
        return f'truncated or corrupt file ({msg})'
    if isinstance(err, (pickle.UnpicklingError, KeyError, ValueError, UnicodeDecodeError)) or 'invalid load key' in msg:
        return 'not a PyTorch checkpoint (unrecognised file format)'
    return f'unreadable ({type(err).__name__}: {msg})'


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Dict[str, Any]:
    """Load a checkpoint without ever executing code from it.

    Args:
        path: a `.pth`/`.pth.tar`/`.pt`/`.bin` file written by `torch.save`, or a `.safetensors` file.
        map_location: where tensors are placed.

    Returns:
        The checkpoint dict: either a training checkpoint (`state_dict`, `optimizer`, `epoch`, ...) or a
        bare state_dict (parameter name -> tensor).

    Raises:
        CheckpointError: missing file, truncated/corrupt file, not a checkpoint, or a pickle that needs
            arbitrary code; the message is one line that names the file.
    """
    path = str(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint '{path}': file not found")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint '{path}': is a directory, expected a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint '{path}': empty file (an interrupted save?)")
    if path.endswith('.safetensors'):
        try:
            import safetensors.torch
            device = str(map_location) if map_location is not None else 'cpu'
            return dict(safetensors.torch.load_file(path, device=device))
        except Exception as e:  # safetensors raises its own error types for bad headers
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"checkpoint '{path}': not a valid safetensors file ({reason})") from None
    with open(path, 'rb') as f:
        magic = f.read(2)
    if magic != b'PK' and not magic.startswith(b'\x80'):  # torch.save writes a zip archive (or, legacy, a pickle)
        raise CheckpointError(
            f"checkpoint '{path}': not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle; "
            "expected a .pth/.pth.tar/.pt file or a .safetensors file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # e.g. pickle protocol notices: the error below says what matters
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        raise CheckpointError(f"checkpoint '{path}': {_describe_load_error(e)}") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"checkpoint '{path}': not a checkpoint (contains a {type(checkpoint).__name__}, "
            "expected a dict with a state_dict or of parameter tensors)")
    is_training = any(k in checkpoint for k in ('state_dict', 'state_dict_ema', 'model', 'model_ema'))
    has_tensors = any(isinstance(v, torch.Tensor) for v in checkpoint.values())
    if not (is_training or has_tensors):
        raise CheckpointError(
            f"checkpoint '{path}': not a checkpoint (a dict without 'state_dict' or parameter tensors; "
            f"keys: {', '.join(list(map(str, checkpoint))[:5])})")
    return checkpoint


def state_dict_from_checkpoint(checkpoint: Dict[str, Any], use_ema: bool = False) -> Dict[str, torch.Tensor]:
    """The model weights inside a checkpoint dict, `module.` prefixes removed.

    Args:
        checkpoint: as returned by `load_checkpoint_file`.
        use_ema: take the EMA weights (`state_dict_ema`) when present.
    """
    for key in (('state_dict_ema', 'model_ema') if use_ema else ()) + ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return clean_state_dict(checkpoint[key])
    return clean_state_dict(checkpoint)


# train.py records its args in its checkpoints; these decide the model and its input
TRAINING_ARGS = ('model', 'model_kwargs', 'num_classes', 'img_size', 'in_chans', 'mean', 'std', 'crop_pct', 'crop_mode',
                 'interpolation')


def training_args(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The model and input settings (`TRAINING_ARGS`) train.py stored in a checkpoint; {} for other files.

    `img_size` and `in_chans` are also taken from a stored `input_size` (C, S, S).
    """
    args = checkpoint.get('args')
    if not isinstance(args, dict):
        return {}
    args = dict(args)
    input_size = args.get('input_size')
    if isinstance(input_size, (list, tuple)) and len(input_size) == 3 and input_size[1] == input_size[2]:
        args.setdefault('in_chans', input_size[0])
        args['img_size'] = args.get('img_size') or input_size[1]
    return {k: args[k] for k in TRAINING_ARGS if args.get(k) not in (None, '', {})}


def load_weights(model: torch.nn.Module, checkpoint: Dict[str, Any], path: str, use_ema: bool = False) -> None:
    """Load a checkpoint (as read by `load_checkpoint_file`) into `model`, mapping other layouts (the
    reference's, another input size) with the model's `checkpoint_filter_fn`.

    Raises:
        CheckpointError: no EMA weights for `use_ema`, or the weights are of another architecture, class
            count, input size or channel count (the message names the flag to pass).
    """
    name = (getattr(model, 'pretrained_cfg', None) or {}).get('architecture') or type(model).__name__
    if use_ema and not any(isinstance(checkpoint.get(k), dict) for k in ('state_dict_ema', 'model_ema')):
        raise CheckpointError(f"checkpoint '{path}' holds no EMA weights (state_dict_ema): drop --use-ema")
    state_dict = {k: v for k, v in state_dict_from_checkpoint(checkpoint, use_ema).items() if isinstance(v, torch.Tensor)}
    own = model.state_dict()
    fits = state_dict.keys() == own.keys() and all(state_dict[k].shape == v.shape for k, v in own.items())
    filter_fn = getattr(sys.modules.get(type(model).__module__), 'checkpoint_filter_fn', None)
    if not fits and filter_fn is not None:  # another layout (the reference's) or another input size
        try:
            state_dict = filter_fn(state_dict, model)
        except Exception as e:  # a filter fed another architecture's keys may fail in any way; say which file
            raise CheckpointError(f"checkpoint '{path}': {(str(e).splitlines() or [type(e).__name__])[0]}; "
                                  f'pass the --model it was trained with') from None
        _logger.info(f'checkpoint {path} mapped onto {name} by its checkpoint_filter_fn')

    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = {k: (tuple(state_dict[k].shape), tuple(v.shape)) for k, v in own.items()
             if k in state_dict and state_dict[k].shape != v.shape}
    cfg = getattr(model, 'pretrained_cfg', {}) or {}
    classifier, first_conv = cfg.get('classifier', 'head'), cfg.get('first_conv', '')
    classifiers = {f'{c}.weight' for c in ((classifier,) if isinstance(classifier, str) else classifier)}
    if not missing and not unexpected and wrong:
        key = next(iter(wrong))
        (ckpt_shape, model_shape) = wrong[key]
        if set(wrong) <= classifiers | {k.replace('.weight', '.bias') for k in classifiers}:
            raise CheckpointError(f"checkpoint '{path}' has {ckpt_shape[0]} classes but the model was built for "
                                  f'{model_shape[0]}: pass --num-classes {ckpt_shape[0]}')
        if set(wrong) == {f'{first_conv}.weight'}:
            raise CheckpointError(f"checkpoint '{path}' takes {ckpt_shape[1]}-channel images but the model was "
                                  f'built for {model_shape[1]}: pass --in-chans {ckpt_shape[1]}')
    if missing or unexpected or wrong:
        details = [f'{len(missing)} missing keys (e.g. {missing[0]})' if missing else '',
                   f'{len(unexpected)} unexpected keys (e.g. {unexpected[0]})' if unexpected else '',
                   '{} shape mismatches (e.g. {} {} in the checkpoint vs {} in the model)'.format(
                       len(wrong), *next((k, *s) for k, s in wrong.items())) if wrong else '']
        raise CheckpointError(f"checkpoint '{path}' does not fit {name}: " + ', '.join(d for d in details if d)
                              + '; pass the --model, --img-size, --in-chans and --num-classes it was trained with')
    model.load_state_dict(state_dict)


def _fsync_dir(dirname: str) -> None:
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:  # e.g. platforms where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: str) -> None:
    """`torch.save` that never leaves a partial file at `path`.

    Writes to a temp file in the same directory, flushes and fsyncs it, renames it over `path` and fsyncs the
    directory. If anything fails (a full disk, a kill), `path` still holds its previous content.

    Raises:
        CheckpointError: the save failed; the message names the file and the reason (e.g. no space left).
    """
    path = os.path.abspath(path)
    dirname = os.path.dirname(path)
    fd, tmp_path = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=dirname)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException as e:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        if isinstance(e, OSError):
            reason = 'no space left on device' if e.errno == errno.ENOSPC else (e.strerror or str(e))
            kept = 'the previous checkpoint is intact' if os.path.exists(path) else 'nothing was written'
            raise CheckpointError(f"could not save checkpoint '{path}': {reason}; {kept}") from e
        raise
    _fsync_dir(dirname)


def _plain(value: Any) -> Any:
    """Args values reduced to what weights_only=True can load (no argparse.Namespace, no tuples of objects)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def get_rng_state() -> Dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states in a form that loads with weights_only=True."""
    np_state = np.random.get_state()
    state = {
        'python': _plain(random.getstate()),
        'numpy': {'keys': torch.from_numpy(np_state[1].astype(np.int64)), 'pos': int(np_state[2]),
                  'has_gauss': int(np_state[3]), 'cached_gaussian': float(np_state[4])},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of `get_rng_state`."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    n = state['numpy']
    keys = n['keys'].numpy().astype(np.uint32)
    np.random.set_state(('MT19937', keys, n['pos'], n['has_gauss'], n['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class CheckpointSaver(_TimmCheckpointSaver):
    """timm's CheckpointSaver with atomic writes and checkpoints that load with weights_only=True.

    Files in `checkpoint_dir`: `last.pth.tar` (every epoch), `model_best.pth.tar`, `checkpoint-N.pth.tar`
    (the `max_history` best), and `recovery-E-S.pth.tar` (mid-epoch, see `save_recovery`).

    Args:
        lr_scheduler: its state_dict is saved too.
        (others): as timm's `CheckpointSaver`.
    """

    def __init__(self, *args, lr_scheduler=None, **kwargs):
        super().__init__(*args, recovery_prefix=RECOVERY_PREFIX, **kwargs)
        self.lr_scheduler = lr_scheduler
        self.extra_state: Dict[str, Any] = {}  # added to the next save, e.g. per-process RNG states
        # temp files of saves cut short by a kill (atomic_save's names); the real files they would replace are intact
        for stale in glob.glob(os.path.join(self.checkpoint_dir or '.', f'.*{self.extension}.*.tmp')):
            _logger.info(f"removing '{stale}', left by a save that was interrupted")
            try:
                os.remove(stale)
            except OSError:
                pass

    def _build_state(self, epoch: int, metric: Optional[float] = None, step: Optional[int] = None) -> Dict[str, Any]:
        state = {
            'epoch': epoch,
            'version': 2,  # timm convention: `epoch` is the last completed epoch
            'arch': self.args.model if self.args is not None else type(unwrap_model(self.model)).__name__.lower(),
            'state_dict': get_state_dict(self.model, self.unwrap_fn),
            'optimizer': self.optimizer.state_dict(),
            'rng_state': get_rng_state(),
        }
        if step is not None:
            state['step'] = step  # recovery checkpoint: `step` optimizer steps of `epoch` are done
        if self.args is not None:
            state['args'] = _plain(vars(self.args))
        if self.amp_scaler is not None:
            state[self.amp_scaler.state_dict_key] = self.amp_scaler.state_dict()
        if self.model_ema is not None:
            state['state_dict_ema'] = get_state_dict(self.model_ema, self.unwrap_fn)
        if self.lr_scheduler is not None:
            state['lr_scheduler'] = self.lr_scheduler.state_dict()
        if metric is not None:
            state['metric'] = metric
        state['saver'] = self.state_dict(epoch if step is None else None, metric)
        state.update(self.extra_state)
        return state

    def _save(self, save_path, epoch, metric=None):
        atomic_save(self._build_state(epoch, metric), save_path)

    def _replace(self, src, dst):
        os.replace(src, dst)
        _fsync_dir(os.path.dirname(os.path.abspath(dst)))

    def _duplicate(self, src, dst):
        # a hard link to `last` is as durable as `last`; replace `dst` atomically, never unlink it first
        tmp = dst + '.tmp-link'
        if os.path.lexists(tmp):
            os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:
            import shutil
            shutil.copy2(src, tmp)
        self._replace(tmp, dst)

    def save_recovery(self, epoch, batch_idx=0):
        """Save `recovery-{epoch}-{step}.pth.tar` (`step` = `batch_idx + 1` optimizer steps of `epoch` done).

        The two newest recovery files are kept, so a readable one exists even if a save is cut short.
        """
        step = batch_idx + 1
        path = os.path.join(self.recovery_dir, f'{self.recovery_prefix}-{epoch}-{step}{self.extension}')
        atomic_save(self._build_state(epoch, step=step), path)
        if self.prev_recovery_file and os.path.exists(self.prev_recovery_file) and self.prev_recovery_file != path:
            try:
                os.remove(self.prev_recovery_file)
            except OSError as e:
                _logger.warning(f"could not remove old recovery checkpoint '{self.prev_recovery_file}': {e}")
        self.prev_recovery_file = self.curr_recovery_file
        self.curr_recovery_file = path

    def remove_recovery(self):
        """Delete this run's recovery checkpoints once an epoch checkpoint supersedes them."""
        for f in glob.glob(os.path.join(self.recovery_dir, f'{self.recovery_prefix}-*{self.extension}')):
            try:
                os.remove(f)
            except OSError:
                pass
        self.prev_recovery_file = self.curr_recovery_file = ''


def _progress(checkpoint: Dict[str, Any]) -> Tuple[int, int]:
    """(epoch to start, step inside it) that a checkpoint resumes at."""
    epoch = int(checkpoint.get('epoch', -1))
    if checkpoint.get('step') is not None:
        return epoch, int(checkpoint['step'])
    return epoch + 1, 0


def resume_checkpoint(
        path: str,
        model: torch.nn.Module,
        optimizer: Optional[torch.optim.Optimizer] = None,
        loss_scaler: Any = None,
        model_ema: Optional[torch.nn.Module] = None,
        lr_scheduler: Any = None,
        saver: Optional[CheckpointSaver] = None,
        restore_rng: bool = True,
) -> Dict[str, Any]:
    """Restore a training run from a checkpoint written by `CheckpointSaver`.

    Args:
        path: the checkpoint file.
        model, optimizer, loss_scaler, model_ema, lr_scheduler: objects whose state is restored (None: skipped).
        saver: its checkpoint history is restored so `--checkpoint-hist` keeps ranking as before.
        restore_rng: restore the Python/numpy/torch RNG states saved with the checkpoint.

    Returns:
        dict with `epoch` (the epoch to start), `step` (optimizer steps already done in it; 0 at an epoch
        boundary), `rng_state` (RNG state at the save) and `epoch_rng_state` (RNG state at the start of
        that epoch, saved with recovery checkpoints).

    Raises:
        CheckpointError: the file cannot be read, or is not a training checkpoint of this model.
    """
    checkpoint = load_checkpoint_file(path)
    if 'state_dict' not in checkpoint:
        raise CheckpointError(f"checkpoint '{path}': holds only weights, not a training state to resume; "
                              "use --initial-checkpoint or --pretrained-path to start from it")
    try:
        unwrap_model(model).load_state_dict(clean_state_dict(checkpoint['state_dict']))
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"checkpoint '{path}': does not match the model "
                              f"({' '.join(s.strip() for s in first[:2])[:300]})") from None
    if optimizer is not None and 'optimizer' in checkpoint:
        optimizer.load_state_dict(checkpoint['optimizer'])
    if loss_scaler is not None and loss_scaler.state_dict_key in checkpoint:
        loss_scaler.load_state_dict(checkpoint[loss_scaler.state_dict_key])
    if model_ema is not None:
        if 'state_dict_ema' in checkpoint:
            unwrap_model(model_ema).load_state_dict(clean_state_dict(checkpoint['state_dict_ema']))
        else:
            _logger.warning(f"'{path}' has no EMA weights; the EMA starts from the resumed model")
            unwrap_model(model_ema).load_state_dict(unwrap_model(model).state_dict(), strict=False)
    if lr_scheduler is not None and 'lr_scheduler' in checkpoint:
        lr_scheduler.load_state_dict(checkpoint['lr_scheduler'])
    if saver is not None and isinstance(checkpoint.get('saver'), dict):
        saver.load_state_dict(checkpoint['saver'])
    if restore_rng and 'rng_state' in checkpoint:
        set_rng_state(checkpoint['rng_state'])
    epoch, step = _progress(checkpoint)
    _logger.info(f"Resumed from '{path}': starting epoch {epoch}" + (f' at step {step}' if step else ''))
    return dict(epoch=epoch, step=step, rng_state=checkpoint.get('rng_state'),
                epoch_rng_state=checkpoint.get('epoch_rng_state'))


def find_latest_checkpoint(output_dir: str) -> Optional[str]:
    """The checkpoint of a run that is furthest along (`--resume auto`), or None if there is none.

    Considers `last.pth.tar`, `recovery-*.pth.tar` and `checkpoint-*.pth.tar`; an unreadable file (e.g. cut
    short by a kill) is skipped with a warning, so an older good checkpoint is used instead.
    """
    if not output_dir or not os.path.isdir(output_dir):
        return None
    candidates = []  # in order of preference at equal progress
    for pattern in ('last.pth.tar', f'{RECOVERY_PREFIX}-*.pth.tar', 'checkpoint-*.pth.tar'):
        candidates += sorted(glob.glob(os.path.join(output_dir, pattern)))
    best, best_progress = None, None
    for path in candidates:
        try:
            checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
            progress = _progress(checkpoint)
        except Exception as e:
            _logger.warning(f"skipping unreadable checkpoint '{path}': {_describe_load_error(e)}")
            continue
        if best_progress is None or progress > best_progress:
            best, best_progress = path, progress
    return best
