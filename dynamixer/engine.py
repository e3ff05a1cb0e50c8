"""The training and evaluation loops, `train_one_epoch` and `evaluate`, and the model factory both scripts share.

No argparse here: `train.py` builds everything with timm factories and passes it in. What the loops do
beyond a plain step: AMP through `torch.autocast` (a GradScaler only for float16 on CUDA), gradient
clipping (timm's `dispatch_clip_grad`), gradient accumulation, mixup/cutmix (a timm `Mixup`), EMA
updates (timm's `ModelEmaV3`), per-interval log lines (loss, lr, img/s, ETA), a stop with a helpful
message on a NaN/Inf loss or a CUDA out-of-memory error, a recovery hook every N optimizer steps, and a
graceful stop (`stop_requested`, set by train.py on SIGTERM) that saves a recovery checkpoint after the current step.
`create_model` is `timm.create_model` that also builds models without an `img_size` argument (CNNs).
"""
import contextlib
import logging
import os
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional

import timm
import torch
import torch.distributed as dist
from timm.utils import accuracy, dispatch_clip_grad

_logger = logging.getLogger(__name__)

__all__ = ['TrainingError', 'NonFiniteLossError', 'DeviceOutOfMemoryError', 'TrainingStopped', 'create_model',
           'train_one_epoch', 'evaluate', 'cpu_has_native_bf16', 'cpu_amp_dtype']


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX-512 or AMX), which makes bf16 autocast fast.

    Without AVX-512 (an AVX2-only CPU), torch's bfloat16 matmuls take a slow fallback: on an AVX2 AMD EPYC
    VM a 1024^3 matmul ran at 0.9 GFLOP/s in bf16 against 122 in fp32, and the Fashion-MNIST recipe model
    trained at 15 img/s in bf16 autocast against 198 in fp32, 13x slower (docs/bench/cpu_bf16_avx2.txt).
    AVX-512 CPUs without bf16 instructions have oneDNN bf16 kernels built on AVX-512 (not measured here), so
    only a CPU without AVX-512 counts as lacking it.
    """
    try:
        caps = torch.cpu.get_capabilities()
    except Exception:  # older torch: no capability query, assume the CPU is fine (the user asked for bf16)
        return True
    return bool(caps.get('avx512_bf16') or caps.get('amx_bf16') or caps.get('avx512_f'))


def memory_allocator() -> str:
    """The malloc this process runs on: 'tcmalloc', 'jemalloc' or 'mimalloc' when one is loaded (LD_PRELOAD;
    jemalloc with ' (MALLOC_CONF)' when that is set), else 'glibc', with ' (GLIBC_TUNABLES)' when malloc tunables
    are set. On a CPU, fresh pages from glibc cost page faults, so the allocator moves img/s (docs/benchmarks.md,
    "Session 33"): benchmark.py writes it in every result row and train.py in its CPU line."""
    try:
        with open('/proc/self/maps') as f:
            maps = f.read()
    except OSError:  # not Linux
        return 'system'
    for name in ('tcmalloc', 'jemalloc', 'mimalloc'):
        if f'lib{name}' in maps:
            return name + (' (MALLOC_CONF)' if name == 'jemalloc' and os.environ.get('MALLOC_CONF') else '')
    return 'glibc (GLIBC_TUNABLES)' if 'glibc.malloc' in os.environ.get('GLIBC_TUNABLES', '') else 'glibc'


def cpu_line() -> str:
    """The one line train.py and validate.py log on a CPU: capability, threads, malloc, and on plain glibc what to try.

    Under glibc every large fresh buffer page-faults on first write; tcmalloc ran bf16 inference of dynamixer_s 27-33%
    faster in a process that runs one model (docs/benchmarks.md, "Session 33").
    """
    malloc = memory_allocator()
    hint = ('; tcmalloc (LD_PRELOAD) or higher GLIBC_TUNABLES malloc thresholds run 224 px models up to a third '
            'faster: README, "Speed"') if malloc == 'glibc' else ''
    return f'CPU: {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, malloc {malloc}{hint}'


def cpu_amp_dtype(amp_dtype: Optional[torch.dtype], force: bool = False, flag: str = '--amp') -> Optional[torch.dtype]:
    """The autocast dtype to use on the CPU for a requested one: None (fp32) where bf16 would crawl.

    Also the model dtype of validate.py's `--model-dtype` (`flag`), with the same rule.

    `amp_dtype` None (no autocast) stays None. On a CPU without AVX-512 the request is dropped with a one-line
    warning naming the CPU capability and the flag that keeps it (`force`), since there bf16 autocast runs an
    order of magnitude slower than fp32: the Fashion-MNIST hour recipe would take half a day.
    """
    if amp_dtype is None or force or cpu_has_native_bf16():
        return amp_dtype
    cap = torch.backends.cpu.get_cpu_capability()
    name = str(amp_dtype).replace('torch.', '')
    what = 'autocast is off' if flag == '--amp' else 'the model stays in float32'
    _logger.warning(f'{flag} on this CPU ({cap}, no AVX-512): {name} matmuls take a slow fallback here (in bfloat16 a '
                    f'training step measured 13x slower than fp32), so {what} and this run is in fp32; pass '
                    f'--force-amp to keep {name} anyway')
    return None


def create_model(model_name: str, pretrained: bool = False, **kwargs: Any) -> torch.nn.Module:
    """`timm.create_model(model_name, pretrained, **kwargs)`; a model that takes no `img_size` is built without it.

    The scripts pass `img_size` to every model (DynaMixer, MLP-Mixer and ResMLP need it at 28 px); timm's CNNs
    take any input size and reject the argument with a TypeError naming it. That one error is retried without
    `img_size` (logged); every other error propagates.
    """
    try:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except TypeError as e:
        if 'img_size' not in kwargs or "'img_size'" not in str(e):
            raise
    kwargs = {k: v for k, v in kwargs.items() if k != 'img_size'}
    _logger.info(f'{model_name} takes no img_size argument: built without it (it takes any input size)')
    return timm.create_model(model_name, pretrained=pretrained, **kwargs)


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to try."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or Inf."""


