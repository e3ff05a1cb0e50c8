"""validate.py: results on tiny generated datasets equal a direct computation; bad inputs end in one error line."""
import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

import dynamixer  # noqa: F401  registers dynamixer_xs

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES, IMG = 5, 16


def _import_validate():
    spec = importlib.util.spec_from_file_location('validate', ROOT / 'validate.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validate = _import_validate()


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared CPU extra threads only spin (50x slower at 2 cores under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_model(num_classes=NUM_CLASSES, img_size=IMG, in_chans=3, seed=0):
    torch.manual_seed(seed)
    return timm.create_model('dynamixer_xs', num_classes=num_classes, img_size=img_size, in_chans=in_chans).eval()


def _save_checkpoint(path, model, **extra):
    torch.save(dict(state_dict=model.state_dict(), epoch=3, arch='dynamixer_xs', **extra), path)
    return str(path)


def _normalize(pixels):
    """(N, H, W, 3) uint8 -> (N, 3, H, W) normalised the way the model's data config says."""
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)


def _direct_metrics(model, x, y):
    with torch.no_grad():
        logits = model(x)
    top1 = 100 * (logits.argmax(-1) == y).float().mean().item()
    top5 = 100 * (logits.topk(5, -1).indices == y[:, None]).any(-1).float().mean().item()
    return top1, top5, F.cross_entropy(logits, y).item()


@pytest.fixture
def folder(tmp_path):
    """validation/c<k>/<i>.png: 5 classes x 4 random 16x16 RGB images; returns (root, pixels, labels)."""
    rng = np.random.default_rng(0)
    pixels, labels = [], []
    for c in range(NUM_CLASSES):
        (tmp_path / 'data' / 'validation' / f'c{c}').mkdir(parents=True)
        for i in range(4):
            p = rng.integers(0, 256, (IMG, IMG, 3), dtype=np.uint8)
            Image.fromarray(p).save(tmp_path / 'data' / 'validation' / f'c{c}' / f'{i}.png')
            pixels.append(p)
            labels.append(c)
    return tmp_path / 'data', np.stack(pixels), torch.tensor(labels)


@pytest.fixture
def checkpoint(tmp_path):
    return _save_checkpoint(tmp_path / 'model.pth.tar', _tiny_model())


def _run_main(argv, capsys):
    rc = validate.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _error_lines(err):
    return [line for line in err.splitlines() if line.startswith('error:')]


def test_validate_image_folder_top1_equals_direct_computation(folder, checkpoint, tmp_path, capsys):
    root, pixels, labels = folder
    results_file = tmp_path / 'out' / 'results.json'
    rc, out, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                              '--checkpoint', checkpoint, '-b', 8, '-j', 0, '--results-file', results_file], capsys)
    assert rc == 0, err
    results = json.loads(results_file.read_text())
    model = _tiny_model()
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    top1, top5, loss = _direct_metrics(model, _normalize(pixels), labels)
    assert 0 < top5 < 100 or 0 < top1 < 100  # a meaningful comparison, not all-right or all-wrong
    assert results['top1'] == pytest.approx(top1, abs=1e-3)
    assert results['top5'] == pytest.approx(top5, abs=1e-3)
    assert results['loss'] == pytest.approx(loss, rel=1e-4)
    assert results['num_images'] == 20 and results['skipped_files'] == 0 and results['images_per_sec'] > 0
    assert f"Acc@1 {results['top1']:.3f}" in out


def test_validate_on_a_cpu_logs_its_capability_threads_and_malloc(folder, checkpoint, capsys):
    from dynamixer.engine import cpu_line
    root, _, _ = folder
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', checkpoint, '-b', 8, '-j', 0, '--device', 'cpu'], capsys)
    assert rc == 0, err
    assert cpu_line() in err and cpu_line().startswith(f'CPU: {torch.backends.cpu.get_cpu_capability()}, ')


