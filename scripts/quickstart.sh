#!/usr/bin/env bash
# The embedded default job: train DynaMixer-XS on Fashion-MNIST for a short schedule, then validate the
# best checkpoint on the full 10k test set and print its accuracy. A few minutes on a 2-core CPU; uses the
# GPU when there is one. Run scripts/setup.sh first (README).
#   bash scripts/quickstart.sh [extra train.py flags]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
EXP=quickstart-$(date +%Y%m%d-%H%M%S)
# the full recipe, shortened: 3 epochs over a class-balanced 12k-image subset of the 60k training images,
# checked after each epoch on 2k test images; then validate.py on the full 10k test set
"$PY" train.py -c configs/dynamixer_xs_fashion_mnist.yaml --epochs 3 --warmup-epochs 0 --train-num-samples 12000 \
  --val-num-samples 2000 --output runs --experiment "$EXP" "$@"
"$PY" validate.py --dataset fashion_mnist --split test --checkpoint "runs/$EXP/model_best.pth.tar" \
  --results-file "runs/$EXP/test_results.json"
echo "results: runs/$EXP/test_results.json"
