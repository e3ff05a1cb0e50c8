"""dynamixer.data: Fashion-MNIST from its idx files, the robust ImageFolder, image modes, data errors."""
import gzip
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_loader

from dynamixer.data import (
    FASHION_MNIST_DIR, DataError, convert_image_mode, create_fashion_mnist_dataset, create_image_dataset,
    dataset_num_classes, log_skipped_files, stratified_indices)

needs_fashion_mnist = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_MNIST_DIR, 'train-labels-idx1-ubyte.gz')),
    reason='needs the Debian package dataset-fashion-mnist')


@pytest.fixture(scope='module')
def fashion_train():
    return create_fashion_mnist_dataset(None, 'train')


# --------------------------------------------------------------------------------------------------------
# Fashion-MNIST


@needs_fashion_mnist
def test_fashion_mnist_train_is_60000_grey_28x28_with_labels_0_to_9(fashion_train):
    assert len(fashion_train) == 60000
    img, label = fashion_train[0]
    assert img.mode == 'L' and img.size == (28, 28)
    assert sorted(set(fashion_train.targets)) == list(range(10))
    assert np.bincount(fashion_train.targets).tolist() == [6000] * 10
    assert len(fashion_train.classes) == 10 and fashion_train.classes[9] == 'Ankle boot'


@needs_fashion_mnist
def test_fashion_mnist_first_sample_matches_the_raw_files(fashion_train):
    with gzip.open(os.path.join(FASHION_MNIST_DIR, 'train-labels-idx1-ubyte.gz')) as f:
        first_label = f.read(9)[8]  # 8-byte header, then one byte per label
    with gzip.open(os.path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz')) as f:
        first_image = np.frombuffer(f.read(16 + 784)[16:], dtype=np.uint8).reshape(28, 28)
    img, label = fashion_train[0]
    assert label == first_label == 9
    assert np.array_equal(np.asarray(img), first_image)


@needs_fashion_mnist
def test_fashion_mnist_validation_split_is_the_10000_test_images():
    for split in ('test', 'validation', 'val'):
        ds = create_fashion_mnist_dataset('', split)
        assert len(ds) == 10000
    assert np.bincount(ds.targets).tolist() == [1000] * 10


@needs_fashion_mnist
def test_fashion_mnist_num_samples_is_class_balanced_and_deterministic():
    a = create_image_dataset('fashion_mnist', None, 'test', num_samples=25)
    b = create_image_dataset('fashion_mnist', None, 'test', num_samples=25)
    assert len(a) == 25
    assert a.targets == b.targets and np.array_equal(a.data, b.data)
    assert sorted(np.bincount(a.targets).tolist()) == [2] * 5 + [3] * 5


@needs_fashion_mnist
def test_fashion_mnist_in_chans_3_gives_rgb_and_timm_loader_batches():
    ds = create_image_dataset('fashion_mnist', None, 'test', num_samples=8, in_chans=3)
    assert ds[0][0].mode == 'RGB'
    grey = create_image_dataset('fashion_mnist', None, 'test', num_samples=8, in_chans=1)
    loader = create_loader(grey, (1, 28, 28), batch_size=8, use_prefetcher=False, mean=(0.5,), std=(0.5,),
                           num_workers=0, crop_pct=1.0, device=torch.device('cpu'))
    x, y = next(iter(loader))
    assert x.shape == (8, 1, 28, 28) and y.tolist() == grey.targets
    expected = torch.from_numpy(grey.data[0]).float() / 255 * 2 - 1  # normalised with mean = std = 0.5
    assert torch.allclose(x[0, 0], expected, atol=1e-6)


def _write_idx(path, array, magic):
    header = magic.to_bytes(4, 'big') + b''.join(d.to_bytes(4, 'big') for d in array.shape)
    with open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_uncompressed_idx_files_from_data_dir(tmp_path):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    _write_idx(tmp_path / 't10k-images-idx3-ubyte', images, 0x0803)
    _write_idx(tmp_path / 't10k-labels-idx1-ubyte', np.array([4, 0, 7]), 0x0801)
    ds = create_fashion_mnist_dataset(str(tmp_path), 'test')
    assert [label for _, label in ds] == [4, 0, 7]
    assert np.array_equal(np.asarray(ds[2][0]), images[2])


def test_fashion_mnist_missing_dir_error_names_dir_files_and_package(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(DataError) as e:
        create_image_dataset('fashion_mnist', str(missing), 'train')
    msg = str(e.value)
    assert str(missing) in msg
    for name in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
                 't10k-labels-idx1-ubyte'):
        assert name in msg
    assert 'apt-get install dataset-fashion-mnist' in msg and '--data-dir' in msg
    assert '\n' not in msg


def test_fashion_mnist_truncated_file_error_names_file(tmp_path):
    _write_idx(tmp_path / 't10k-images-idx3-ubyte', np.zeros((3, 28, 28)), 0x0803)
    _write_idx(tmp_path / 't10k-labels-idx1-ubyte', np.zeros(3), 0x0801)
    path = tmp_path / 't10k-images-idx3-ubyte'
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match='t10k-images-idx3-ubyte is truncated'):
        create_fashion_mnist_dataset(str(tmp_path), 'test')