def test_validate_tta_hflip_averages_the_logits_of_each_image_and_its_mirror(folder, checkpoint, tmp_path, capsys):
    root, pixels, labels = folder
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', checkpoint, '--tta-hflip', '-b', 8, '-j', 0,
                            '--results-file', tmp_path / 'r.json'], capsys)
    assert rc == 0, err
    results = json.loads((tmp_path / 'r.json').read_text())
    model = _tiny_model()
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    x = _normalize(pixels)
    with torch.no_grad():
        logits = (model(x) + model(x.flip(-1))) / 2
    plain_loss = _direct_metrics(model, x, labels)[2]
    loss = F.cross_entropy(logits, labels).item()
    assert abs(loss - plain_loss) > 1e-3  # the mirror changes the outputs: the test can tell TTA from none
    assert results['loss'] == pytest.approx(loss, rel=1e-4)
    assert results['top1'] == pytest.approx(100 * (logits.argmax(-1) == labels).float().mean().item(), abs=1e-3)
    assert results['tta_hflip'] is True


def test_validate_model_dtype_runs_the_model_in_bfloat16_close_to_float32(folder, checkpoint, tmp_path, capsys):
    root, pixels, labels = folder
    common = [root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES, '--checkpoint',
              checkpoint, '-b', 8, '-j', 0, '--force-amp']  # --force-amp: bfloat16 even on a CPU without AVX-512
    rc, _, err = _run_main(common + ['--model-dtype', 'bfloat16', '--results-file', tmp_path / 'bf16.json'], capsys)
    assert rc == 0, err
    rc, _, err = _run_main(common + ['--results-file', tmp_path / 'fp32.json'], capsys)
    assert rc == 0, err
    bf16, fp32 = (json.loads((tmp_path / f).read_text()) for f in ('bf16.json', 'fp32.json'))
    assert (bf16['model_dtype'], fp32['model_dtype']) == ('bfloat16', 'float32')
    assert bf16['loss'] != fp32['loss']  # the model really ran in another dtype
    assert bf16['loss'] == pytest.approx(fp32['loss'], rel=2e-2)


def test_validate_model_dtype_with_amp_is_one_error_line(folder, checkpoint, capsys):
    root, _, _ = folder
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', checkpoint, '--model-dtype', 'bfloat16', '--amp'], capsys)
    assert rc == 2
    assert '--model-dtype and --amp' in err and 'give one of them' in err
    assert 'Traceback' not in err


def test_validate_uses_ema_weights_when_asked(folder, tmp_path, capsys):
    root, pixels, labels = folder
    ema = _tiny_model(seed=1)
    path = _save_checkpoint(tmp_path / 'ema.pth.tar', _tiny_model(seed=0), state_dict_ema=ema.state_dict())
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', path, '--use-ema', '-j', 0, '--results-file', tmp_path / 'r.json'], capsys)
    assert rc == 0, err
    top1, _, loss = _direct_metrics(ema, _normalize(pixels), labels)
    results = json.loads((tmp_path / 'r.json').read_text())
    assert results['loss'] == pytest.approx(loss, rel=1e-4) and results['top1'] == pytest.approx(top1, abs=1e-3)


def test_validate_writes_csv_results_chosen_by_extension(folder, checkpoint, tmp_path, capsys):
    root, _, _ = folder
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', checkpoint, '-j', 0, '--results-file', tmp_path / 'r.csv'], capsys)
    assert rc == 0, err
    header, row = (tmp_path / 'r.csv').read_text().splitlines()
    fields = dict(zip(header.split(','), row.split(',')))
    assert fields['model'] == 'dynamixer_xs' and fields['num_images'] == '20' and float(fields['top1']) >= 0


def test_validate_skips_and_counts_unreadable_images(folder, checkpoint, tmp_path, capsys):
    root, _, _ = folder
    bad = root / 'validation' / 'c0' / 'broken.jpg'
    bad.write_text('not a jpeg')
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', checkpoint, '-j', 0, '--results-file', tmp_path / 'r.json'], capsys)
    assert rc == 0
    results = json.loads((tmp_path / 'r.json').read_text())
    assert results['skipped_files'] == 1 and results['num_images'] == 20
    assert f'skipped unreadable image {bad}' in err and '1 unreadable image file(s) skipped during validation' in err


def test_validate_strict_data_stops_with_one_error_line_naming_the_file(folder, checkpoint, capsys):
    root, _, _ = folder
    bad = root / 'validation' / 'c0' / 'broken.jpg'
    bad.write_text('not a jpeg')
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', checkpoint, '-j', 1, '--strict-data'], capsys)
    assert rc == 2
    assert len(_error_lines(err)) == 1 and _error_lines(err)[0].startswith(f'error: unreadable image {bad}: ')
    assert 'Traceback' not in err


