"""The few dataset helpers timm lacks.

* Fashion-MNIST read straight from its four idx files (the Debian package `dataset-fashion-mnist` puts
  them in /usr/share/datasets/fashion-mnist/), no download and no torchvision folder layout needed.
* A robust ImageFolder: timm's `ImageDataset` already retries the next index when an image fails to
  load; `RobustImageDataset` extends it so that every skipped file is logged with its path, recorded in
  a flag tensor in shared memory (so DataLoader worker processes, fork or spawn, report to the main
  process) and summarised once per epoch by `log_skipped_files`; with `strict=True` the first bad file
  raises a `DataError` naming it.
* Image modes: grayscale, RGBA/LA, palette and 16-bit images are converted to the model's input mode
  ('RGB' or 'L') by `convert_image_mode`; 16-bit values are scaled to 8 bit, not clipped.
* `InMemoryLoader` (train.py `--in-memory`): a small fixed-size training set as one uint8 tensor on the device,
  augmented a batch at a time (random-resized crop, flips, random erasing) instead of image by image in workers.
* `create_image_dataset`: the one call train.py and validate.py make. It checks the data dir and split
  and turns every problem into a `DataError` with one line that names the path and says what to do.
"""
import gzip
import math
import logging
import os
import struct
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.utils.data as data
from PIL import Image, UnidentifiedImageError
from timm.data import ImageDataset, create_dataset
from timm.data.readers.img_extensions import get_img_extensions

_logger = logging.getLogger(__name__)

__all__ = [
    'DataError', 'convert_image_mode', 'FashionMNIST', 'create_fashion_mnist_dataset', 'RobustImageDataset',
    'create_image_dataset', 'skipped_files', 'log_skipped_files', 'dataset_num_classes', 'stratified_indices',
    'InMemoryLoader',
]

FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_FILES = {  # split -> (images, labels); each may be gzipped (`.gz`) or not
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
FASHION_MNIST_CLASSES = (
    'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
FASHION_MNIST_NAMES = ('fashion_mnist', 'fashion-mnist', 'fashionmnist')

_TRAIN_SPLITS = ('train', 'training')
_EVAL_SPLITS = ('validation', 'val', 'valid', 'eval', 'evaluation')  # a test/ folder is only used when asked for


class DataError(RuntimeError):
    """A dataset could not be opened or an image could not be read; the message is one line naming the
    path and what to do.

    Raised inside a DataLoader worker, PyTorch re-raises it in the main process as `DataError(text)`
    where text holds the worker's whole traceback; the constructor keeps only the original message, so
    `str(err)` is the same one line in both cases.
    """

    def __init__(self, message: str = ''):
        if 'Original Traceback' in message:  # re-raised by torch.utils.data from a worker process
            last = message.rstrip().splitlines()[-1]
            message = last.split(f'{type(self).__name__}: ', 1)[-1]
        super().__init__(message)


def convert_image_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert a PIL image of any common mode to `mode` ('RGB' or 'L').

    16-bit ('I;16*') and 32-bit integer ('I') images hold 0..65535: they are scaled by 255/65535 and
    rounded (65535 -> 255, 32768 -> 128), where PIL's own convert would clip everything above 255 to
    white. Transparent images (RGBA, LA, PA, palette or grayscale with a transparent colour) are
    composited over white, the way a viewer shows them, instead of dropping alpha and exposing
    whatever colour the transparent pixels happen to store. RGB -> L uses PIL's ITU-R 601 luma.

    Args:
        img: the decoded (or lazily opened) image.
        mode: the model's input mode, 'RGB' or 'L'.
    """
    if img.mode == mode:
        return img
    if img.mode.startswith('I;16') or img.mode == 'I':
        values = np.asarray(img).astype(np.float64)  # (H, W), 0..65535
        img = Image.fromarray(np.rint(np.clip(values, 0, 65535) * (255 / 65535)).astype(np.uint8))
    elif img.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or 'transparency' in img.info:
        rgba = img.convert('RGBA')
        white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert('RGB')
    return img if img.mode == mode else img.convert(mode)


def stratified_indices(targets: Sequence[int], num_samples: int) -> np.ndarray:
    """A deterministic class-balanced subset: round-robin over the classes, each class's samples in
    their original order, returned sorted. 100 samples of a 10-class set are the first 10 of each class.

    Args:
        targets: the label of every sample.
        num_samples: how many to keep (at most len(targets)).
    """
    targets = np.asarray(targets)
    rank = np.empty(len(targets), dtype=np.int64)  # position of each sample within its own class
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        rank[idx] = np.arange(len(idx))
    order = np.lexsort((np.arange(len(targets)), rank))  # by rank in class, then file order
    return np.sort(order[:num_samples])


def _check_num_samples(num_samples: Optional[int], total: int, what: str) -> Optional[int]:
    if num_samples is None or num_samples == 0:
        return None
    if num_samples < 0:
        raise DataError(f'--num-samples must be positive, got {num_samples}')
    if num_samples > total:
        _logger.warning(f'--num-samples {num_samples} is more than the {total} samples of {what}: using all')
        return None
    return num_samples


# ---------------------------------------------------------------------------------------------------------
# Fashion-MNIST


def _find_file(folder: str, base: str) -> Optional[str]:
    for name in (base + '.gz', base):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def _read_idx(path: str, magic: int, ndim: int) -> np.ndarray:
    """Read an idx file (big-endian header: magic, then one uint32 per dimension, then uint8 data)."""
    try:
        opener = gzip.open if path.endswith('.gz') else open
        with opener(path, 'rb') as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip raises EOFError / BadGzipFile on truncated or corrupt files
        raise DataError(f'cannot read {path}: {e}; reinstall dataset-fashion-mnist') from None
    header = 4 * (1 + ndim)
    if len(raw) < header or struct.unpack('>I', raw[:4])[0] != magic:
        raise DataError(f'{path} is not an idx file of {ndim} dimension(s) (bad header); reinstall dataset-fashion-mnist')
    shape = struct.unpack(f'>{ndim}I', raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f'{path} is truncated or corrupt: {len(raw)} bytes, expected {expected} for shape {shape}; '
                        'reinstall dataset-fashion-mnist')
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


class FashionMNIST(data.Dataset):
    """Fashion-MNIST from its idx files: (PIL image, int label) pairs, 28x28.

    Map-style like timm's `ImageDataset`: `transform` and `target_transform` may be set after creation
    (timm's `create_loader` does so). Attributes: `classes` (the 10 class names), `targets` (list of int).

    Args:
        root: folder holding the idx files (gzipped or not), or None/'' for /usr/share/datasets/fashion-mnist.
        split: 'train' (60000 images) or 'test' (10000); 'validation', 'val' and 'eval' mean 'test'.
        num_samples: keep a deterministic class-balanced subset of this size (see `stratified_indices`).
        input_img_mode: 'L' (native) or 'RGB' (grey copied to three channels).
        transform: applied to the PIL image.
        target_transform: applied to the int label.
    """

    classes = FASHION_MNIST_CLASSES

    def __init__(
            self,
            root: Optional[str] = None,
            split: str = 'train',
            num_samples: Optional[int] = None,
            input_img_mode: str = 'L',
            transform: Optional[Callable] = None,
            target_transform: Optional[Callable] = None,
    ):
        if split in _TRAIN_SPLITS:
            split = 'train'
        elif split in _EVAL_SPLITS + ('test',):
            split = 'test'
        else:
            raise DataError(f"Fashion-MNIST has no split '{split}': use --split train or --split test")
        folder = root or FASHION_MNIST_DIR
        if not _find_file(folder, FASHION_MNIST_FILES['train'][0]) and os.path.isdir(os.path.join(folder, 'FashionMNIST', 'raw')):
            folder = os.path.join(folder, 'FashionMNIST', 'raw')  # torchvision's layout
        paths = [_find_file(folder, base) for base in FASHION_MNIST_FILES[split]]
        if None in paths:
            all_files = ', '.join(b + '.gz' for pair in FASHION_MNIST_FILES.values() for b in pair)
            missing = ', '.join(b for b, p in zip(FASHION_MNIST_FILES[split], paths) if p is None)
            where = f"data dir '{folder}'" if os.path.isdir(folder) else f"data dir '{folder}' (does not exist)"
            raise DataError(
                f'Fashion-MNIST not found in {where}: missing {missing}; expected the four files {all_files} '
                f'(gzipped or not): run `apt-get install dataset-fashion-mnist` (installs them in '
                f'{FASHION_MNIST_DIR}) or pass --data-dir DIR')
        images = _read_idx(paths[0], 0x0803, 3)  # (N, 28, 28) uint8
        labels = _read_idx(paths[1], 0x0801, 1)  # (N,) uint8
        if len(images) != len(labels):
            raise DataError(f'{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels')
        n = _check_num_samples(num_samples, len(labels), f'Fashion-MNIST {split}')
        if n is not None:
            keep = stratified_indices(labels, n)
            images, labels = images[keep], labels[keep]
        self.root = folder
        self.split = split
        self.data = images
        self.targets = labels.astype(np.int64).tolist()
        self.input_img_mode = input_img_mode
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> Tuple[Any, Any]:
        img = convert_image_mode(Image.fromarray(self.data[index]), self.input_img_mode)  # (28, 28) uint8 -> 'L'
        target = self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


def create_fashion_mnist_dataset(
        root: Optional[str],
        split: str,
        is_training: bool = False,
        num_samples: Optional[int] = None,
        input_img_mode: str = 'L',
) -> FashionMNIST:
    """Fashion-MNIST as a map-style dataset (see `FashionMNIST`).

    Args:
        root: folder with the four idx files, or None/'' for /usr/share/datasets/fashion-mnist
            (Debian package dataset-fashion-mnist).
        split: 'train' or 'test' ('validation'/'val' are accepted as 'test').
        is_training: accepted for symmetry with timm's `create_dataset`; the split alone picks the data,
            augmentation is the loader's job.
        num_samples: a deterministic class-balanced subset of this size; None for all.
        input_img_mode: 'L' or 'RGB'.
    """
    del is_training  # map-style data is the same in training and evaluation
    return FashionMNIST(root, split, num_samples=num_samples, input_img_mode=input_img_mode)


# ---------------------------------------------------------------------------------------------------------
# Robust ImageFolder


class RobustImageDataset(ImageDataset):
    """timm's `ImageDataset` that reports what it skips and converts image modes properly.

    An image that cannot be opened or decoded (truncated JPEG, a text file named .jpg, a file deleted
    after the scan) is replaced, as in timm, by the next readable index; a warning names its path and a
    flag is set for it in a bool tensor in shared memory. The flags live in shared memory so that
    DataLoader worker processes (which each hold a copy of the dataset) mark them where the main
    process sees them: `skipped_files()` lists every file skipped since the last `reset_skipped()`
    (a file is counted once however often it is hit). With `strict=True` the first bad file raises a
    `DataError` naming it instead.

    Args:
        root: the split folder (class sub-folders inside) or a .tar of it.
        strict: stop at the first unreadable image instead of skipping it.
        input_img_mode: the model's input mode, 'RGB' or 'L' (see `convert_image_mode`).
        **kwargs: passed to timm's `ImageDataset` (reader, class_map, transform, ...).
    """

    def __init__(self, root: str, strict: bool = False, input_img_mode: str = 'RGB', **kwargs):
        super().__init__(root, input_img_mode=input_img_mode, **kwargs)
        self.root = root
        self.strict = strict
        self._skipped = torch.zeros(len(self.reader), dtype=torch.bool).share_memory_()

    def select(self, indices: Sequence[int]) -> None:
        """Keep only these samples (for --num-samples); call before any loader is made."""
        self.reader.samples = [self.reader.samples[i] for i in indices]
        self._skipped = torch.zeros(len(self.reader), dtype=torch.bool).share_memory_()

    @property
    def targets(self) -> List[int]:
        return [t for _, t in self.reader.samples]

    def _load(self, index: int) -> Tuple[Image.Image, Any]:
        fileobj, target = self.reader[index]
        with fileobj:
            img = Image.open(fileobj)
            img = convert_image_mode(img, self.input_img_mode)
            img.load()  # decode now, while the file is open: decode errors surface here
        return img, target

    def __getitem__(self, index: int):
        for _ in range(self._max_retries):
            try:
                img, target = self._load(index)
                break
            except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... for broken files
                path = self.reader.filename(index, absolute=True)
                if isinstance(e, UnidentifiedImageError):  # its message repeats the path inside a file repr
                    reason = 'not an image file PIL can read'
                else:
                    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                if self.strict:
                    raise DataError(f'unreadable image {path}: {reason} (delete or replace it, '
                                    'or drop --strict-data to skip bad files)') from None
                _logger.warning(f'skipped unreadable image {path}: {reason}')
                self._skipped[index] = True
                index = (index + 1) % len(self.reader)
        else:
            raise DataError(f'{self._max_retries} consecutive images could not be read, the last {path}: '
                            f'is {self.root} intact?')
        if self.transform is not None:
            img = self.transform(img)
        if target is None:
            target = -1
        elif self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def skipped_files(self) -> List[str]:
        """Paths of the files skipped since the last `reset_skipped()` (in all worker processes)."""
        return [self.reader.filename(i, absolute=True) for i in torch.nonzero(self._skipped).flatten().tolist()]

    def reset_skipped(self) -> None:
        self._skipped.zero_()


class _TorchvisionDataset(data.Dataset):
    """A torchvision dataset (CIFAR, MNIST, ...) with the image mode converted and an optional subset.

    timm's loader sets `.transform` on the dataset it is given; here that transform runs after the mode
    conversion (CIFAR is RGB, MNIST is L: the model's `in_chans` decides).
    """

    def __init__(self, base: data.Dataset, input_img_mode: str, indices: Optional[Sequence[int]] = None):
        self.base = base
        self.base.transform = self.base.target_transform = None
        self.input_img_mode = input_img_mode
        self.indices = list(indices) if indices is not None else None
        self.classes = getattr(base, 'classes', None)
        self.transform = None
        self.target_transform = None

    @property
    def targets(self) -> List[int]:
        targets = [int(t) for t in self.base.targets]
        return targets if self.indices is None else [targets[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.base) if self.indices is None else len(self.indices)

    def __getitem__(self, index: int):
        img, target = self.base[index if self.indices is None else self.indices[index]]
        img = convert_image_mode(img, self.input_img_mode)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


def _resolve_split_dir(root: str, split: str) -> str:
    """The folder of `split` under `root`, or `root` itself when it has no split folders at all."""
    exact = os.path.join(root, split)
    if os.path.isdir(exact):
        return exact
    subdirs = sorted(d.name for d in os.scandir(root) if d.is_dir())
    split_dirs = [d for d in subdirs if d in _TRAIN_SPLITS + _EVAL_SPLITS + ('test',)]
    synonyms = _TRAIN_SPLITS if split in _TRAIN_SPLITS else _EVAL_SPLITS if split in _EVAL_SPLITS else ()
    for s in synonyms:
        if s in split_dirs:
            return os.path.join(root, s)
    if split_dirs:
        raise DataError(f"split '{split}' not found in data dir {root}: it has the split folder(s) "
                        f"{', '.join(split_dirs)}; pass --split {split_dirs[0]} or create {exact}")
    return root


def _check_class_folders(split_dir: str, class_to_idx: Dict[str, int]) -> None:
    """An immediate sub-folder with no image anywhere below it is an empty class: say so."""
    exts = set(get_img_extensions(as_set=True))
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith('.') or entry.name in class_to_idx:
            continue
        has_image = any(os.path.splitext(f)[1].lower() in exts
                        for _, _, files in os.walk(entry.path, followlinks=True) for f in files)
        if not has_image:
            raise DataError(f"class folder {entry.path} has no images ({', '.join(sorted(exts))}): "
                            'add its images or remove the folder')


def _create_folder_dataset(name, root, split, strict, class_map, input_img_mode) -> RobustImageDataset:
    if not root:
        raise DataError('no data dir given: pass the dataset folder as the first argument or with --data-dir')
    if not os.path.exists(root):
        raise DataError(f'data dir {root} does not exist: pass the folder that holds the class folders '
                        '(or its train/ and validation/ split folders)')
    if os.path.isfile(root):
        if not root.endswith('.tar'):
            raise DataError(f'data dir {root} is a file: pass a folder of class folders or a .tar of one')
        split_dir = root
    else:
        if not any(True for _ in os.scandir(root)):
            raise DataError(f'data dir {root} is empty: put one sub-folder of images per class in it '
                            '(or train/ and validation/ folders of those)')
        split_dir = _resolve_split_dir(root, split)
    try:
        ds = RobustImageDataset(split_dir, reader=name, strict=strict, input_img_mode=input_img_mode,
                                class_map=class_map or '')
    except RuntimeError as e:  # timm: 'Found 0 images in subfolders of ...'
        raise DataError(f"no images found in {split_dir} ({str(e).split('. ', 1)[-1]}): "
                        'put one sub-folder of images per class in it') from None
    if os.path.isdir(split_dir):
        _check_class_folders(split_dir, ds.reader.class_to_idx)
    return ds


def create_image_dataset(
        name: str,
        root: Optional[str],
        split: str = 'validation',
        is_training: bool = False,
        strict: bool = False,
        num_samples: Optional[int] = None,
        in_chans: int = 3,
        download: bool = False,
        class_map: str = '',
) -> data.Dataset:
    """Create the dataset for train.py / validate.py; every problem with the data is a `DataError`.

    Dispatch on `name`:
    * 'fashion_mnist' (or 'fashion-mnist'): `FashionMNIST` from the idx files in `root`, or in
      /usr/share/datasets/fashion-mnist when `root` is empty.
    * 'torch/<name>' (torch/cifar10, torch/cifar100, torch/mnist, ...): timm's `create_dataset` (the
      torchvision class), images converted to the model's mode; `download` lets torchvision fetch it.
    * 'hfds/', 'hfids/', 'tfds/', 'wds/' names: timm's `create_dataset` unchanged (no skip report, no strict).
    * anything else ('' or a folder name, as in timm): an ImageFolder read by `RobustImageDataset`.
      `root` may hold the class folders directly or split folders (train/, val/ or validation/, test/);
      a missing/empty data dir, a missing split folder and an empty class folder are errors.

    The returned dataset is map-style with settable `transform`/`target_transform`, for timm's
    `create_loader`. After each epoch call `log_skipped_files(dataset)` to report unreadable images.

    Args:
        name: dataset name, as timm's --dataset.
        root: the data dir.
        split: 'train', 'validation' (a val/ or validation/ folder) or 'test'; Fashion-MNIST and torch/
            datasets have only train and test, so any evaluation split means their test set there.
        is_training: as in timm's `create_dataset`.
        strict: stop at the first unreadable image (--strict-data) instead of skipping it with a warning.
        num_samples: keep a deterministic class-balanced subset of this size (`stratified_indices`); None
            or 0 for all.
        in_chans: the model's input channels: 1 gives 'L' images, 3 'RGB'.
        download: allow torchvision to download torch/ datasets (--dataset-download).
        class_map: class map file for folders, as in timm.

    Returns:
        The dataset; `dataset_num_classes(dataset)` gives its class count.
    """
    if in_chans not in (1, 3):
        raise DataError(f'--in-chans {in_chans}: image datasets give 1 (grey) or 3 (RGB) channels')
    mode = 'L' if in_chans == 1 else 'RGB'
    name = name or ''
    if name.lower() in FASHION_MNIST_NAMES:
        return create_fashion_mnist_dataset(root, split, is_training, num_samples=num_samples, input_img_mode=mode)

    prefix, sep, _ = name.partition('/')
    if sep and prefix.lower() == 'torch':
        if not root:
            raise DataError(f'no data dir given for {name}: pass the folder to read it from (or download into, '
                            'with --dataset-download) as the first argument or --data-dir')
        try:
            base = create_dataset(name, root=root, split=split, is_training=is_training, download=download)
        except AssertionError as e:  # timm: 'Unknown torchvision dataset ...'
            raise DataError(f'--dataset {name}: {e}') from None
        except RuntimeError as e:  # torchvision: 'Dataset not found or corrupted. ...'
            raise DataError(f"{name} not found or corrupted in data dir {root} ({str(e).split('.')[0]}): "
                            'pass the folder that holds it, or --dataset-download to fetch it') from None
        n = _check_num_samples(num_samples, len(base), name)
        indices = stratified_indices(base.targets, n) if n is not None else None
        return _TorchvisionDataset(base, mode, indices)
    if sep and prefix.lower() in ('hfds', 'hfids', 'tfds', 'wds'):
        return create_dataset(name, root=root, split=split, is_training=is_training, download=download,
                              num_samples=num_samples, input_img_mode=mode, class_map=class_map)

    ds = _create_folder_dataset(name, root, split, strict, class_map, mode)
    n = _check_num_samples(num_samples, len(ds), ds.root)
    if n is not None:
        ds.select(stratified_indices(ds.targets, n))
    return ds


def dataset_num_classes(dataset: data.Dataset) -> Optional[int]:
    """The number of classes of a dataset made by `create_image_dataset`, or None if it cannot tell."""
    reader = getattr(dataset, 'reader', None)
    if reader is not None and getattr(reader, 'class_to_idx', None):
        return len(reader.class_to_idx)
    classes = getattr(dataset, 'classes', None)
    return len(classes) if classes else None


def skipped_files(dataset: data.Dataset) -> List[str]:
    """Paths skipped as unreadable since the last reset (empty for datasets that never skip)."""
    return dataset.skipped_files() if hasattr(dataset, 'skipped_files') else []


def log_skipped_files(dataset: data.Dataset, what: str = 'this epoch', reset: bool = True) -> int:
    """Log how many unreadable images were skipped (with up to 10 paths); call at the end of an epoch.

    Args:
        dataset: the dataset of the loader that just finished.
        what: wording for the log line ('this epoch', 'during validation').
        reset: clear the record so the next epoch counts afresh.

    Returns:
        The number of distinct files skipped.
    """
    paths = skipped_files(dataset)
    if paths:
        shown = ', '.join(paths[:10]) + (f' and {len(paths) - 10} more' if len(paths) > 10 else '')
        _logger.warning(f'{len(paths)} unreadable image file(s) skipped {what}: {shown}')
    if reset and hasattr(dataset, 'reset_skipped'):
        dataset.reset_skipped()
    return len(paths)


class InMemoryLoader:
    """A training loader for small fixed-size datasets: decode once, augment whole batches as tensors.

    The dataset's images are decoded once into one uint8 tensor (N, C, H, W) on `device`; each batch is then
    augmented in a few batched tensor ops in the main process: timm's training transform (random-resized crop,
    horizontal / vertical flips, normalisation, random erasing) without a PIL call or worker process per image.
    On a 2-core CPU the DataLoader worker that runs timm's per-image transform takes about a quarter of a core
    away from the model (docs/results.md); on a GPU the whole of Fashion-MNIST or CIFAR (47 / 150 MB) stays on
    the device.

    Differences from timm's per-image transform, all small: crop boxes are continuous (sub-pixel) and a box that
    does not fit is clamped to the image instead of re-drawn (timm re-draws up to 10 times, then centre-crops);
    resampling is bilinear (`grid_sample`); colour jitter and auto-augment are not available (`train.py` refuses
    them with --in-memory). Random erasing follows timm's `RandomErasing` (area 2-33% of the image, aspect
    0.3-3.3, 'pixel' / 'rand' / 'const' fill, `count` boxes).

    Randomness: at each `iter()` one seed is drawn from torch's global RNG (as `DataLoader` does for its
    workers), so an epoch's batches depend only on the RNG state at its start and re-iterating an epoch
    reproduces it (train.py's resume re-reads the batches of a partly done epoch).

    Args:
        dataset: a map-style dataset returning (image, target) with `transform=None`: PIL images or arrays,
            all of size (img_size, img_size). `FashionMNIST` is read straight from its array.
        batch_size: images per batch; the last partial batch is dropped, as timm's training loader does.
        img_size: output size; every image must already have it (the crop is resized back to it).
        mean, std: per-channel normalisation, in 0..1 units (timm's convention).
        scale, ratio: random-resized crop area fraction and aspect-ratio range.
        hflip, vflip: flip probabilities.
        re_prob, re_mode, re_count: random erasing probability, fill mode and boxes per image.
        no_aug: no crop, flip or erasing (normalisation only).
        distributed, world_size, rank, seed: with `distributed`, each rank reads its share of every epoch's
            permutation (a `DistributedSampler` seeded by `seed`; call `sampler.set_epoch`).
        device: where the images live and the batches are made.
    """

    def __init__(self, dataset: data.Dataset, batch_size: int, img_size: int, mean: Sequence[float],
                 std: Sequence[float], scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
                 hflip: float = 0.5, vflip: float = 0., re_prob: float = 0., re_mode: str = 'pixel',
                 re_count: int = 1, no_aug: bool = False, distributed: bool = False, world_size: int = 1,
                 rank: int = 0, seed: int = 42, device: torch.device = torch.device('cpu')):
        if re_mode not in ('pixel', 'rand', 'const'):
            raise ValueError(f"re_mode must be 'pixel', 'rand' or 'const', got {re_mode!r}")
        self.dataset, self.batch_size, self.device = dataset, batch_size, torch.device(device)
        images, targets = _decode_all(dataset, img_size)
        self.images = images.to(self.device)  # (N, C, H, W) uint8
        self.targets = torch.as_tensor(targets, dtype=torch.int64, device=self.device)
        C = self.images.shape[1]
        if len(mean) != C or len(std) != C:
            raise ValueError(f'mean / std have {len(mean)} / {len(std)} values for {C}-channel images')
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, C, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, C, 1, 1)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.hflip, self.vflip = (0., 0.) if no_aug else (hflip, vflip)
        self.re_prob, self.re_mode, self.re_count = (0. if no_aug else re_prob), re_mode, re_count
        self.crop = not no_aug and (tuple(scale) != (1., 1.) or tuple(ratio) != (1., 1.))
        if distributed:
            self.sampler = data.DistributedSampler(range(len(self.images)), num_replicas=world_size, rank=rank,
                                                   shuffle=True, seed=seed, drop_last=True)
        else:
            self.sampler = data.RandomSampler(range(len(self.images)))

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self):
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        gen = torch.Generator().manual_seed(seed)  # augmentation parameters are drawn on the CPU
        order = torch.as_tensor(list(self.sampler), dtype=torch.int64, device=self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.augment(self.images[idx], gen), self.targets[idx]

    def augment(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(B, C, H, W) uint8 -> (B, C, H, W) float32, cropped, flipped, normalised and erased."""
        x = images.float().div_(255)
        if self.crop or self.hflip or self.vflip:
            x = self._crop_flip(x, gen)
        x = (x - self.mean) / self.std
        if self.re_prob:
            for _ in range(self.re_count):
                x = self._erase(x, gen)
        return x

    def _uniform(self, gen: torch.Generator, B: int, low: float, high: float) -> torch.Tensor:
        return (torch.rand(B, generator=gen, dtype=torch.float64) * (high - low) + low)

    def _crop_flip(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        B = x.shape[0]
        if self.crop:
            area = self._uniform(gen, B, *self.scale)
            log_ratio = self._uniform(gen, B, math.log(self.ratio[0]), math.log(self.ratio[1]))
            w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.)  # box size, fractions of the image side
            h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.)
            left = torch.rand(B, generator=gen, dtype=torch.float64) * (1 - w)
            top = torch.rand(B, generator=gen, dtype=torch.float64) * (1 - h)
        else:
            w = h = torch.ones(B, dtype=torch.float64)
            left = top = torch.zeros(B, dtype=torch.float64)
        sx = torch.where(torch.rand(B, generator=gen) < self.hflip, -w, w)
        sy = torch.where(torch.rand(B, generator=gen) < self.vflip, -h, h)
        # output coordinate u in [-1, 1] reads the input at s * u + (2 * left + w - 1) (align_corners=False)
        theta = torch.zeros(B, 2, 3, dtype=torch.float64)
        theta[:, 0, 0], theta[:, 0, 2] = sx, 2 * left + w - 1
        theta[:, 1, 1], theta[:, 1, 2] = sy, 2 * top + h - 1
        theta = theta.to(device=x.device, dtype=x.dtype)
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
        return torch.nn.functional.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)

    def _erase(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        B, C, H, W = x.shape
        area = self._uniform(gen, B, 0.02, 1 / 3) * H * W
        log_ratio = self._uniform(gen, B, math.log(0.3), math.log(1 / 0.3))
        h = torch.sqrt(area * torch.exp(log_ratio)).round().long()
        w = torch.sqrt(area / torch.exp(log_ratio)).round().long()
        fits = (h < H) & (w < W) & (torch.rand(B, generator=gen, dtype=torch.float64) < self.re_prob)
        h, w = torch.where(fits, h, 0), torch.where(fits, w, 0)
        top = (torch.rand(B, generator=gen, dtype=torch.float64) * (H - h + 1)).long()
        left = (torch.rand(B, generator=gen, dtype=torch.float64) * (W - w + 1)).long()
        rows, cols = torch.arange(H).view(1, H, 1), torch.arange(W).view(1, 1, W)
        box = ((rows >= top.view(B, 1, 1)) & (rows < (top + h).view(B, 1, 1))
               & (cols >= left.view(B, 1, 1)) & (cols < (left + w).view(B, 1, 1)))  # (B, H, W)
        if self.re_mode == 'pixel':
            fill = torch.randn(B, C, H, W, generator=gen)
        elif self.re_mode == 'rand':
            fill = torch.randn(B, C, 1, 1, generator=gen).expand(B, C, H, W)
        else:
            fill = torch.zeros(1, 1, 1, 1)
        box, fill = box.unsqueeze(1).to(x.device), fill.to(device=x.device, dtype=x.dtype)
        return torch.where(box, fill, x)


def _decode_all(dataset: data.Dataset, img_size: int) -> Tuple[torch.Tensor, List[int]]:
    """Every image of `dataset` as one (N, C, H, W) uint8 tensor (they must all be img_size x img_size), and the
    targets (the dataset's `targets`, else collected in the same pass)."""
    targets = getattr(dataset, 'targets', None)
    targets = list(targets) if targets is not None else None
    if isinstance(dataset, FashionMNIST) and dataset.transform is None and dataset.input_img_mode == 'L':
        images = torch.from_numpy(np.array(dataset.data, dtype=np.uint8)).unsqueeze(1)  # (N, 1, 28, 28), a copy
    else:
        collected = []
        sample0 = dataset[0] if len(dataset) else (np.zeros((img_size, img_size), np.uint8), 0)
        first = np.asarray(sample0[0])
        C = 1 if first.ndim == 2 else first.shape[2]
        nbytes = len(dataset) * C * img_size * img_size
        if nbytes > 8 * 2 ** 30:
            raise DataError(f'--in-memory would hold {nbytes / 2 ** 30:.1f} GiB of images: it is meant for small '
                            'datasets (Fashion-MNIST, CIFAR); drop --in-memory for this one')
        images = torch.empty(len(dataset), C, img_size, img_size, dtype=torch.uint8)
        for i in range(len(dataset)):
            img, target = dataset[i] if i else sample0
            img = np.asarray(img)
            collected.append(int(target))
            if img.dtype != np.uint8:
                raise DataError(f'--in-memory needs 8-bit images; image {i} is {img.dtype}: drop --in-memory')
            img = img[:, :, None] if img.ndim == 2 else img
            if img.shape != (img_size, img_size, C):
                raise DataError(f'--in-memory needs every image at the input size {img_size}x{img_size} with {C} '
                                f'channel(s); image {i} is {img.shape[1]}x{img.shape[0]} with {img.shape[2]}: '
                                'resize the dataset, set --img-size, or drop --in-memory')
            images[i].numpy()[...] = img.transpose(2, 0, 1)
        targets = targets if targets is not None else collected
    if images.shape[-2:] != (img_size, img_size):
        raise DataError(f'--in-memory needs images at the input size {img_size}x{img_size}; these are '
                        f'{images.shape[-1]}x{images.shape[-2]}: set --img-size {images.shape[-1]} or drop --in-memory')
    return images, targets