def test_stratified_indices_take_round_robin_over_classes_in_file_order():
    targets = [0, 0, 0, 1, 2, 2, 1, 0]
    assert stratified_indices(targets, 3).tolist() == [0, 3, 4]
    assert stratified_indices(targets, 5).tolist() == [0, 1, 3, 4, 5]


# --------------------------------------------------------------------------------------------------------
# ImageFolder


def _save(path, img, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _make_folder(root, classes=('a', 'b'), per_class=3, size=8, split='validation'):
    rng = np.random.default_rng(0)
    for c in classes:
        for i in range(per_class):
            _save(root / split / c / f'{i}.png', Image.fromarray(rng.integers(0, 255, (size, size, 3), np.uint8)))
    return root


def _add_bad_files(root, split='validation'):
    """A JPEG cut in half and a text file named .jpg; returns their paths."""
    truncated = _save(root / split / 'a' / 'truncated.jpg', Image.new('RGB', (64, 64), (10, 200, 30)), quality=95)
    truncated.write_bytes(truncated.read_bytes()[:300])
    text = root / split / 'b' / 'notes.jpg'
    text.write_text('this is not an image\n')
    return str(truncated), str(text)


def test_unreadable_images_are_skipped_with_a_warning_naming_them_and_counted(tmp_path, caplog):
    _make_folder(tmp_path)
    bad = _add_bad_files(tmp_path)
    ds = create_image_dataset('', str(tmp_path), 'validation')
    assert len(ds) == 8
    with caplog.at_level(logging.WARNING, logger='dynamixer.data'):
        images = [ds[i][0] for i in range(len(ds))]
        assert all(img.mode == 'RGB' and img.size == (8, 8) for img in images)
        for path in bad:
            assert any(path in r.getMessage() and 'skipped' in r.getMessage() for r in caplog.records)
        assert sorted(ds.skipped_files()) == sorted(bad)
        caplog.clear()
        assert log_skipped_files(ds) == 2
        assert '2 unreadable image file(s) skipped this epoch' in caplog.text
    assert ds.skipped_files() == []  # reset for the next epoch


def test_skipped_files_are_counted_across_dataloader_worker_processes(tmp_path):
    _make_folder(tmp_path)
    bad = _add_bad_files(tmp_path)
    ds = create_image_dataset('', str(tmp_path), 'validation')
    ds.transform = lambda img: torch.from_numpy(np.asarray(img).copy())
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    labels = torch.cat([y for _, y in loader])
    assert len(labels) == 8
    assert sorted(ds.skipped_files()) == sorted(bad)


def test_strict_data_stops_at_the_first_bad_file_naming_it(tmp_path):
    _make_folder(tmp_path)
    truncated, _ = _add_bad_files(tmp_path)
    ds = create_image_dataset('', str(tmp_path), 'validation', strict=True)
    index = [i for i in range(len(ds)) if ds.filename(i, absolute=True) == truncated][0]
    with pytest.raises(DataError) as e:
        ds[index]
    assert str(e.value).startswith(f'unreadable image {truncated}: ')
    assert 'truncated' in str(e.value).lower() and 'drop --strict-data' in str(e.value)


def test_strict_data_error_from_a_worker_process_is_one_line(tmp_path):
    _make_folder(tmp_path)
    truncated, _ = _add_bad_files(tmp_path)
    ds = create_image_dataset('', str(tmp_path), 'validation', strict=True)
    ds.transform = lambda img: torch.from_numpy(np.asarray(img).copy())
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=1)
    with pytest.raises(DataError) as e:
        next(iter(loader))
    assert str(e.value).startswith(f'unreadable image {truncated}') and '\n' not in str(e.value)


