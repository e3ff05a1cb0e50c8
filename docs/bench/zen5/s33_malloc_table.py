"""The table of docs/benchmarks.md "Session 33: the malloc": img/s per model and malloc from the s33_malloc_* CSVs
(run 1: glibc and tcmalloc; run 2: all four), and each model's ratio to the authors' formulation in the same run.
python docs/bench/zen5/s33_malloc_table.py"""
import csv
import os

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ['reference:dynamixer_s', 'dynamixer_s', 'dynamixer_s@fused=False', 'convnext_tiny']
print('| precision | run | malloc | ' + ' | '.join(f'{m} infer / train' for m in MODELS) + ' |')
print('|---|---|---|' + '---|' * len(MODELS))
for amp in ('bfloat16', 'fp32'):
    for run, prefix, variants in (('1', 's33_malloc_run1_', ('glibc', 'tcmalloc')),
                                  ('2', 's33_malloc_', ('glibc', 'glibc_tuned', 'tcmalloc', 'jemalloc'))):
        for v in variants:
            rows = {r['model']: r for r in csv.DictReader(open(os.path.join(HERE, f'{prefix}{amp}_{v}.csv')))}
            ref = rows[MODELS[0]]
            cells = []
            for m in MODELS:
                i, t = float(rows[m]['infer_samples_per_sec']), float(rows[m]['train_samples_per_sec'])
                ri, rt = i / float(ref['infer_samples_per_sec']), t / float(ref['train_samples_per_sec'])
                cells.append(f'{i:.2f} / {t:.2f}' + ('' if m == MODELS[0] else f' ({ri:.2f}x / {rt:.2f}x)'))
            print(f'| {amp} | {run} | {rows[MODELS[0]]["malloc"] if "malloc" in ref else v} | ' + ' | '.join(cells) + ' |')
