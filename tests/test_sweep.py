"""scripts/sweep_fmnist.py: every sweep entry builds at Fashion-MNIST size, and the tables are what the runs say."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import timm
import torch

import dynamixer  # noqa: F401  registers dynamixer_*

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, 'scripts'))
import sweep_fmnist  # noqa: E402


ENTRIES = {name: spec for group in sweep_fmnist.GROUPS.values() for name, spec in group.items()}


@pytest.mark.parametrize('name', sorted(ENTRIES))
def test_every_sweep_entry_builds_a_0_7m_model_for_28px_grayscale(name):
    model_name, kwargs, _ = ENTRIES[name]
    extra = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    create = sweep_fmnist._patched_create_model(timm.create_model, extra)
    model = create(model_name, img_size=28, in_chans=1, num_classes=10)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert 0.55 < params < 0.8, params  # "same size": every peer and ablation within 0.6-0.74M
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def _fake_run(out, name, seed, top1s, wall):
    run = out / f'{name}-s{seed}'
    run.mkdir(parents=True)
    (run / 'run.json').write_text(json.dumps(dict(name=name, seed=seed, model='dynamixer_xs', model_kwargs={},
                                                  wall_s=wall, loadavg_start=[1.0, 1.0, 1.0],
                                                  finished_utc='2026-11-23 12:00:00')))
    (run / 'summary.csv').write_text('epoch,eval_loss,eval_top1\n' + ''.join(
        f'{i},0.5,{t}\n' for i, t in enumerate(top1s)))
    (run / 'log.txt').write_text('Model dynamixer_xs created, parameters: 0.70M\n')


def test_table_gives_mean_and_half_range_over_seeds_with_the_papers_number(tmp_path, capsys):
    _fake_run(tmp_path, 'no_row', 0, [70.0, 80.0], 600.4)
    _fake_run(tmp_path, 'no_row', 1, [71.0, 81.0], 610.0)
    sweep_fmnist.table(str(tmp_path), ['no_row', 'd4'])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == ('| without row mixing | 0.70M | 70.00, 71.00 | **80.50 ± 0.50** | s0: 80.00, s1: 81.00 '
                        '| 600, 610 | 79.4 |')
    assert lines[3].startswith('| reduced dim d = 4 | not run |')


def test_table_reads_runs_kept_without_their_logs(tmp_path, capsys):
    _fake_run(tmp_path, 'd4', 0, [70.0, 80.0], 600.0)
    (tmp_path / 'd4-s0' / 'log.txt').unlink()  # docs/results/sweep_long keeps run.json, summary.csv, args.yaml
    sweep_fmnist.table(str(tmp_path), ['d4'])
    assert capsys.readouterr().out.splitlines()[2].startswith('| reduced dim d = 4 | ?M | 70.00 | **80.00 ± 0.00** |')


def test_collect_writes_one_row_per_finished_run(tmp_path, capsys):
    _fake_run(tmp_path, 'd1', 0, [60.0, 65.5], 100.0)
    (tmp_path / 'd1-s1').mkdir()  # unfinished: no run.json
    sweep_fmnist.collect(str(tmp_path))
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 2 and rows[1].startswith('d1,0,dynamixer_xs,{},0.70,65.5,65.5,0.5,2,100.0,1.0,')


@pytest.mark.skipif(not os.path.exists('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz'),
                    reason='Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)')
def test_export_writes_the_weights_of_a_tag_that_load_back_through_timm(tmp_path, capsys):
    assert sweep_fmnist.weights_file('dynamixer_xs_convstem.fmnist') == os.path.join(
        REPO, 'dynamixer', 'weights', 'dynamixer_xs_convstem_fmnist.safetensors')
    model = timm.create_model('dynamixer_xs_convstem', img_size=28, in_chans=1, num_classes=10)
    torch.save({'epoch': 3, 'state_dict': {'module.' + k: v for k, v in model.state_dict().items()}},
               tmp_path / 'last.pth.tar')
    out = tmp_path / 'w.safetensors'
    sweep_fmnist.export(str(tmp_path / 'last.pth.tar'), 'dynamixer_xs_convstem.fmnist', str(out))
    assert 'top-1 on the 1000-image test subset' in capsys.readouterr().out
    loaded = timm.create_model('dynamixer_xs_convstem.fmnist', pretrained=True, pretrained_cfg_overlay=dict(file=str(out)))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_run_trains_the_given_recipe_with_the_entrys_arguments_last(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep_fmnist, 'call_child', lambda cmd, **kw: calls.append(cmd) or 0)
    recipe = os.path.join('configs', 'dynamixer_xs_convstem_sum_fashion_mnist.yaml')
    sweep_fmnist.run_one('tune_lr4e-3', sweep_fmnist.TUNING['tune_lr4e-3'], 1, str(tmp_path),
                         sweep_fmnist.BUDGETS['long'], recipe)
    (cmd,) = calls
    train_args = cmd[cmd.index('--') + 1:]
    assert train_args[:4] == ['-c', recipe, '--model', 'dynamixer_xs_convstem_sum']
    assert train_args[-2:] == ['--lr', '4e-3']  # after the budget's flags, so the entry's values win
    assert train_args[train_args.index('--epochs') + 1] == '2' and train_args[train_args.index('--seed') + 1] == '1'
    info = json.loads((tmp_path / 'tune_lr4e-3-s1' / 'run.json').read_text())
    assert info['rc'] == 0 and recipe in info['command']
    # a finished run is not run again
    sweep_fmnist.run_one('tune_lr4e-3', sweep_fmnist.TUNING['tune_lr4e-3'], 1, str(tmp_path),
                         sweep_fmnist.BUDGETS['long'], recipe)
    assert len(calls) == 1


def test_a_terminated_sweep_stops_the_training_run_it_started(tmp_path):
    # `kill <sweep pid>` used to leave its train.py child training on as an orphan beside the next run
    pidfile = tmp_path / 'child.pid'
    child_code = f'import os, time; open({str(pidfile)!r}, "w").write(str(os.getpid())); time.sleep(120)'
    sweep = tmp_path / 'sweep.py'
    sweep.write_text(f'import sys\nsys.path.insert(0, {os.path.join(REPO, "scripts")!r})\nimport sweep_fmnist\n'
                     f'sweep_fmnist.call_child([sys.executable, "-c", {child_code!r}])\n')
    parent = subprocess.Popen([sys.executable, str(sweep)])
    deadline = time.time() + 60
    while not (pidfile.exists() and pidfile.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    parent.terminate()
    assert parent.wait(timeout=60) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):  # terminated and reaped by the sweep before it exited
        os.kill(child, 0)


def test_hour_runs_train_their_recorded_recipe_on_the_full_sets_with_two_threads(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep_fmnist, 'call_child', lambda cmd, **kw: calls.append((cmd, kw['env'])) or 0)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(sys, 'argv', ['sweep_fmnist.py', 'run', 'hour', '--budget', 'full', '--seeds', '42',
                                      '--only', 'hour_mixer_p4', '--output', str(tmp_path)])
    sweep_fmnist.main()
    (cmd, env), = calls
    args = cmd[cmd.index('--') + 1:]
    # the recipe the recorded hour runs used, not the shipped config that has since gained stochastic depth and EMA
    assert args[:2] == ['-c', os.path.join('docs', 'results', 'xscs_fmnist_23ep_lr4e-3', 'config.yaml')]
    assert env['OMP_NUM_THREADS'] == '2'
    assert '--train-num-samples' not in args and '--val-num-samples' not in args  # full 60k / 10k
    assert args[-3:] == ['--epochs', '35', '--model-kwargs']  # the config's fused=False cleared for the Mixer
    assert json.loads(cmd[cmd.index('--model-kwargs') + 1]) == {'patch_size': 4, 'embed_dim': 128, 'num_blocks': 5}
    run = json.loads((tmp_path / 'hour_mixer_p4-s42' / 'run.json').read_text())
    assert run['threads'] == '2' and run['seed'] == 42


def test_an_hour_entry_with_extra_train_args_keeps_the_bare_model_kwargs_last():
    # the batch-64 hour run: '-b 64' goes in, and the trailing bare --model-kwargs (which clears the config's
    # own kwargs so that the entry's constructor kwargs are the only ones) stays the last argument
    model, kwargs, extra = sweep_fmnist.HOUR['hour_dynamixer_b64']
    assert model == 'dynamixer_xs_convstem_sum' and kwargs == {'fused': False}
    assert extra == ['--epochs', '21', '-b', '64', '--model-kwargs']
    assert sweep_fmnist.HOUR['hour_dynamixer'][2] == ['--epochs', '23', '--model-kwargs']