class DeviceOutOfMemoryError(TrainingError):
    """The accelerator ran out of memory."""


class TrainingStopped(Exception):
    """A stop was requested (train.py: SIGTERM) and training stopped between two optimizer steps.

    `epoch`, `step`: where it stopped (optimizer steps done in `epoch`; 0 before it started; None: at once, inside
    a step); `saved`: whether that state was saved (a recovery checkpoint, or the epoch checkpoints at step 0).
    """

    def __init__(self, epoch: int, step: Optional[int], saved: bool = True):
        if step is None:  # stopped at once, inside a step
            where = f'during epoch {epoch}; its last checkpoint is kept'
        else:
            where = f'after step {step} of epoch {epoch}' if step else f'before epoch {epoch}'
        super().__init__(f"stopped {where}{', state saved' if saved else ''}")
        self.epoch, self.step, self.saved = epoch, step, saved


def _autocast(device: torch.device, amp_dtype: Optional[torch.dtype]):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f'{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def _oom_error(err: BaseException, batch_size: int, grad_accum_steps: int, where: str) -> DeviceOutOfMemoryError:
    return DeviceOutOfMemoryError(
        f'out of memory on the accelerator during {where} with batch size {batch_size} per device: '
        f'try a smaller -b with --grad-accum-steps {2 * grad_accum_steps} (same effective batch), '
        '--grad-checkpointing, or --amp')


