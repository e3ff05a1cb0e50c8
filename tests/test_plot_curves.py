"""scripts/plot_curves.py: train.py's summary.csv files drawn as one PNG, with the EMA where the run kept one."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'scripts'))
import plot_curves  # noqa: E402

HEADER = 'epoch,train_loss,eval_loss,eval_top1,eval_top5,lr'


def _summary(path, ema):
    rows = [HEADER + (',eval_ema_loss,eval_ema_top1,eval_ema_top5' if ema else '')]
    for epoch in range(3):
        row = f'{epoch},{1.0 - 0.1 * epoch},{0.5 - 0.05 * epoch},{80 + epoch},{99},{1e-3 / (epoch + 1)}'
        rows.append(row + (f',{0.45 - 0.05 * epoch},{82 + epoch},99.5' if ema else ''))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(rows) + '\n')
    return str(path)


def test_a_run_with_an_ema_gets_its_ema_curves_beside_the_models(tmp_path):
    with_ema = _summary(tmp_path / 'a' / 'summary.csv', ema=True)
    plain = _summary(tmp_path / 'b' / 'summary.csv', ema=False)
    out = tmp_path / 'img' / 'curves.png'
    fig = plot_curves.plot([with_ema, plain], ['dp+ema', 'plain'], str(out), title='t')
    assert out.exists() and out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    loss, top1, lr = fig.axes
    assert [line.get_label() for line in top1.lines] == ['dp+ema', 'dp+ema EMA', 'plain']
    assert list(top1.lines[1].get_ydata()) == [82.0, 83.0, 84.0] and list(top1.lines[1].get_xdata()) == [1, 2, 3]
    assert len(loss.lines) == 5 and len(lr.lines) == 2  # train, test, EMA test for the first run; train, test