@pytest.mark.parametrize('fault', ['truncated', 'not_a_checkpoint', 'wrong_class_count'])
def test_validate_bad_checkpoint_exits_2_with_one_error_line_and_no_traceback(folder, checkpoint, tmp_path, fault):
    root, _, _ = folder
    path = tmp_path / f'{fault}.pth.tar'
    if fault == 'truncated':
        data = Path(checkpoint).read_bytes()
        path.write_bytes(data[:len(data) // 2])
        expected = 'truncated or corrupt'
    elif fault == 'not_a_checkpoint':
        path.write_text('epoch,loss\n1,0.5\n')
        expected = ''  # the wording is dynamixer.checkpoint's; here: one line that names the file
    else:
        _save_checkpoint(path, _tiny_model(num_classes=7))
        expected = 'has 7 classes but the model was built for 5: pass --num-classes 7'
    proc = subprocess.run(
        [sys.executable, 'validate.py', str(root), '--model', 'dynamixer_xs', '--img-size', str(IMG),
         '--num-classes', str(NUM_CLASSES), '--checkpoint', str(path), '-j', '0'],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 2, proc.stderr
    assert 'Traceback' not in proc.stderr
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1 and proc.stderr.rstrip().splitlines()[-1] == errors[0]
    assert errors[0].startswith(f"error: checkpoint '{path}'") and expected in errors[0]


def test_validate_missing_checkpoint_is_one_error_line(folder, tmp_path, capsys):
    root, _, _ = folder
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', tmp_path / 'nope.pth.tar'], capsys)
    assert rc == 2 and _error_lines(err) == [f"error: checkpoint '{tmp_path / 'nope.pth.tar'}': file not found"]


class _CreatesFile:
    """A pickle payload that creates a file if it is ever unpickled with full pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_validate_malicious_checkpoint_is_refused_without_running_it(folder, tmp_path, capsys):
    root, _, _ = folder
    marker, path = tmp_path / 'pwned', tmp_path / 'evil.pth.tar'
    torch.save(dict(state_dict=_tiny_model().state_dict(), payload=_CreatesFile(str(marker))), path)
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', path], capsys)
    assert rc == 2 and not marker.exists()
    assert len(_error_lines(err)) == 1 and _error_lines(err)[0].startswith(f"error: checkpoint '{path}': refused")


def test_validate_checkpoint_of_another_channel_count_says_which_flag(folder, tmp_path, capsys):
    root, _, _ = folder
    path = _save_checkpoint(tmp_path / 'grey.pth.tar', _tiny_model(in_chans=1))
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', path], capsys)
    assert rc == 2
    assert _error_lines(err) == [f"error: checkpoint '{path}' takes 1-channel images but the model was built "
                                 'for 3: pass --in-chans 1']


def test_validate_checkpoint_of_another_architecture_is_one_error_line(folder, tmp_path, capsys):
    root, _, _ = folder
    torch.manual_seed(0)
    other = timm.create_model('test_vit', img_size=IMG, num_classes=NUM_CLASSES)
    path = _save_checkpoint(tmp_path / 'vit.pth.tar', other)
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', path], capsys)
    assert rc == 2 and len(_error_lines(err)) == 1
    assert f"checkpoint '{path}'" in err and 'pass the --model' in err


def test_validate_use_ema_without_ema_weights_is_an_error(folder, checkpoint, capsys):
    root, _, _ = folder
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', NUM_CLASSES,
                            '--checkpoint', checkpoint, '--use-ema'], capsys)
    assert rc == 2 and _error_lines(err) == [f"error: checkpoint '{checkpoint}' holds no EMA weights "
                                             '(state_dict_ema): drop --use-ema']


def test_validate_missing_data_dir_is_one_error_line(checkpoint, tmp_path, capsys):
    rc, _, err = _run_main([tmp_path / 'absent', '--model', 'dynamixer_xs', '--img-size', IMG,
                            '--num-classes', NUM_CLASSES, '--checkpoint', checkpoint], capsys)
    assert rc == 2 and len(_error_lines(err)) == 1
    assert _error_lines(err)[0].startswith(f"error: data dir {tmp_path / 'absent'} does not exist")


def test_validate_more_dataset_classes_than_model_outputs_is_an_error(folder, tmp_path, capsys):
    root, _, _ = folder
    path = _save_checkpoint(tmp_path / 'three.pth.tar', _tiny_model(num_classes=3))
    rc, _, err = _run_main([root, '--model', 'dynamixer_xs', '--img-size', IMG, '--num-classes', 3,
                            '--checkpoint', path], capsys)
    assert rc == 2 and 'has 5 classes but the model has 3 outputs: pass --num-classes 5' in _error_lines(err)[0]


def test_validate_unknown_model_is_one_error_line(folder, capsys):
    root, _, _ = folder
    rc, _, err = _run_main([root, '--model', 'dynamixer_xxl'], capsys)
    assert rc == 2 and _error_lines(err)[0].startswith('error: --model dynamixer_xxl: unknown model (similar: ')


def test_validate_results_file_must_be_json_or_csv(capsys):
    with pytest.raises(SystemExit) as e:
        validate.main(['--results-file', 'out.txt'])
    assert e.value.code == 2 and 'must end in .json or .csv' in capsys.readouterr().err


def _write_cifar10(root, n=20, seed=0):
    """cifar-10-batches-py as the real archive has it: pickled dicts, data (N, 3072) uint8 planes R, G, B."""
    rng = np.random.default_rng(seed)
    folder = root / 'cifar-10-batches-py'
    folder.mkdir(parents=True)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    batch = {'batch_label': 'testing batch 1 of 1', 'labels': labels, 'data': images.reshape(n, 3072),
             'filenames': [f'img_{i}.png' for i in range(n)]}
    with open(folder / 'test_batch', 'wb') as f:
        pickle.dump(batch, f, protocol=2)
    for i in range(1, 6):  # training batches are listed in the integrity check too
        with open(folder / f'data_batch_{i}', 'wb') as f:
            pickle.dump(dict(batch, batch_label=f'training batch {i} of 5'), f, protocol=2)
    names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
    with open(folder / 'batches.meta', 'wb') as f:
        pickle.dump({'label_names': names, 'num_cases_per_batch': n, 'num_vis': 3072}, f, protocol=2)
    return images.transpose(0, 2, 3, 1), torch.tensor(labels)  # (N, 32, 32, 3)


def test_validate_torch_cifar10_top1_equals_direct_computation(tmp_path, monkeypatch, capsys):
    import torchvision.datasets.cifar
    pixels, labels = _write_cifar10(tmp_path / 'cifar')
    # our generated files cannot have the real archive's md5 sums: accept them in this test only
    monkeypatch.setattr(torchvision.datasets.cifar, 'check_integrity', lambda *args, **kwargs: True)
    model = _tiny_model(num_classes=10, img_size=32)
    path = _save_checkpoint(tmp_path / 'cifar.pth.tar', model)
    rc, _, err = _run_main([tmp_path / 'cifar', '--dataset', 'torch/cifar10', '--model', 'dynamixer_xs',
                            '--num-classes', 10, '--checkpoint', path, '-j', 0, '-b', 8,
                            '--results-file', tmp_path / 'r.json'], capsys)
    assert rc == 0, err
    results = json.loads((tmp_path / 'r.json').read_text())
    top1, top5, loss = _direct_metrics(model, _normalize(pixels), labels)
    assert results['num_images'] == 20 and results['img_size'] == 32
    assert results['top1'] == pytest.approx(top1, abs=1e-3) and results['top5'] == pytest.approx(top5, abs=1e-3)
    assert results['loss'] == pytest.approx(loss, rel=1e-4)


def test_validate_torch_cifar10_missing_is_one_error_line(tmp_path, checkpoint, capsys):
    (tmp_path / 'empty').mkdir()
    rc, _, err = _run_main([tmp_path / 'empty', '--dataset', 'torch/cifar10', '--model', 'dynamixer_xs',
                            '--num-classes', 10, '--img-size', 32], capsys)
    assert rc == 2 and len(_error_lines(err)) == 1
    assert f"torch/cifar10 not found or corrupted in data dir {tmp_path / 'empty'}" in err and '--dataset-download' in err


@pytest.mark.skipif(not os.path.exists('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz'),
                    reason='needs the Debian package dataset-fashion-mnist')
def test_validate_fashion_mnist_takes_model_and_data_settings_from_the_training_args(tmp_path, capsys):
    from dynamixer.data import create_fashion_mnist_dataset
    model = _tiny_model(num_classes=10, img_size=28, in_chans=1)
    train_args = dict(model='dynamixer_xs', num_classes=10, img_size=28, in_chans=1, mean=[0.2860], std=[0.3530],
                      crop_pct=None, interpolation='', lr=2e-3)  # as train.py stores them
    path = _save_checkpoint(tmp_path / 'fm.pth.tar', model, args=train_args)
    rc, _, err = _run_main(['--dataset', 'fashion_mnist', '--checkpoint', path, '--num-samples', 40, '-j', 0,
                            '--results-file', tmp_path / 'r.json'], capsys)
    assert rc == 0, err
    assert '--model dynamixer_xs, --num-classes 10, --img-size 28, --in-chans 1, --mean 0.286, --std 0.353' in err
    results = json.loads((tmp_path / 'r.json').read_text())
    ds = create_fashion_mnist_dataset(None, 'test', num_samples=40)
    x = (torch.from_numpy(ds.data).float()[:, None] / 255 - 0.2860) / 0.3530  # (40, 1, 28, 28)
    top1, _, loss = _direct_metrics(model, x, torch.tensor(ds.targets))
    assert results['model'] == 'dynamixer_xs' and results['num_images'] == 40 and results['in_chans'] == 1
    assert results['top1'] == pytest.approx(top1, abs=1e-3) and results['loss'] == pytest.approx(loss, rel=1e-4)


def test_validate_flags_override_the_training_args(folder, tmp_path, capsys):
    root, pixels, labels = folder
    model = _tiny_model()
    path = _save_checkpoint(tmp_path / 'm.pth.tar', model, args=dict(model='dynamixer_xs', num_classes=NUM_CLASSES,
                                                                      img_size=IMG, mean=[0.9], std=[0.1]))
    rc, _, err = _run_main([root, '--checkpoint', path, '--mean', *IMAGENET_DEFAULT_MEAN, '--std', *IMAGENET_DEFAULT_STD,
                            '-j', 0, '--results-file', tmp_path / 'r.json'], capsys)
    assert rc == 0, err
    top1, _, loss = _direct_metrics(model, _normalize(pixels), labels)
    results = json.loads((tmp_path / 'r.json').read_text())
    assert results['loss'] == pytest.approx(loss, rel=1e-4) and results['top1'] == pytest.approx(top1, abs=1e-3)


def test_validate_reference_layout_checkpoint_matches_the_reference_model(tmp_path, capsys):
    from reference_dynamixer import RefDynaMixer, randomize_
    ref = randomize_(RefDynaMixer('dynamixer_s', img_size=56, num_classes=NUM_CLASSES)).eval()
    path = tmp_path / 'reference.pth.tar'  # the authors' training script: state_dict with a DDP prefix
    torch.save({'epoch': 3, 'state_dict': {'module.' + k: v for k, v in ref.state_dict().items()}}, path)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (NUM_CLASSES, 56, 56, 3), dtype=np.uint8)
    for c in range(NUM_CLASSES):
        (tmp_path / 'data' / 'val' / f'c{c}').mkdir(parents=True)
        Image.fromarray(pixels[c]).save(tmp_path / 'data' / 'val' / f'c{c}' / '0.png')
    rc, _, err = _run_main([tmp_path / 'data', '--model', 'dynamixer_s', '--img-size', 56, '--num-classes', NUM_CLASSES,
                            '--crop-pct', 1.0, '--checkpoint', path, '-j', 0, '--results-file', tmp_path / 'r.json'],
                           capsys)
    assert rc == 0, err
    results = json.loads((tmp_path / 'r.json').read_text())
    top1, top5, loss = _direct_metrics(ref, _normalize(pixels), torch.arange(NUM_CLASSES))
    assert results['top1'] == pytest.approx(top1, abs=1e-3) and results['loss'] == pytest.approx(loss, rel=1e-4)


def test_validate_reproduces_train_py_eval_metrics_from_its_checkpoint_alone(tmp_path, image_folder, train_cli, capsys):
    import csv
    result = train_cli([image_folder, '--model', 'dynamixer_xs', '--img-size', '32', '-b', '3', '-j', '0', '--epochs', '1',
                        '--warmup-epochs', '0', '--mean', '0.5', '0.5', '0.5', '--std', '0.25', '0.25', '0.25',
                        '--output', tmp_path, '--experiment', 'run'])
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / 'run' / 'summary.csv') as f:
        summary = list(csv.DictReader(f))[-1]
    rc, _, err = _run_main([image_folder, '--checkpoint', tmp_path / 'run' / 'last.pth.tar', '-j', 0,
                            '--results-file', tmp_path / 'r.json'], capsys)
    assert rc == 0, err
    results = json.loads((tmp_path / 'r.json').read_text())
    assert results['loss'] == pytest.approx(float(summary['eval_loss']), rel=1e-4)
    assert results['top1'] == pytest.approx(float(summary['eval_top1']), abs=1e-3)


def test_validate_takes_channels_and_size_from_a_pretrained_tag(tmp_path, capsys):
    if not os.path.isdir('/usr/share/datasets/fashion-mnist'):
        pytest.skip('Fashion-MNIST is not installed')
    results_file = tmp_path / 'fmnist.json'
    rc, out, err = _run_main(['--dataset', 'fashion_mnist', '--split', 'test', '--model', 'dynamixer_xs.fmnist',
                              '--pretrained', '--num-samples', '200', '--results-file', results_file], capsys)
    assert rc == 0, err[-2000:]
    results = json.loads(results_file.read_text())
    assert results['in_chans'] == 1 and results['img_size'] == 28
    assert results['top1'] > 80.


def test_validate_rebuilds_the_architecture_from_the_stored_model_kwargs(folder, tmp_path, capsys):
    root, pixels, labels = folder
    torch.manual_seed(1)
    model = timm.create_model('dynamixer_xs', num_classes=NUM_CLASSES, img_size=IMG, embed_dims=(16, 48, 48, 48)).eval()
    path = _save_checkpoint(tmp_path / 'w.pth.tar', model, args=dict(
        model='dynamixer_xs', num_classes=NUM_CLASSES, img_size=IMG, model_kwargs={'embed_dims': [16, 48, 48, 48]}))
    rc, _, err = _run_main([root, '--checkpoint', path, '-j', 0, '--results-file', tmp_path / 'r.json'], capsys)
    assert rc == 0, err
    assert "--model-kwargs {'embed_dims': [16, 48, 48, 48]}" in err  # taken from the training args
    top1, _, loss = _direct_metrics(model, _normalize(pixels), labels)
    results = json.loads((tmp_path / 'r.json').read_text())
    assert results['loss'] == pytest.approx(loss, rel=1e-4) and results['top1'] == pytest.approx(top1, abs=1e-3)


def test_validate_builds_a_cnn_without_img_size_and_takes_model_kwargs_from_the_flag(folder, tmp_path, capsys):
    root, pixels, labels = folder
    torch.manual_seed(2)
    model = timm.create_model('resnet10t', num_classes=NUM_CLASSES, channels=(8, 16, 24, 32)).eval()
    path = tmp_path / 'cnn.pth.tar'
    torch.save(dict(state_dict=model.state_dict(), args=dict(model='resnet10t', num_classes=NUM_CLASSES, img_size=IMG,
                                                             mean=list(IMAGENET_DEFAULT_MEAN), std=list(IMAGENET_DEFAULT_STD),
                                                             crop_pct=1.0)), path)
    rc, _, err = _run_main([root, '--checkpoint', path, '--model-kwargs', 'channels=(8,16,24,32)', '-j', 0,
                            '--results-file', tmp_path / 'r.json'], capsys)
    assert rc == 0, err
    assert 'resnet10t takes no img_size argument: built without it' in err
    top1, _, loss = _direct_metrics(model, _normalize(pixels), labels)
    results = json.loads((tmp_path / 'r.json').read_text())
    assert results['loss'] == pytest.approx(loss, rel=1e-4) and results['top1'] == pytest.approx(top1, abs=1e-3)