def train_one_epoch(
        epoch: int,
        model: torch.nn.Module,
        loader,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable,
        device: torch.device,
        lr_scheduler: Any = None,
        amp_dtype: Optional[torch.dtype] = None,
        loss_scaler: Any = None,
        mixup_fn: Optional[Callable] = None,
        model_ema: Optional[torch.nn.Module] = None,
        clip_grad: Optional[float] = None,
        clip_mode: str = 'norm',
        grad_accum_steps: int = 1,
        log_interval: int = 50,
        recovery_interval: int = 0,
        recovery_fn: Optional[Callable[[int, int, Dict[str, Any]], None]] = None,
        resume_state: Optional[Dict[str, Any]] = None,
        stop_requested: Optional[Callable[[], bool]] = None,
        distributed: bool = False,
        world_size: int = 1,
        is_primary: bool = True,
) -> Dict[str, float]:
    """Train for one epoch.

    Args:
        epoch: index of this epoch (0-based), used for the scheduler step count and in messages.
        loader: yields (input, target); with timm's CUDA prefetcher they are already on `device`.
        loss_fn: criterion for (output, target), e.g. timm's SoftTargetCrossEntropy under mixup.
        lr_scheduler: a timm scheduler; `step_update(num_updates)` is called after each optimizer step.
        amp_dtype: torch.bfloat16 / torch.float16 for mixed precision, None for float32.
        loss_scaler: timm's `NativeScaler` (float16 on CUDA), None otherwise.
        mixup_fn: timm `Mixup` applied to each batch (None when the loader's collate does it).
        model_ema: timm `ModelEmaV3`, updated after each optimizer step.
        clip_grad, clip_mode: gradient clipping value and mode ('norm', 'value', 'agc').
        grad_accum_steps: batches per optimizer step.
        log_interval: optimizer steps between log lines (primary process only).
        recovery_interval: call `recovery_fn(epoch, steps_done, state)` every this many optimizer steps (0: never).
            `state` holds the running loss sums so a resumed epoch reports the same mean loss.
        resume_state: from a recovery checkpoint: `step` (optimizer steps already done this epoch, their batches
            are read and skipped), `rng_state` (restored once they are skipped), `loss_sum`, `loss_count`.
        stop_requested: checked after every optimizer step but the epoch's last; when it returns True the
            epoch stops there: `recovery_fn` saves the exact state (as at a recovery interval), then
            `TrainingStopped` is raised. Single process only: processes would see the request at different steps.
        distributed, world_size: the loss logged and returned is averaged over processes when distributed.
        is_primary: only the primary process logs.

    Returns:
        OrderedDict with the epoch's mean training `loss` and the final `lr` (the largest over param groups).

    Raises:
        NonFiniteLossError: the loss is NaN/Inf; the message names step, epoch and lr and what to try.
        DeviceOutOfMemoryError: CUDA ran out of memory; the message names the batch size.
        TrainingStopped: `stop_requested()` returned True; the recovery checkpoint is saved.
    """
    from .checkpoint import set_rng_state  # local: keeps the loop module free of file I/O at import

    resume_state = resume_state or {}
    start_step = int(resume_state.get('step', 0))
    num_batches = len(loader)
    updates_per_epoch = (num_batches + grad_accum_steps - 1) // grad_accum_steps
    last_accum_steps = num_batches % grad_accum_steps or grad_accum_steps
    last_batch_idx_to_accum = num_batches - last_accum_steps
    loss_sum = float(resume_state.get('loss_sum', 0.0))
    loss_count = int(resume_state.get('loss_count', 0))
    interval_loss_sum, interval_loss_count = 0.0, 0
    model.train()
    optimizer.zero_grad()

    step = start_step  # optimizer steps done in this epoch
    skip_batches = start_step * grad_accum_steps
    step_start = time.time()
    interval_start, interval_samples = time.time(), 0
    timed_steps, timed_seconds = 0, 0.0
    lr = max(group['lr'] for group in optimizer.param_groups)  # layer decay scales the others down
    for batch_idx, (input, target) in enumerate(loader):
        if batch_idx < skip_batches:
            if batch_idx == skip_batches - 1 and resume_state.get('rng_state') is not None:
                set_rng_state(resume_state['rng_state'])  # batches re-read; continue with the saved RNG
            continue
        last_batch = batch_idx + 1 == num_batches
        need_update = last_batch or (batch_idx + 1) % grad_accum_steps == 0
        accum_steps = last_accum_steps if batch_idx >= last_batch_idx_to_accum else grad_accum_steps
        input, target = input.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if mixup_fn is not None:
            input, target = mixup_fn(input, target)
        batch_size = input.shape[0]

        # DDP: only all-reduce gradients on the micro-batch that completes an optimizer step
        sync_ctx = model.no_sync() if (distributed and not need_update and hasattr(model, 'no_sync')) \
            else contextlib.nullcontext()
        try:
            with sync_ctx:
                with _autocast(device, amp_dtype):
                    output = model(input)
                    loss = loss_fn(output, target)
                if not torch.isfinite(loss).item():
                    raise NonFiniteLossError(
                        f'loss is {loss.item()} at step {step + 1}/{updates_per_epoch} of epoch {epoch} '
                        f'(lr {lr:.3g}): training diverged; try a lower --lr, --clip-grad 1.0, '
                        'or float32 / --amp-dtype bfloat16 instead of float16')
                scaled = loss / accum_steps
                if loss_scaler is not None:
                    loss_scaler(scaled, optimizer, clip_grad=clip_grad, clip_mode=clip_mode,
                                parameters=model.parameters(), need_update=need_update)
                else:
                    scaled.backward()
                    if need_update:
                        if clip_grad is not None:
                            dispatch_clip_grad(model.parameters(), clip_grad, mode=clip_mode)
                        optimizer.step()
        except torch.OutOfMemoryError as e:
            raise _oom_error(e, batch_size, grad_accum_steps, f'training step {step + 1} of epoch {epoch}') from None

        loss_value = loss.detach().item()
        loss_sum += loss_value * batch_size
        loss_count += batch_size
        interval_loss_sum += loss_value * batch_size
        interval_loss_count += batch_size
        interval_samples += batch_size
        if not need_update:
            continue

        optimizer.zero_grad()
        step += 1
        num_updates = epoch * updates_per_epoch + step
        if model_ema is not None:
            model_ema.update(model, step=num_updates)
        if lr_scheduler is not None:
            lr_scheduler.step_update(num_updates=num_updates)
        lr = max(group['lr'] for group in optimizer.param_groups)  # layer decay scales the others down
        if device.type == 'cuda':
            torch.cuda.synchronize()
        now = time.time()
        timed_steps += 1
        timed_seconds += now - step_start
        step_start = now

        if is_primary and (step % log_interval == 0 or step == updates_per_epoch):
            elapsed = max(now - interval_start, 1e-9)
            interval_loss = interval_loss_sum / max(interval_loss_count, 1)
            eta = (updates_per_epoch - step) * timed_seconds / timed_steps
            _logger.info(
                f'Train: {epoch} [{step:>{len(str(updates_per_epoch))}d}/{updates_per_epoch} '
                f'({100. * step / updates_per_epoch:>3.0f}%)]  '
                f'Loss: {interval_loss:#.4g} ({loss_sum / max(loss_count, 1):#.4g})  LR: {lr:.3e}  '
                f'{interval_samples * world_size / elapsed:>7.1f} img/s  ETA: {_format_eta(eta)}')
            interval_start, interval_samples = now, 0
            interval_loss_sum, interval_loss_count = 0.0, 0

        if step < updates_per_epoch:  # the epoch's last step is saved by the epoch checkpoint
            stop = stop_requested is not None and stop_requested()
            if recovery_fn is not None and (stop or (recovery_interval and step % recovery_interval == 0)):
                recovery_fn(epoch, step, {'loss_sum': loss_sum, 'loss_count': loss_count})
            if stop:
                raise TrainingStopped(epoch, step, saved=recovery_fn is not None)

    mean_loss = loss_sum / max(loss_count, 1)
    if distributed:
        totals = torch.tensor([loss_sum, float(loss_count)], dtype=torch.float64, device=device)
        dist.all_reduce(totals)
        mean_loss = (totals[0] / totals[1].clamp(min=1)).item()
    return OrderedDict([('loss', mean_loss), ('lr', lr)])