def test_rgba_grey_palette_and_16bit_pngs_load_with_correct_values(tmp_path):
    rgba = Image.new('RGBA', (2, 2), (255, 0, 0, 128))  # half-transparent red over white -> pink
    grey = Image.new('L', (2, 2), 100)
    palette = Image.new('P', (2, 2), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)  # index 1 = blue
    deep = Image.fromarray(np.array([[0, 257], [32896, 65535]], dtype=np.uint16))  # 16-bit grey
    for name, img in dict(rgba=rgba, grey=grey, palette=palette, deep=deep).items():
        _save(tmp_path / 'val' / name / 'img.png', img)
    assert Image.open(tmp_path / 'val' / 'deep' / 'img.png').mode.startswith('I')  # PNG kept 16 bit

    ds = create_image_dataset('', str(tmp_path), 'validation', in_chans=3)
    pixels = {ds.filename(i).split(os.sep)[0]: np.asarray(ds[i][0]) for i in range(len(ds))}
    assert all(p.shape == (2, 2, 3) and p.dtype == np.uint8 for p in pixels.values())
    assert pixels['rgba'][0, 0].tolist() == [255, 127, 127]
    assert pixels['grey'][0, 0].tolist() == [100, 100, 100]
    assert pixels['palette'][0, 0].tolist() == [0, 0, 255]
    assert pixels['deep'][..., 0].tolist() == [[0, 1], [128, 255]]  # scaled by 255/65535, not clipped

    ds = create_image_dataset('', str(tmp_path), 'validation', in_chans=1)
    pixels = {ds.filename(i).split(os.sep)[0]: np.asarray(ds[i][0]) for i in range(len(ds))}
    assert pixels['deep'].tolist() == [[0, 1], [128, 255]]
    assert pixels['grey'][0, 0] == 100
    assert pixels['palette'][0, 0] == 29  # ITU-R 601 luma of pure blue: 0.114 * 255


def test_convert_image_mode_scales_32bit_integer_images_like_16bit():
    img = Image.fromarray(np.array([[0, 65535, 70000]], dtype=np.int32))  # mode 'I'
    assert img.mode == 'I'
    assert np.asarray(convert_image_mode(img, 'L')).tolist() == [[0, 255, 255]]


def test_empty_class_folder_is_an_error_naming_it(tmp_path):
    _make_folder(tmp_path)
    (tmp_path / 'validation' / 'c').mkdir()
    with pytest.raises(DataError, match=f"class folder {tmp_path / 'validation' / 'c'} has no images"):
        create_image_dataset('', str(tmp_path), 'validation')


def test_missing_split_folder_is_an_error_naming_the_split_and_what_exists(tmp_path):
    _make_folder(tmp_path, split='train')
    with pytest.raises(DataError) as e:
        create_image_dataset('', str(tmp_path), 'validation')
    assert str(e.value) == (f"split 'validation' not found in data dir {tmp_path}: it has the split folder(s) "
                            f"train; pass --split train or create {tmp_path / 'validation'}")


def test_split_synonyms_and_plain_class_folders_are_found(tmp_path):
    _make_folder(tmp_path / 'with_val', split='val')
    assert len(create_image_dataset('', str(tmp_path / 'with_val'), 'validation')) == 6
    _make_folder(tmp_path / 'flat', split='.')  # class folders directly in the data dir
    ds = create_image_dataset('', str(tmp_path / 'flat'), 'validation')
    assert len(ds) == 6 and dataset_num_classes(ds) == 2


def test_missing_empty_or_unset_data_dir_is_an_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=f'data dir {tmp_path / "absent"} does not exist'):
        create_image_dataset('', str(tmp_path / 'absent'), 'validation')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match=f'data dir {tmp_path / "empty"} is empty'):
        create_image_dataset('', str(tmp_path / 'empty'), 'validation')
    with pytest.raises(DataError, match='no data dir given'):
        create_image_dataset('', None, 'validation')
    (tmp_path / 'nodata' / 'validation' / 'a').mkdir(parents=True)
    (tmp_path / 'nodata' / 'validation' / 'a' / 'readme.txt').write_text('x')
    with pytest.raises(DataError, match='no images found in'):
        create_image_dataset('', str(tmp_path / 'nodata'), 'validation')


def test_num_samples_on_an_image_folder_keeps_a_class_balanced_subset(tmp_path):
    _make_folder(tmp_path, classes=('a', 'b', 'c'), per_class=4)
    ds = create_image_dataset('', str(tmp_path), 'validation', num_samples=6)
    assert len(ds) == 6 and sorted(ds.targets) == [0, 0, 1, 1, 2, 2]
    assert [ds.filename(i) for i in range(6)] == [f'{c}/{i}.png' for c in 'abc' for i in range(2)]
