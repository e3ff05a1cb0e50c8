"""dynamixer.data.InMemoryLoader: timm's training augmentation on whole batches of an in-memory uint8 tensor."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from dynamixer.data import DataError, FashionMNIST, InMemoryLoader


class ArrayDataset(torch.utils.data.Dataset):
    """(PIL image, index) pairs from an (N, H, W[, C]) uint8 array: the target names the image."""

    def __init__(self, images):
        self.images, self.transform = images, None

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return Image.fromarray(self.images[i]), i


def _images(n=40, size=12, channels=None, seed=0):
    shape = (n, size, size) if channels is None else (n, size, size, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _epoch(loader, seed=0):
    torch.manual_seed(seed)
    xs, ys = zip(*list(loader))
    return torch.cat(xs), torch.cat(ys)


def _to_uint8(x, mean, std):
    return ((x * std + mean) * 255).round().to(torch.uint8)


def test_without_augmentation_every_image_comes_once_per_epoch_normalised_exactly():
    images = _images()
    loader = InMemoryLoader(ArrayDataset(images), batch_size=8, img_size=12, mean=[0.5], std=[0.25], no_aug=True)
    assert len(loader) == 5
    x, y = _epoch(loader)
    assert x.shape == (40, 1, 12, 12) and x.dtype == torch.float32
    assert sorted(y.tolist()) == list(range(40))  # a permutation of the dataset
    expected = (torch.from_numpy(images[y.numpy()]).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(x[:, 0], expected, rtol=0, atol=1e-6)


def test_last_partial_batch_is_dropped_like_timms_training_loader():
    loader = InMemoryLoader(ArrayDataset(_images(n=21)), batch_size=8, img_size=12, mean=[0.], std=[1.])
    assert len(loader) == 2 and [len(y) for _, y in loader] == [8, 8]


def test_rgb_images_are_normalised_per_channel():
    images = _images(channels=3)
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]
    loader = InMemoryLoader(ArrayDataset(images), batch_size=10, img_size=12, mean=mean, std=std, no_aug=True)
    x, y = _epoch(loader)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    expected = torch.from_numpy(images[y.numpy()]).permute(0, 3, 1, 2)
    assert torch.equal(_to_uint8(x, m, s), expected)


@pytest.mark.parametrize('flag, dim', [('hflip', -1), ('vflip', -2)])
def test_flip_probability_one_mirrors_every_image_exactly(flag, dim):
    images = _images()
    flips = dict(hflip=0., vflip=1.) if flag == 'vflip' else dict(hflip=1.)
    loader = InMemoryLoader(ArrayDataset(images), batch_size=8, img_size=12, mean=[0.], std=[1.], scale=(1., 1.),
                            ratio=(1., 1.), **flips)
    x, y = _epoch(loader)
    expected = torch.from_numpy(images[y.numpy()]).flip(dim)
    assert torch.equal(_to_uint8(x[:, 0], 0., 1.), expected)


def test_crop_of_a_quarter_of_the_area_zooms_in_two_times():
    ramp = np.tile((np.arange(16) * 8).astype(np.uint8), (16, 1))  # value = 8 x column
    loader = InMemoryLoader(ArrayDataset(np.stack([ramp] * 16)), batch_size=16, img_size=16, mean=[0.], std=[1.],
                            scale=(0.25, 0.25), ratio=(1., 1.), hflip=0.)
    x, _ = _epoch(loader)
    steps = (x[:, 0, :, 1:] - x[:, 0, :, :-1]) * 255  # per output pixel: half an input pixel, 4 levels
    torch.testing.assert_close(steps[:, :, 1:-1], torch.full_like(steps[:, :, 1:-1], 4.), rtol=0, atol=1e-3)
    starts = x[:, 0, 0, 0] * 255  # the box's left edge is random: the crops differ
    assert starts.min() >= 0 and starts.max() <= 8 * 8 and starts.unique().numel() > 8


def test_an_epoch_depends_only_on_the_rng_state_at_its_start():
    loader = InMemoryLoader(ArrayDataset(_images()), batch_size=8, img_size=12, mean=[0.], std=[1.],
                            scale=(0.5, 1.), re_prob=0.5)
    a, b, other = _epoch(loader, seed=3), _epoch(loader, seed=3), _epoch(loader, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], other[1])
    torch.manual_seed(3)
    iter(loader)  # a generator: nothing is drawn until the first batch
    torch.manual_seed(3)
    first = next(iter(loader))
    torch.manual_seed(3)
    torch.rand(5)  # the model's own use of the global RNG after the epoch started does not change the batches
    it = iter(loader)
    assert not torch.equal(next(it)[0], first[0])
    torch.manual_seed(3)
    it = iter(loader)
    x0 = next(it)
    torch.rand(5)
    torch.testing.assert_close(torch.cat([x0[0]] + [x for x, _ in it]), a[0], rtol=0, atol=0)


def test_random_erasing_boxes_cover_2_to_33_percent_of_the_image():
    ones = np.full((64, 20, 20), 255, np.uint8)
    loader = InMemoryLoader(ArrayDataset(ones), batch_size=64, img_size=20, mean=[0.], std=[1.], no_aug=False,
                            scale=(1., 1.), ratio=(1., 1.), hflip=0., re_prob=1., re_mode='const')
    x, _ = _epoch(loader)
    erased = (x[:, 0] == 0).float().mean(dim=(1, 2))  # 'const' fills with 0 after normalisation
    assert (erased > 0).float().mean() >= 0.8  # a box too long for the image is not drawn (timm retries)
    hit = erased[erased > 0]
    assert hit.min() >= 0.015 and hit.max() <= 0.36
    assert set(x.unique().tolist()) == {0., 1.}


def test_random_erasing_pixel_mode_fills_with_unit_normal_noise():
    ones = np.full((64, 20, 20), 255, np.uint8)
    loader = InMemoryLoader(ArrayDataset(ones), batch_size=64, img_size=20, mean=[0.], std=[1.], scale=(1., 1.),
                            ratio=(1., 1.), hflip=0., re_prob=1.)
    x, _ = _epoch(loader)
    noise = x[x != 1.]
    assert noise.numel() > 1000 and abs(noise.mean().item()) < 0.1 and abs(noise.std().item() - 1) < 0.1


def test_distributed_ranks_read_disjoint_shares_of_each_epoch():
    kw = dict(batch_size=4, img_size=12, mean=[0.], std=[1.], no_aug=True, distributed=True, world_size=2, seed=5)
    ranks = [InMemoryLoader(ArrayDataset(_images()), rank=r, **kw) for r in (0, 1)]
    for r in ranks:
        r.sampler.set_epoch(1)
    seen = [set(_epoch(r)[1].tolist()) for r in ranks]
    assert len(seen[0]) == len(seen[1]) == 20 and not seen[0] & seen[1]
    ranks[0].sampler.set_epoch(2)
    assert _epoch(ranks[0])[1].tolist() != sorted(seen[0])


def test_image_of_another_size_is_a_clear_error():
    with pytest.raises(DataError, match=r'input size 16x16 .* image 0 is 12x12.* drop --in-memory'):
        InMemoryLoader(ArrayDataset(_images()), batch_size=8, img_size=16, mean=[0.], std=[1.])


def test_unknown_erasing_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="re_mode must be 'pixel', 'rand' or 'const'"):
        InMemoryLoader(ArrayDataset(_images()), batch_size=8, img_size=12, mean=[0.], std=[1.], re_mode='zeros')


@pytest.mark.skipif(not os.path.isdir('/usr/share/datasets/fashion-mnist'), reason='Fashion-MNIST is not installed')
def test_fashion_mnist_is_read_straight_from_its_array():
    ds = FashionMNIST(split='test', num_samples=500)
    loader = InMemoryLoader(ds, batch_size=100, img_size=28, mean=[0.], std=[1.], no_aug=True)
    assert loader.images.shape == (500, 1, 28, 28)
    assert torch.equal(loader.images[7, 0], torch.tensor(np.array(ds[7][0])))
    assert loader.targets.tolist() == ds.targets