def _first(output):
    """The logits of a model that returns a tuple or list (e.g. with auxiliary or distillation heads)."""
    return output[0] if isinstance(output, (tuple, list)) else output


@torch.no_grad()
def evaluate(
        model: torch.nn.Module,
        loader,
        loss_fn: Callable,
        device: torch.device,
        amp_dtype: Optional[torch.dtype] = None,
        distributed: bool = False,
        log_interval: int = 50,
        log_prefix: str = 'Test',
        is_primary: bool = True,
        tta_hflip: bool = False,
        input_dtype: Optional[torch.dtype] = None,
) -> Dict[str, float]:
    """Evaluate on a loader of (input, target) with integer targets.

    `input_dtype` casts the inputs (for a model run in that dtype, validate.py's --model-dtype); None keeps them.

    With `tta_hflip`, each image's logits are the mean of the logits of the image and of its horizontal mirror
    (test-time augmentation for models trained with horizontal flips; twice the evaluation cost).

    Returns:
        OrderedDict with mean `loss`, `top1` and `top5` accuracy in percent (top5 is top-k with k the number of
        classes when there are fewer than 5). Sums are all-reduced over processes when distributed.
    """
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top1 hits, top5 hits, samples
    num_batches = len(loader)
    for batch_idx, (input, target) in enumerate(loader):
        input, target = input.to(device, dtype=input_dtype, non_blocking=True), target.to(device, non_blocking=True)
        try:
            with _autocast(device, amp_dtype):
                output = _first(model(input)).float()
                if tta_hflip:
                    output = (output + _first(model(input.flip(-1))).float()) / 2
        except torch.OutOfMemoryError as e:
            raise _oom_error(e, input.shape[0], 1, 'evaluation') from None
        loss = loss_fn(output, target)
        acc1, acc5 = accuracy(output, target, topk=(1, min(5, output.shape[-1])))
        n = input.shape[0]
        totals += torch.tensor([loss.item() * n, acc1.item() * n / 100., acc5.item() * n / 100., n],
                               dtype=torch.float64, device=device)
        if is_primary and log_interval and ((batch_idx + 1) % log_interval == 0 or batch_idx + 1 == num_batches):
            _logger.info(f'{log_prefix}: [{batch_idx + 1:>4d}/{num_batches}]  '
                         f'Loss: {totals[0] / totals[3]:#.4g}  Acc@1: {100 * totals[1] / totals[3]:>7.3f}  '
                         f'Acc@5: {100 * totals[2] / totals[3]:>7.3f}')
    if distributed:
        dist.all_reduce(totals)
    n = max(totals[3].item(), 1.0)
    return OrderedDict([('loss', totals[0].item() / n), ('top1', 100. * totals[1].item() / n),
                        ('top5', 100. * totals[2].item() / n)])
