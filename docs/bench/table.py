"""Print the markdown tables of docs/benchmarks.md from the CSVs of docs/bench/run_all.sh."""
import csv
import sys

COLS = [('model', 'model'), ('param_count', 'params (M)'), ('gmacs', 'GMACs'), ('aten_ops', 'aten ops'),
        ('copy_ops', 'copy ops'), ('saved_mib_per_img', 'saved MiB/img'),
        ('saved_mib_per_img_with_params', 'saved MiB/img incl. params'),
        ('infer_samples_per_sec', 'infer img/s'), ('infer_rounds_samples_per_sec', 'infer rounds'),
        ('train_samples_per_sec', 'train img/s'), ('train_rounds_samples_per_sec', 'train rounds'),
        ('infer_warmup_s', 'infer warm-up s'), ('train_warmup_s', 'train warm-up s')]
for path in sys.argv[1:]:
    rows = list(csv.DictReader(open(path)))
    print(f'\n`{path}`\n')
    print('| ' + ' | '.join(c[1] for c in COLS) + ' |')
    print('|' + '---|' * len(COLS))
    for r in rows:
        name = r['model'] + (' (compiled per layer)' if r.get('torchcompile') and '@' not in r['model'] else '')
        print('| ' + ' | '.join([name] + [r.get(k, '') or '' for k, _ in COLS[1:]]) + ' |')
